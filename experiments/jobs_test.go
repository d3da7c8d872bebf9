package experiments

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metaids/metaids/train"
)

// jobsSpecs are small runs of two or three seeds, one with every option
// and one supervised, so that RunAll has runs and seeds to spread over its
// slots and every path of a seed runs beside others.
func jobsSpecs(t *testing.T) []Spec {
	t.Helper()
	var specs []Spec
	for _, text := range []string{`
name: j-protonet
dataset: {name: nsl-kdd}
split: {val_fraction: 0.4}
learner: {algo: protonet}
episodes: {meta_batch: 2, train_steps: 30, val_every: 10, val_episodes: 5, test_episodes: 12}
seeds: [1, 2, 3]
`, `
name: j-fomaml
dataset: {name: nsl-kdd}
split: {val_fraction: 0.4}
learner: {algo: fomaml, inner_steps: 1}
episodes: {meta_batch: 2, train_steps: 20, val_every: 10, val_episodes: 5, test_episodes: 12}
seeds: [4, 5]
`, `
name: j-every-option
dataset: {name: nsl-kdd}
split: {val_fraction: 0.4}
learner: {algo: protonet}
episodes: {meta_batch: 2, train_steps: 20, val_every: 10, val_episodes: 5, test_episodes: 12}
pretrain: {objective: mask, epochs: 1}
adversarial: {train_eps: 0.03, train_mix: 0.5, eval_budgets: [0.05], eval_episodes: 3, pgd_steps: 2}
multitask: {binary_weight: 0.5, category_weight: 0.5}
detection: {method: mahalanobis}
seeds: [1, 2]
`, `
name: j-sup
dataset: {name: nsl-kdd}
split: {protocol: supervised}
supervised: {labels: binary, test_files: [KDDTest-21], epochs: 1, batch_size: 512}
model: {hidden: [8]}
seeds: [1, 2]
`} {
		s, err := Parse([]byte(text), "jobs.yaml")
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s...)
	}
	if testing.Short() {
		// Under -short (make race) two runs, three seeds, still side by
		// side: protonet's two and every option's first.
		specs[0].Seeds, specs[2].Seeds = specs[0].Seeds[:2], specs[2].Seeds[:1]
		return []Spec{specs[0], specs[2]}
	}
	return specs
}

// resultFiles reads every per-seed file whose content must not depend on
// how many seeds ran at once: what was measured, not how fast.
func resultFiles(t *testing.T, out string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, pattern := range []string{"*/seed-*/*.csv", "*/seed-*/checkpoint.bin"} {
		paths, err := filepath.Glob(filepath.Join(out, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(out, p)
			files[rel] = string(b)
		}
	}
	return files
}

// Runs and seeds run at once give the files they give one at a time, bit
// for bit, and the same summaries.
func TestJobsGiveTheSameResults(t *testing.T) {
	specs := jobsSpecs(t)
	var outs []string
	var sums [][]*RunSummary
	for _, jobs := range []int{1, 3} {
		out := t.TempDir()
		var log bytes.Buffer
		done, err := NewRunner(RunOptions{OutDir: out, Log: &log, Jobs: jobs}).RunAll(context.Background(), specs)
		if err != nil {
			t.Fatalf("jobs %d: %v", jobs, err)
		}
		if len(done) != len(specs) {
			t.Fatalf("jobs %d: %d runs finished, want %d", jobs, len(done), len(specs))
		}
		for i, s := range done {
			if s.Run != specs[i].Name {
				t.Errorf("jobs %d: summary %d is run %s, want %s (spec order)", jobs, i, s.Run, specs[i].Name)
			}
		}
		outs, sums = append(outs, out), append(sums, done)
	}
	one, many := resultFiles(t, outs[0]), resultFiles(t, outs[1])
	if len(one) == 0 || len(one) != len(many) {
		t.Fatalf("%d files one at a time, %d at once", len(one), len(many))
	}
	for name, b := range one {
		if many[name] != b {
			t.Errorf("%s differs between --jobs 1 and 3", name)
		}
	}
	for _, jobs := range []int{0, 3} {
		out := outs[min(jobs, 1)]
		res, err := readSeedResult(filepath.Join(out, "j-protonet", "seed-2"))
		if err != nil {
			t.Fatal(err)
		}
		if res.Jobs != jobs {
			t.Errorf("seed summary under --jobs %d records jobs %d, want %d", max(jobs, 1), res.Jobs, jobs)
		}
	}
	for i := range sums[0] {
		a, b := sums[0][i], sums[1][i]
		for name, m := range a.Metrics {
			if b.Metrics[name] != m {
				t.Errorf("%s %s: %+v one at a time, %+v at once", a.Run, name, m, b.Metrics[name])
			}
		}
	}
}

// A run that fails stops the runs beside it, whose finished seeds are kept,
// and RunAll reports the failure, not the interruption it caused.
func TestJobsStopAtTheFirstFailure(t *testing.T) {
	specs := jobsSpecs(t)[:2]
	bad := specs[0]
	bad.Name = "j-bad"
	bad.Split.ValFraction = 0.1 // too few meta-val classes: fails as each seed draws its validation episodes
	// Second, so that the run before it is stopped by its failure.
	specs = []Spec{specs[0], bad, specs[1]}
	out := t.TempDir()
	done, err := NewRunner(RunOptions{OutDir: out, Log: &bytes.Buffer{}, Jobs: 2}).RunAll(context.Background(), specs)
	if err == nil || !strings.Contains(err.Error(), "run j-bad seed") || strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("error %v, want j-bad's own", err)
	}
	for _, s := range done {
		if s.Run == "j-bad" {
			t.Error("the failed run is among the finished")
		}
	}
	if _, err := os.Stat(filepath.Join(out, "j-bad")); err == nil {
		t.Error("the failed run left its folder")
	}
}

