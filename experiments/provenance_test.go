package experiments

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Run from inside another repository, the commit recorded is not that
// repository's HEAD: it is "unknown" (a test binary carries no stamped
// commit, so the git fallback is what is tested).
func TestProvenanceIgnoresOtherRepositories(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/other\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "go.mod"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "other"}} {
		git(t, dir, args...)
	}
	if BuildCommit != "" {
		t.Skip("commit stamped at link time")
	}
	t.Chdir(dir)
	if c := CurrentProvenance().Commit; c != "unknown" {
		t.Errorf("commit %q recorded from another repository, want unknown", c)
	}
	// The same repository declaring this module is a checkout of it.
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+modulePath+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := CurrentProvenance().Commit; len(c) < 40 {
		t.Errorf("commit %q in a checkout of this module, want its HEAD", c)
	}
	// Clean once committed; an untracked source file, which a build would
	// compile in, makes it dirty, as it does Go's own vcs.modified.
	git(t, dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-am", "module")
	if c := CurrentProvenance().Commit; len(c) != 40 {
		t.Errorf("commit %q in a clean checkout, want the bare HEAD", c)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.go"), []byte("package other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := CurrentProvenance().Commit; !strings.HasSuffix(c, "+dirty") {
		t.Errorf("commit %q with an untracked source file, want +dirty", c)
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}
