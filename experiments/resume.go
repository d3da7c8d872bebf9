package experiments

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A run folder is resumed (finished seeds kept, a finished run reported
// again) only when the spec recorded there is the same experiment as the one
// asked for. Otherwise a changed --set, --device or spec file would silently
// report the old numbers under the new settings.

// errOtherSpec is wrapped by the error about a run folder that holds results
// of a different spec.
var errOtherSpec = errors.New("holds results of a different spec")

// checkRecordedSpec compares the spec.yaml of a run folder, if there is one,
// with the plan. A folder without results (a run killed before its first
// seed finished) has nothing to protect: its spec.yaml is written again.
func checkRecordedSpec(dir string, p plan) error {
	b, err := os.ReadFile(filepath.Join(dir, "spec.yaml"))
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !holdsResults(dir)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", p.Name, err)
	}
	if diff := specDifference(string(b), p.SpecYAML); diff != "" && !seedsAreOf(dir, p) {
		return otherSpecError(p.Name, dir, diff)
	}
	return nil
}

// seedsAreOf reports whether the folder's finished seeds, one at least, all
// record the plan's spec: a --force run of another spec that failed before
// its first seed finished rewrote spec.yaml but replaced no result.
func seedsAreOf(dir string, p plan) bool {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if !isSeedDir(e.Name()) {
			continue
		}
		res, err := readSeedResult(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // unfinished: not a result
		}
		if res.Spec == "" || specDifference(res.Spec, p.SpecYAML) != "" {
			return false
		}
		n++
	}
	return n > 0
}

// isSeedDir reports whether name is a seed's folder ("seed-<n>").
func isSeedDir(name string) bool {
	n, ok := strings.CutPrefix(name, "seed-")
	_, err := strconv.ParseUint(n, 10, 64)
	return ok && err == nil
}

// IsRunFolder reports whether dir is the folder of a run that has results:
// its spec.yaml beside a run summary or a finished seed.
func IsRunFolder(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "spec.yaml"))
	return err == nil && fi.Mode().IsRegular() && holdsResults(dir)
}

// holdsResults reports whether a run folder has a run summary or a
// finished seed.
func holdsResults(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "summary.json")); err == nil {
		return true
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if isSeedDir(e.Name()) {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), "summary.json")); err == nil {
				return true
			}
		}
	}
	return false
}

// inputFingerprints is the sha256 of each file the spec names by path only
// (the categories CSV), keyed by its spec key.
func inputFingerprints(s Spec) (map[string]string, error) {
	if s.Dataset.Categories == "" {
		return nil, nil
	}
	b, err := os.ReadFile(s.Dataset.Categories)
	if err != nil {
		return nil, fmt.Errorf("dataset.categories: %w", err)
	}
	return map[string]string{"dataset.categories": fmt.Sprintf("sha256:%x", sha256.Sum256(b))}, nil
}

// unionKeys lists the keys of now, sorted, then those only recorded has,
// sorted: every key once, in an order that does not change between runs.
func unionKeys[V any](recorded, now map[string]V) []string {
	keys := slices.Sorted(maps.Keys(now))
	var gone []string
	for k := range recorded {
		if _, ok := now[k]; !ok {
			gone = append(gone, k)
		}
	}
	slices.Sort(gone)
	return append(keys, gone...)
}

// inputsDifference names the first input file whose content differs from
// the one recorded; results recorded before inputs were are not compared.
func inputsDifference(recorded, now map[string]string) string {
	if recorded == nil {
		return ""
	}
	for _, k := range unionKeys(recorded, now) {
		if recorded[k] != now[k] {
			return fmt.Sprintf("the content of %s differs from the file those results were run with", k)
		}
	}
	return ""
}

// differenceFrom is how results recorded with spec and inputs differ from
// the plan: "" when they are of the same experiment. Results written before
// the spec was recorded with them are taken to be (the folder's spec.yaml
// was checked).
func (p plan) differenceFrom(spec string, inputs map[string]string) string {
	if spec != "" {
		if diff := specDifference(spec, p.SpecYAML); diff != "" {
			return diff
		}
	}
	return inputsDifference(inputs, p.Inputs)
}