// An interrupted RunAll says so and keeps no partial seed.
func TestJobsInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := t.TempDir()
	_, err := NewRunner(RunOptions{OutDir: out, Log: &bytes.Buffer{}, Jobs: 2}).RunAll(ctx, jobsSpecs(t))
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("error %v, want interrupted", err)
	}
	seeds, _ := filepath.Glob(filepath.Join(out, "*", "seed-*"))
	if len(seeds) > 0 {
		t.Errorf("left behind %v", seeds)
	}
}

func TestCheckJobs(t *testing.T) {
	specs := jobsSpecs(t)
	for _, jobs := range []int{-1, MaxJobs + 1} {
		if err := CheckJobs(RunOptions{Jobs: jobs}, specs); err == nil || !strings.Contains(err.Error(), "want 1 to 1024") {
			t.Errorf("CheckJobs(%d) = %v", jobs, err)
		}
	}
	if err := CheckJobs(RunOptions{Jobs: 2}, specs); err != nil {
		t.Errorf("CheckJobs(2) on small runs: %v", err)
	}
	big := specs[0]
	big.Model.Hidden = []int{20000, 20000} // 3.2 GiB of parameters, gradient and moments each way
	big.Seeds = []uint64{1}
	if err := CheckJobs(RunOptions{Jobs: 1}, []Spec{big}); err != nil {
		t.Skipf("this machine cannot hold one such run: %v", err)
	}
	many := make([]Spec, MaxJobs)
	for i := range many {
		many[i] = big
	}
	if err := CheckJobs(RunOptions{Jobs: MaxJobs}, many); err == nil || !strings.Contains(err.Error(), "1024 seeds at once need at least") {
		t.Errorf("CheckJobs(%d) of %v-wide runs = %v", MaxJobs, big.Model.Hidden, err)
	}
	// The seeds of one run fill the slots as runs do: those of the spec,
	// or --seeds in their place; on cuda they run one at a time.
	seeds := make([]uint64, MaxJobs)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	if err := CheckJobs(RunOptions{Jobs: MaxJobs}, []Spec{big}); err != nil {
		t.Errorf("one seed of a run, %d jobs: %v", MaxJobs, err)
	}
	if err := CheckJobs(RunOptions{Jobs: MaxJobs, Seeds: seeds}, []Spec{big}); err == nil || !strings.Contains(err.Error(), "1024 seeds at once need at least") {
		t.Errorf("--seeds of %d seeds for one %v-wide run, %d jobs: %v", len(seeds), big.Model.Hidden, MaxJobs, err)
	}
	// Four seeds of one run weigh what four one-seed runs do.
	withSeeds := big
	withSeeds.Seeds = seeds[:4]
	apart := fmt.Sprint(CheckJobs(RunOptions{Jobs: 4}, many[:4]))
	if together := fmt.Sprint(CheckJobs(RunOptions{Jobs: 4}, []Spec{withSeeds})); together != apart {
		t.Errorf("four seeds of one run, 4 jobs: %s; four runs: %s", together, apart)
	}
	if err := CheckJobs(RunOptions{Jobs: MaxJobs, Seeds: seeds, Device: "cuda"}, []Spec{big}); err != nil {
		t.Errorf("seeds on cuda run one at a time, yet: %v", err)
	}
}

