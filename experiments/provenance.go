package experiments

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/metaids/metaids/train"
)

// Provenance records what produced a result.
type Provenance struct {
	Commit    string `json:"commit"` // "+dirty" marks uncommitted changes
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	// Kernels are the host's float32 matrix kernels (train.HostKernels),
	// which the numbers depend on bit for bit.
	Kernels string `json:"kernels,omitempty"`
}

// BuildCommit is set at link time by the Makefile
// (-ldflags "-X github.com/metaids/metaids/experiments.BuildCommit=...").
var BuildCommit string

// CurrentProvenance takes the commit from BuildCommit, else from the build
// information (stamped by go build in a git checkout unless -buildvcs=false),
// else from git in the working directory (go run stamps nothing), else
// "unknown".
func CurrentProvenance() Provenance {
	p := Provenance{Commit: "unknown", GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
		Kernels: train.HostKernels()}
	if BuildCommit != "" {
		p.Commit = BuildCommit
		return p
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			p.Commit = rev
			if modified == "true" {
				p.Commit += "+dirty"
			}
			return p
		}
	}
	if !inOwnCheckout() {
		return p
	}
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		p.Commit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
			p.Commit += "+dirty"
		}
	}
	return p
}

// modulePath is this module's path, which the go.mod of a checkout of it
// declares.
const modulePath = "github.com/metaids/metaids"

// inOwnCheckout reports whether the working directory is inside a git
// checkout of this module, so that its HEAD is the commit of the code: run
// from inside any other repository, that repository's HEAD is not.
func inOwnCheckout() bool {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return false
	}
	mod, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(top)), "go.mod"))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(mod)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == modulePath
		}
	}
	return false
}