func otherSpecError(run, dir, diff string) error {
	return fmt.Errorf("run %s: %s %w (%s); --force runs it again in place, or --out DIR runs it elsewhere", run, dir, errOtherSpec, diff)
}

// specDifference returns "" when two resolved specs describe the same
// experiment, seeds aside (each seed has its own folder), and otherwise
// the first difference. Both are parsed again, so a spec recorded before a
// key was added compares equal to one with that key at its default.
func specDifference(recorded string, now []byte) string {
	if recorded == string(now) {
		return ""
	}
	old, err := resolvedAgain([]byte(recorded), "the recorded spec")
	if err != nil {
		return fmt.Sprintf("its spec.yaml cannot be read: %v", err)
	}
	cur, err := resolvedAgain(now, "the spec")
	if err != nil {
		return fmt.Sprintf("the spec cannot be read back: %v", err)
	}
	return firstDifference(old, cur)
}

// resolvedAgain parses a resolved spec and writes it out again without its
// seeds and threads, which do not change a result.
func resolvedAgain(text []byte, what string) (string, error) {
	specs, err := Parse(text, what)
	if err != nil {
		return "", err
	}
	if len(specs) != 1 {
		return "", fmt.Errorf("%s is a grid of %d runs, not one run", what, len(specs))
	}
	s := specs[0]
	s.Seeds, s.Backend.Threads = nil, 0
	y, err := s.YAML()
	return string(y), err
}

// firstDifference names the first line where two resolved specs differ as
// a dotted key with both values.
func firstDifference(recorded, now string) string {
	a, b := strings.Split(recorded, "\n"), strings.Split(now, "\n")
	section := ""
	for i := range max(len(a), len(b)) {
		x, y := lineAt(a, i), lineAt(b, i)
		if !strings.HasPrefix(x, " ") && strings.HasSuffix(x, ":") {
			section = strings.TrimSuffix(x, ":")
		}
		if x == y {
			continue
		}
		key, was, _ := strings.Cut(strings.TrimSpace(x), ": ")
		_, is, _ := strings.Cut(strings.TrimSpace(y), ": ")
		if strings.HasPrefix(x, " ") && section != "" {
			key = section + "." + key
		}
		return fmt.Sprintf("%s is %s there and %s now", key, was, is)
	}
	return ""
}

func lineAt(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return ""
}

// sameSeeds reports whether two seed lists hold the same seeds.
func sameSeeds(a, b []uint64) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// forceFile marks a run folder whose --force run has not yet ended: the
// next --force run takes it up again rather than starting over, so that
// the same command resumes an interrupted --force run as it does any other.
const forceFile = "force.json"

type forceMark struct {
	Started time.Time `json:"started"`
}

// forceSince is when the --force run that the one asked for takes up again
// began, from the folder's force.json; zero without --force, or when no
// --force run of the folder was stopped before its end.
func (r *Runner) forceSince(dir string) time.Time {
	if !r.opt.Force {
		return time.Time{}
	}
	b, err := os.ReadFile(filepath.Join(dir, forceFile))
	if err != nil {
		return time.Time{}
	}
	var m forceMark
	if json.Unmarshal(b, &m) != nil {
		return time.Time{}
	}
	return m.Started
}

// forceKeeps reports whether a --force run keeps a seed's result: one made
// since the --force run it takes up again began, by the same build.
// Anything older is what --force was asked to replace.
func (r *Runner) forceKeeps(res *SeedResult, since time.Time) bool {
	return !since.IsZero() && !res.Started.Before(since) && res.Provenance == r.prov
}

// markForced writes the folder's force.json as a --force run starts it,
// and returns the time it holds.
func markForced(dir string) (time.Time, error) {
	now := time.Now().UTC()
	return now, writeJSON(filepath.Join(dir, forceFile), forceMark{Started: now})
}

// clearForceMarks removes the force.json of the runs finished so far, once
// the command they belong to has ended: until then, a run it finished is
// one its next --force keeps.
func (r *Runner) clearForceMarks() {
	r.finishedMu.Lock()
	defer r.finishedMu.Unlock()
	for _, dir := range r.finished {
		os.Remove(filepath.Join(dir, forceFile))
	}
	r.finished = nil
}