// backend.threads adapts a meta-batch's tasks side by side and gives the
// files of one thread, bit for bit, checkpoints included; the summary and
// the log say how many tasks ran at once, and a finished run is not run
// again for another thread count.
func TestThreadsGiveTheSameResults(t *testing.T) {
	const text = `
name: t-maml
dataset: {name: nsl-kdd}
split: {val_fraction: 0.4}
learner: {algo: metasgd, inner_steps: 2, test_inner_steps: 2}
episodes: {meta_batch: 5, train_steps: 12, val_every: 6, val_episodes: 4, test_episodes: 10}
adversarial: {train_eps: 0.03}
multitask: {binary_weight: 0.5}
seeds: [2]
`
	var outs []string
	for _, threads := range []string{"1", "3"} {
		specs, err := Parse([]byte(text), "threads.yaml", parseOverrides(t, []string{"backend.threads=" + threads})...)
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		var log bytes.Buffer
		if _, err := NewRunner(RunOptions{OutDir: out, Log: &log}).Run(context.Background(), specs[0]); err != nil {
			t.Fatalf("threads %s: %v", threads, err)
		}
		res, err := readSeedResult(filepath.Join(out, "t-maml", "seed-2"))
		if err != nil {
			t.Fatal(err)
		}
		said := strings.Contains(log.String(), "run t-maml: adapting up to 3 tasks of a meta-batch at once (backend.threads)")
		if want := map[string]int{"1": 0, "3": 3}[threads]; res.Train.TaskThreads != want || said != (want > 0) {
			t.Errorf("threads %s: summary records %d tasks at once, want %d; log says so: %v\n%s", threads, res.Train.TaskThreads, want, said, log.String())
		}
		outs = append(outs, out)
	}
	one, three := withoutSpec(t, resultFiles(t, outs[0])), withoutSpec(t, resultFiles(t, outs[1]))
	if len(one) == 0 || len(one) != len(three) {
		t.Fatalf("%d files with one thread, %d with three", len(one), len(three))
	}
	for name, b := range one {
		if three[name] != b {
			t.Errorf("%s differs between one thread and three", name)
		}
	}
	// Three threads find the one-thread run finished.
	specs, err := Parse([]byte(text), "threads.yaml", parseOverrides(t, []string{"backend.threads=3"})...)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	if _, err := NewRunner(RunOptions{OutDir: outs[0], Log: &log}).Run(context.Background(), specs[0]); err != nil || !strings.Contains(log.String(), "finished earlier") {
		t.Errorf("three threads on the one-thread run: %v\n%s", err, log.String())
	}
}

// withoutSpec drops from result files what records the spec, which differs
// with backend.threads: the CSVs' comment lines, and the checkpoints'
// extra blobs (the checkpoint is written again without them).
func withoutSpec(t *testing.T, files map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, b := range files {
		if strings.HasSuffix(name, ".bin") {
			l, _, err := train.Load(strings.NewReader(b), nil)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var buf bytes.Buffer
			if err := l.SaveCheckpoint(&buf, nil); err != nil {
				t.Fatal(err)
			}
			out[name] = buf.String()
			continue
		}
		var kept []string
		for _, line := range strings.Split(b, "\n") {
			if !strings.HasPrefix(line, "#") {
				kept = append(kept, line)
			}
		}
		out[name] = strings.Join(kept, "\n")
	}
	return out
}
