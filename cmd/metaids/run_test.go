package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestRunCommand(t *testing.T) {
	out := t.TempDir()
	args := []string{"run", "../../experiments/nsl-kdd/protonet-5way5shot.yaml", "--out", out, "--seeds", "4",
		"--set", "episodes.train_steps=20", "--set", "episodes.val_every=10", "--set", "episodes.val_episodes=4",
		"--set", "episodes.test_episodes=8", "--format", "csv", "--jobs", "2"}
	code, stdout, stderr := run(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "run,algo,episodes,seeds,accuracy %") || !strings.Contains(stdout, "nsl-protonet-5way5shot,protonet,5w 5s 15q,4,") {
		t.Errorf("results table:\n%s", stdout)
	}
	for _, f := range []string{"summary.json", "report.md", "spec.yaml", "seed-4/summary.json", "seed-4/curve.png"} {
		if _, err := os.Stat(filepath.Join(out, "nsl-protonet-5way5shot", f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	spec, _ := os.ReadFile(filepath.Join(out, "nsl-protonet-5way5shot", "spec.yaml"))
	if !strings.Contains(string(spec), "train_steps: 20") {
		t.Errorf("resolved spec lacks the override:\n%s", spec)
	}
	// Finished: not repeated.
	code, _, stderr = run(t, args...)
	if code != 0 || !strings.Contains(stderr, "finished earlier") {
		t.Errorf("second run: exit %d, %q", code, stderr)
	}
	// Another spec under the same --out, which this command did not make: an
	// error naming the changed key, the results kept.
	code, _, stderr = run(t, append(args, "--set", "episodes.ways=3")...)
	want := "holds results of a different spec (episodes.ways is 5 there and 3 now); --force runs it again in place, or --out DIR runs it elsewhere"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("changed spec: exit %d, %q; want 1 and %q", code, stderr, want)
	}
	if _, err := os.Stat(filepath.Join(out, "nsl-protonet-5way5shot", "summary.json")); err != nil {
		t.Errorf("the finished run is gone: %v", err)
	}
}

func TestRunCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("dataset:\n  name: nsl-kdd\nepisodes:\n  shots: -1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nowhere := filepath.Join(dir, "nowhere")
	if err := os.Symlink(filepath.Join(dir, "gone"), nowhere); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run"}, 2, "one or more spec files"},
		{[]string{"run", bad, "--out", dir}, 1, "bad.yaml:4: episodes.shots"},
		{[]string{"run", bad, "--seeds", "1,x"}, 2, "--seeds"},
		{[]string{"run", bad, "--seeds", "1,18446744073709551616"}, 2, "--seeds: seed 18446744073709551616 is out of range (at most 18446744073709551615)"},
		{[]string{"run", bad, "--device", "tpu"}, 2, `--device "tpu"`},
		{[]string{"run", bad, "--out", ""}, 2, "--out is empty"},
		{[]string{"run", bad, "--jobs", "0"}, 2, "--jobs must be 1 to 1024 (got 0)"},
		{[]string{"run", bad, "--jobs", "1025"}, 2, "--jobs must be 1 to 1024 (got 1025)"},
		// Empty, as from an unset shell variable, is not the spec's value.
		{[]string{"run", bad, "--seeds", ""}, 2, "--seeds is empty"},
		{[]string{"run", bad, "--device", ""}, 2, `--device "": want auto, cpu or cuda`},
		{[]string{"run", bad, "--set", "episodes.shot=1"}, 1, "episodes.shot"},
		// An --out that cannot be a folder is named as such, not as the
		// "not a directory" of a path under it.
		{[]string{"run", bad, "--out", bad}, 2, "--out " + bad + " is a file, not a folder"},
		{[]string{"run", bad, "--out", filepath.Join(bad, "sub")}, 2, "--out " + filepath.Join(bad, "sub") + ": " + bad + " is a file, not a folder"},
		{[]string{"run", bad, "--out", nowhere}, 2, "--out " + nowhere + " is a link to " + filepath.Join(dir, "gone") + ", which does not exist"},
	}
	for _, c := range cases {
		code, _, stderr := run(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("a failed spec left files behind: %v", entries)
	}
}

// --device replaces the spec's device before the spec is checked: a cuda
// spec runs with --device cpu on a build without cuda.
func TestRunDeviceFlagComesBeforeTheChecks(t *testing.T) {
	out := t.TempDir()
	args := []string{"run", "../../experiments/nsl-kdd/protonet-5way5shot.yaml", "--out", out, "--seeds", "1",
		"--set", "backend.device=cuda", "--set", "episodes.train_steps=4", "--set", "episodes.val_every=0",
		"--set", "episodes.test_episodes=2", "--device", "cpu"}
	if code, _, stderr := run(t, args...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	spec, _ := os.ReadFile(filepath.Join(out, "nsl-protonet-5way5shot", "spec.yaml"))
	if !strings.Contains(string(spec), "device: cpu") {
		t.Errorf("recorded spec does not say device cpu:\n%s", spec)
	}
}

// --seeds replaces the spec's seeds before the spec is checked, so a spec
// without seeds runs with --seeds; and --jobs counts them: the seeds of one
// run that would not fit in memory side by side are a wrong command line.
func TestRunSeedsFlagComesBeforeTheChecks(t *testing.T) {
	dir := writeSpecs(t, map[string]string{"noseed.yaml": `
name: noseed
dataset: {name: nsl-kdd}
split: {val_fraction: 0.4}
episodes: {train_steps: 4, val_every: 0, test_episodes: 2}
seeds: []
`})
	out := t.TempDir()
	if code, _, stderr := run(t, "run", filepath.Join(dir, "noseed.yaml"), "--out", out, "--seeds", "3"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "noseed", "seed-3", "summary.json")); err != nil {
		t.Error(err)
	}
	seeds := make([]string, 1024)
	for i := range seeds {
		seeds[i] = strconv.Itoa(i + 1)
	}
	code, _, stderr := run(t, "run", filepath.Join(dir, "noseed.yaml"), "--out", out, "--seeds", strings.Join(seeds, ","),
		"--jobs", "1024", "--set", "model.hidden=[20000,20000]")
	if code != 2 || !strings.Contains(stderr, "--jobs 1024: 1024 seeds at once need at least") {
		t.Errorf("1024 seeds of a 20000-wide run at once: exit %d, %s", code, stderr)
	}
}

// A run that fails before any seed finishes leaves no output folder it
// made, nor the parents it made for it; a parent that was there stays.
func TestFailedRunLeavesNoOutputFolder(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "new", "deeper", "out")
	code, _, stderr := run(t, "run", "../../experiments/nsl-kdd/protonet-5way5shot.yaml", "--out", out, "--seeds", "1",
		"--set", "split.val_fraction=0.1")
	if code != 1 || !strings.Contains(stderr, "meta-val pool") {
		t.Fatalf("exit %d, %q; want the meta-val pool's error", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "new")); !os.IsNotExist(err) {
		t.Errorf("the failed run left %s behind (%v)", filepath.Join(root, "new"), err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("the folder that was there is gone: %v", err)
	}
}

// A run that fails in an --out folder that was there before (results, say)
// reports its error and leaves the folder.
func TestFailedRunInAnExistingOutputFolder(t *testing.T) {
	out := t.TempDir()
	code, _, stderr := run(t, "run", "../../experiments/nsl-kdd/protonet-5way5shot.yaml", "--out", out, "--seeds", "1",
		"--set", "split.val_fraction=0.1")
	if code != 1 || !strings.Contains(stderr, "meta-val pool") {
		t.Fatalf("exit %d, %q; want the meta-val pool's error", code, stderr)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("the --out folder that was there is gone: %v", err)
	}
}

// Stopped before any seed finished, a run in an --out folder that was there
// before does not say that runs and seeds were kept; stopped after a run was
// kept (here, one finished earlier), it does.
func TestInterruptedRunSaysWhatWasKept(t *testing.T) {
	out := t.TempDir()
	flags := []string{"--out", out, "--seeds", "1", "--set", "episodes.train_steps=4", "--set", "episodes.val_every=0", "--set", "episodes.test_episodes=2"}
	protonet := append([]string{"run", "../../experiments/nsl-kdd/protonet-5way5shot.yaml"}, flags...)
	args := append([]string{"run", "../../experiments/nsl-kdd/protonet-5way5shot.yaml", "../../experiments/nsl-kdd/maml-5way.yaml"}, flags...)
	interrupted := func(when string, args ...string) (int, string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stderr := &cancelOn{text: when, cancel: cancel}
		code := runMain(ctx, &env{stdout: &bytes.Buffer{}, stderr: stderr}, args)
		return code, stderr.String()
	}
	code, stderr := interrupted("loaded, encoded", args...)
	if want := "interrupted before any run or seed finished; run the same command again to resume"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("stopped before any seed: exit %d, %q; want %q", code, stderr, want)
	}
	if code, _, stderr := run(t, protonet...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	code, stderr = interrupted("finished earlier", args...)
	if want := "interrupted: finished runs and seeds are kept under " + out; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("stopped after keeping a run: exit %d, %q; want %q", code, stderr, want)
	}
}

// cancelOn is a log that cancels the command once a line holds text.
type cancelOn struct {
	bytes.Buffer
	text   string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(b []byte) (int, error) {
	if strings.Contains(string(b), c.text) {
		c.cancel()
	}
	return c.Buffer.Write(b)
}

// --out inside the folder of a run with results (the run's folder, a seed's
// folder, or below) is a wrong command line: a --force run of that run would
// remove what was written there. A folder with only a spec.yaml (a project
// folder, or a run killed before any seed finished) is no run.
func TestRunOutInsideARunFolder(t *testing.T) {
	root := t.TempDir()
	spec := "../../experiments/nsl-kdd/protonet-5way5shot.yaml"
	short := []string{"--seeds", "1", "--set", "episodes.train_steps=2", "--set", "episodes.val_every=0", "--set", "episodes.test_episodes=2"}
	if code, _, stderr := run(t, append([]string{"run", spec, "--out", root}, short...)...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	runDir := filepath.Join(root, "nsl-protonet-5way5shot")
	for _, out := range []string{runDir, filepath.Join(runDir, "seed-1"), filepath.Join(runDir, "seed-1", "new", "deeper")} {
		code, _, stderr := run(t, append([]string{"run", spec, "--out", out, "--set", "name=other"}, short...)...)
		if want := "--out " + out + " is inside the run folder " + runDir + ": write the runs beside it (e.g. --out " + root + ")"; code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("--out %s: exit %d, %q; want 2 and %q", out, code, stderr, want)
		}
	}
	if _, err := os.Stat(filepath.Join(runDir, "seed-1", "new")); !os.IsNotExist(err) {
		t.Errorf("the refused run made a folder: %v", err)
	}
	only := filepath.Join(root, "project")
	if err := os.MkdirAll(only, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(only, "spec.yaml"), []byte("name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, append([]string{"run", spec, "--out", filepath.Join(only, "results")}, short...)...); code != 0 {
		t.Errorf("--out under a folder with only a spec.yaml: exit %d: %s", code, stderr)
	}
}
