package experiments

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/detect"
	"github.com/metaids/metaids/eval"
)

const resumeSpec = `
name: resume
dataset: {name: nsl-kdd}
split: {val_fraction: 0.4, min_records: 20}
episodes: {normal_way: true, meta_batch: 2, train_steps: 10, val_every: 5, val_episodes: 2, test_episodes: 4}
model: {hidden: [8]}
seeds: [1]
`

// runResume runs resumeSpec with overrides into out and returns the summary,
// the log and the error.
func runResume(t *testing.T, out string, opt RunOptions, overrides ...string) (*RunSummary, string, error) {
	t.Helper()
	specs, err := Parse([]byte(resumeSpec), "resume.yaml", parseOverrides(t, overrides)...)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	opt.OutDir, opt.Log = out, &log
	s, err := NewRunner(opt).Run(context.Background(), specs[0])
	return s, log.String(), err
}

func TestChangedSpecIsNotReportedAsFinished(t *testing.T) {
	out := t.TempDir()
	first, _, err := runResume(t, out, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The same spec again is the finished run.
	again, log, err := runResume(t, out, RunOptions{})
	if err != nil || !strings.Contains(log, "finished earlier") || again.Metrics["accuracy"] != first.Metrics["accuracy"] {
		t.Fatalf("same spec: %v, log %q", err, log)
	}

	// A changed value is refused, naming the key and both values.
	_, _, err = runResume(t, out, RunOptions{}, "episodes.ways=3")
	if !errors.Is(err, errOtherSpec) || !strings.Contains(err.Error(), "episodes.ways is 5 there and 3 now") ||
		!strings.Contains(err.Error(), "--force") {
		t.Fatalf("changed ways: error %v", err)
	}
	// So is another device given on the command line.
	_, _, err = runResume(t, out, RunOptions{Device: "auto"})
	if !errors.Is(err, errOtherSpec) || !strings.Contains(err.Error(), "backend.device is cpu there and auto now") {
		t.Fatalf("changed device: error %v", err)
	}

	// --force runs the changed spec in place and records it.
	changed, _, err := runResume(t, out, RunOptions{Force: true}, "episodes.ways=3")
	if err != nil || changed.Ways != 3 {
		t.Fatalf("forced: %v, ways %v", err, changed)
	}
	rec, err := os.ReadFile(filepath.Join(out, "resume", "spec.yaml"))
	if err != nil || !strings.Contains(string(rec), "  ways: 3\n") {
		t.Fatalf("spec.yaml after --force: %v\n%s", err, rec)
	}
}

func TestOtherSeedsRunAndFinishedSeedsAreKept(t *testing.T) {
	out := t.TempDir()
	if _, _, err := runResume(t, out, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	seed1, err := os.ReadFile(filepath.Join(out, "resume", "seed-1", "episodes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	s, log, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log, "seed 1: finished earlier, kept") || strings.Contains(log, "run resume: finished earlier") {
		t.Errorf("log %q: want seed 1 kept and seed 2 run", log)
	}
	if !sameSeeds(s.Seeds, []uint64{2, 1}) || s.Metrics["accuracy"].N != 8 {
		t.Errorf("summary over seeds %v and %d episodes, want seeds 1, 2 and 8 episodes", s.Seeds, s.Metrics["accuracy"].N)
	}
	if again, _ := os.ReadFile(filepath.Join(out, "resume", "seed-1", "episodes.csv")); !bytes.Equal(again, seed1) {
		t.Error("seed 1 was run again")
	}
	rec, _ := os.ReadFile(filepath.Join(out, "resume", "spec.yaml"))
	if !strings.Contains(string(rec), "seeds: [1, 2]") {
		t.Errorf("spec.yaml does not record the seeds that ran:\n%s", rec)
	}
}

// A seed summary.json that parses but is no seed's result (an empty object,
// or another seed's file) is not a finished seed: the seed runs again.
func TestSeedSummaryThatIsNoResultRunsAgain(t *testing.T) {
	out := t.TempDir()
	if _, _, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "resume")
	seed2, err := os.ReadFile(filepath.Join(dir, "seed-2", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{[]byte("{}\n"), seed2} {
		os.Remove(filepath.Join(dir, "summary.json"))
		if err := os.WriteFile(filepath.Join(dir, "seed-1", "summary.json"), bad, 0o644); err != nil {
			t.Fatal(err)
		}
		s, log, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(log, "seed 1: finished earlier") || !sameSeeds(s.Seeds, []uint64{1, 2}) || s.Metrics["accuracy"].N != 8 {
			t.Errorf("seed-1 holding %.20q: seeds %v, %d episodes, log %q; want seed 1 run again", bad, s.Seeds, s.Metrics["accuracy"].N, log)
		}
	}
}

// A finished run is finished only while its seeds' summaries read: one
// damaged since (here cut short) runs again, though the run's summary.json
// is still there, and the log says why.
func TestFinishedRunWithADamagedSeedRunsItAgain(t *testing.T) {
	out := t.TempDir()
	first, _, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "resume", "seed-1", "summary.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, log, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log, "run resume: finished earlier") || !strings.Contains(log, "seed-1: unexpected end of JSON input: not a finished result, running the seed again") ||
		!strings.Contains(log, "seed 2: finished earlier, kept") {
		t.Errorf("log %q; want seed 1 run again and seed 2 kept", log)
	}
	if s.Metrics["accuracy"] != first.Metrics["accuracy"] {
		t.Errorf("accuracy %+v after running seed 1 again, %+v before", s.Metrics["accuracy"], first.Metrics["accuracy"])
	}
}

// A seed summary.json edited by hand so that its tables no longer fit its
// classes is not a finished seed either: the seed runs again, saying why,
// instead of the summary adding up cells that are not there.
func TestSeedSummaryWithBrokenTablesRunsAgain(t *testing.T) {
	cases := []struct {
		name string
		edit func(*SeedResult)
		want string
	}{
		{"extra column", func(r *SeedResult) { r.Confusion.Counts[0] = append(r.Confusion.Counts[0], 7) }, "confusion: row 0 holds"},
		{"extra row", func(r *SeedResult) { r.Confusion.Counts = append(r.Confusion.Counts, r.Confusion.Counts[0]) }, "rows for"},
		{"missing row", func(r *SeedResult) { r.Confusion.Counts = r.Confusion.Counts[1:] }, "rows for"},
		{"negative count", func(r *SeedResult) { r.Confusion.Counts[0][0] = -3 }, "negative count -3"},
		{"other classes", func(r *SeedResult) { r.Confusion.Classes[0] = "smurf" }, "want those of the run's pool"},
	}
	resumeEditedSeed(t, len(cases), func(i int, r *SeedResult) { cases[i].edit(r) }, func(i int, s *RunSummary, log, file string) {
		c := cases[i]
		if !strings.Contains(log, file+": "+"confusion: ") || !strings.Contains(log, c.want) || !strings.Contains(log, "running the seed again") ||
			s.Metrics["accuracy"].N != 8 {
			t.Errorf("%s: %d episodes, log %q; want seed 2 run again, naming %s and %q", c.name, s.Metrics["accuracy"].N, log, file, c.want)
		}
	})
}

// resumeEditedSeed finishes seeds 1 and 2; then, for each of n edits, writes
// seed 2's summary.json edited from the finished one, removes the run's
// summary.json and resumes, handing check the summary and log.
func resumeEditedSeed(t *testing.T, n int, edit func(i int, r *SeedResult), check func(i int, s *RunSummary, log, file string)) {
	t.Helper()
	out := t.TempDir()
	if _, _, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "resume")
	file := filepath.Join(dir, "seed-2", "summary.json")
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var res SeedResult
		if err := json.Unmarshal(orig, &res); err != nil {
			t.Fatal(err)
		}
		edit(i, &res)
		if err := os.WriteFile(file, must(json.Marshal(&res)), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "summary.json"))
		s, log, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}})
		if err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
		check(i, s, log, file)
	}
}

// A seed summary.json edited by hand so that a figure is one no run writes
// (a mean that is no share, a count below 1, test metrics over other test
// episodes than the spec's) is not a finished seed: the seed runs again,
// saying why, instead of the run summary pooling it (an accuracy of 1.7
// made the run's 129%, which compare then refused).
func TestSeedSummaryWithImpossibleFiguresRunsAgain(t *testing.T) {
	set := func(r *SeedResult, name string, edit func(*eval.Summary)) {
		v := r.Metrics[name]
		edit(&v)
		r.Metrics[name] = v
	}
	cases := []struct {
		edit func(*SeedResult)
		want string
	}{
		{func(r *SeedResult) { set(r, "accuracy", func(v *eval.Summary) { v.Mean = 1.7 }) }, "metrics.accuracy: mean 1.7, want a share in [0, 1]"},
		{func(r *SeedResult) { set(r, "accuracy", func(v *eval.Summary) { v.Mean, v.N = 7.5, -4 }) }, "metrics.accuracy: n = -4, want at least 1"},
		{func(r *SeedResult) { set(r, "macro_f1", func(v *eval.Summary) { v.SD = -1 }) }, "metrics.macro_f1: sd -1 and half-width"},
		{func(r *SeedResult) { set(r, "accuracy", func(v *eval.Summary) { v.N = 3 }) }, "metrics.accuracy: n = 3, want one per test episode, 4"},
		{func(r *SeedResult) { set(r, "auroc", func(v *eval.Summary) { v.N = 40 }) }, "metrics.auroc: n = 40, more than the 4 test episodes"},
		{func(r *SeedResult) {
			r.Test.Episodes = 40
			set(r, "accuracy", func(v *eval.Summary) { v.N = 40 })
		}, "test.episodes = 40, but the spec has 4 test episodes"},
	}
	resumeEditedSeed(t, len(cases), func(i int, r *SeedResult) { cases[i].edit(r) }, func(i int, s *RunSummary, log, file string) {
		c := cases[i]
		if !strings.Contains(log, file+": "+c.want) || !strings.Contains(log, "running the seed again") ||
			s.Metrics["accuracy"].N != 8 || !(s.Metrics["accuracy"].Mean <= 1) {
			t.Errorf("accuracy %+v, log %q; want seed 2 run again, naming %s and %q", s.Metrics["accuracy"], log, file, c.want)
		}
	})
}

// The detection and multitask figures of a seed are shares too.
func TestSeedFiguresAreShares(t *testing.T) {
	ok := eval.Summary{Mean: 0.9, SD: 0.1, HalfWidth: 0.05, N: 20}
	valid := func() *SeedResult {
		return &SeedResult{Metrics: map[string]eval.Summary{"accuracy": ok},
			Supervised: []SupervisedEval{{Metrics: map[string]eval.Summary{"accuracy": {Mean: 0.8, N: 1}}}},
			Robustness: []RobustResult{{Attack: "fgsm", Accuracy: ok, MacroF1: ok}},
			Detection:  &DetectionResult{Report: &detect.Report{AUROC: 0.9, DetectionRate: 0.8, FalseAlarmRate: 0.1, F1: 0.85}},
			Multitask:  &MultitaskResult{Metrics: map[string]float64{"binary_accuracy": 0.9, "category_accuracy": math.NaN()}}}
	}
	if err := valid().checkFigures(); err != nil {
		t.Fatalf("a valid seed: %v", err)
	}
	for _, c := range []struct {
		edit func(*SeedResult)
		want string
	}{
		{func(r *SeedResult) { r.Supervised[0].Metrics["accuracy"] = eval.Summary{Mean: 80, N: 1} }, "supervised[0].metrics.accuracy: mean 80, want a share in [0, 1]"},
		{func(r *SeedResult) { r.Robustness[0].MacroF1.N = 0 }, "robustness[0].macro_f1: n = 0, want at least 1"},
		{func(r *SeedResult) { r.Detection.Report.FalseAlarmRate = -0.1 }, "detection.report.false_alarm_rate: -0.1, want a share in [0, 1]"},
		{func(r *SeedResult) { r.Multitask.Metrics["binary_accuracy"] = 90 }, "multitask.metrics.binary_accuracy: 90, want a share in [0, 1]"},
	} {
		r := valid()
		c.edit(r)
		if err := r.checkFigures(); err == nil || err.Error() != c.want {
			t.Errorf("%v; want %q", err, c.want)
		}
	}
}

// Likewise a supervised seed whose results lack a test file: the summary
// takes the first seed's files as the list for every seed.
func TestSupervisedSeedWithoutItsTestFilesRunsAgain(t *testing.T) {
	spec := `
name: sup
dataset: {name: nsl-kdd}
split: {protocol: supervised}
supervised: {test_files: [KDDTest-21, KDDTest+], epochs: 1, batch_size: 1024}
model: {hidden: [4]}
seeds: [1, 2]
`
	specs, err := Parse([]byte(spec), "sup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	run := func() (*RunSummary, string) {
		var log bytes.Buffer
		s, err := NewRunner(RunOptions{OutDir: out, Log: &log}).Run(context.Background(), specs[0])
		if err != nil {
			t.Fatal(err)
		}
		return s, log.String()
	}
	run()
	file := filepath.Join(out, "sup", "seed-1", "summary.json")
	var res SeedResult
	if err := json.Unmarshal(must(os.ReadFile(file)), &res); err != nil {
		t.Fatal(err)
	}
	res.Supervised = nil
	if err := os.WriteFile(file, must(json.Marshal(&res)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(out, "sup", "summary.json"))
	s, log := run()
	if !strings.Contains(log, file+": 0 supervised test results, but the spec has 2 test files") || len(s.Supervised) != 2 ||
		s.Supervised[1].Metrics["accuracy"].N != 2 {
		t.Errorf("log %q, %d test files; want seed 1 run again", log, len(s.Supervised))
	}
	// A seed's figure is over one whole test file: n = 1.
	if err := json.Unmarshal(must(os.ReadFile(file)), &res); err != nil {
		t.Fatal(err)
	}
	res.Supervised[1].Metrics["macro_f1"] = eval.Summary{Mean: 0.5, N: 7}
	if err := os.WriteFile(file, must(json.Marshal(&res)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(out, "sup", "summary.json"))
	if _, log = run(); !strings.Contains(log, file+": supervised[1].metrics.macro_f1: n = 7, want 1 (one seed on one test file)") ||
		!strings.Contains(log, "running the seed again") {
		t.Errorf("log %q; want seed 1 run again", log)
	}
}

// A loss or score that is not finite stops the run, naming the keys to
// change with their values, rather than reporting metrics of arbitrary
// predictions (an argmax over NaN scores is class 0).
func TestDivergenceNamesTheKeys(t *testing.T) {
	for _, c := range []struct {
		sets []string
		want []string
	}{
		{[]string{"optimizer.lr=1e30"}, []string{"meta-train loss is NaN at step ", "training diverged; lower optimizer.lr (now 1e+30)"}},
		{[]string{"learner.algo=maml", "learner.inner_steps=1", "learner.inner_lr=1e30"},
			[]string{"meta-train loss is NaN at step 1, before any update, so not the optimiser's doing; lower learner.inner_lr (now 1e+30)"}},
		// Before any update the optimiser is not to blame; after, each of
		// its keys that can be is named, clipping lowered once it is set.
		{[]string{"model.hidden=[64]", "learner.distance=cosine", "learner.cosine_scale=3e38", "optimizer.clip_norm=1"},
			[]string{"meta-train loss is NaN at step 1, before any update, so not the optimiser's doing; lower learner.cosine_scale (now 3e+38)"}},
		{[]string{"optimizer.name=sgd", "optimizer.weight_decay=3e38"},
			[]string{"training diverged; lower optimizer.lr (now 0.001) or optimizer.weight_decay (now 3e+38), or set optimizer.clip_norm"}},
		{[]string{"optimizer.lr=1e30", "optimizer.clip_norm=1"},
			[]string{"training diverged; lower optimizer.lr (now 1e+30) or optimizer.clip_norm (now 1)"}},
		{[]string{"learner.algo=maml", "learner.inner_lr=1e30", "learner.test_inner_steps=1", "episodes.train_steps=0", "episodes.val_every=0"},
			[]string{"meta-test episode 1: the learner's scores are not finite (a query's score is NaN); lower learner.inner_lr (now 1e+30)"}},
		// Pre-training and the supervised classifier name the spec's keys
		// too, not the Config fields of package train.
		{[]string{"pretrain.objective=denoise", "pretrain.batch_size=4096", "optimizer.lr=1e30"},
			[]string{"pretrain: reconstruction loss is NaN at epoch 1 (batch ", "training diverged; lower optimizer.lr (now 1e+30), or set optimizer.clip_norm"}},
		// Its first batch comes before any update: the noise is to blame.
		{[]string{"pretrain.objective=denoise", "pretrain.noise=3e38"},
			[]string{"pretrain: reconstruction loss is NaN at epoch 1 (batch 1 of 264), before any update, so not the optimiser's doing; lower pretrain.noise (now 3e+38)"}},
		{[]string{"split.protocol=supervised", "episodes.normal_way=false", "supervised.batch_size=4096", "optimizer.lr=1e30"},
			[]string{"training loss is NaN at epoch 1 (batch ", "training diverged; lower optimizer.lr (now 1e+30), or set optimizer.clip_norm"}},
	} {
		out := t.TempDir()
		_, _, err := runResume(t, out, RunOptions{}, c.sets...)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %v; want %q", c.sets, err, w)
			}
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Errorf("%v: the failed run left %v", c.sets, entries)
		}
	}
}

// shippedRecords is the uncompressed text of a shipped NSL-KDD file.
func shippedRecords(t *testing.T, file string) []byte {
	t.Helper()
	gzf, err := datasets.ShippedFS().Open("data/nsl-kdd/" + file + ".txt.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer gzf.Close()
	zr, err := gzip.NewReader(gzf)
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// A supervised training file of one class (normal traffic alone, from a
// data_dir) is refused before training: the classifier would answer normal
// to everything and its figures would look like a result.
func TestSupervisedTrainingFileOfOneClass(t *testing.T) {
	all := shippedRecords(t, "KDDTrain+")
	var normal bytes.Buffer
	for _, line := range strings.SplitAfter(string(all), "\n") {
		if strings.Contains(line, ",normal,") && normal.Len() < 1<<20 {
			normal.WriteString(line)
		}
	}
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "KDDTrain+.txt"), normal.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, labels := range []string{"binary", "category"} {
		specs, err := Parse([]byte(resumeSpec), "resume.yaml", parseOverrides(t, []string{"split.protocol=supervised", "episodes.normal_way=false",
			"dataset.data_dir=" + data, "dataset.no_checksum=true", "supervised.labels=" + labels})...)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = CheckSupervisedData(specs[0])
		if want := "KDDTrain+: every record is normal: a classifier needs records of at least two of its classes (normal, "; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s labels: %v; want %q", labels, err, want)
		}
	}
}

// A seed kept from a run on other data (a data_dir file edited in between,
// with no_checksum) is refused, naming the pool that changed, rather than
// mixed into the summary with seeds run on the new data.
func TestSeedOfOtherDataIsRefused(t *testing.T) {
	all := shippedRecords(t, "KDDTest+")
	data := t.TempDir()
	writeTest := func(labels ...string) {
		var b bytes.Buffer
		for _, line := range strings.SplitAfter(string(all), "\n") {
			for _, l := range labels {
				if strings.Contains(line, ","+l+",") {
					b.WriteString(line)
				}
			}
		}
		if err := os.WriteFile(filepath.Join(data, "KDDTest+.txt"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	over := []string{"dataset.data_dir=" + data, "dataset.no_checksum=true", "episodes.ways=2"}
	writeTest("normal", "apache2", "mscan")
	if _, _, err := runResume(t, out, RunOptions{Seeds: []uint64{1}}, over...); err != nil {
		t.Fatal(err)
	}
	writeTest("normal", "apache2", "mscan", "saint", "snmpguess")
	_, _, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}}, over...)
	if !errors.Is(err, errOtherSpec) || !strings.Contains(err.Error(), "seed-1") || !strings.Contains(err.Error(), "meta-test pool") {
		t.Fatalf("error %v, want seed-1 named as run on other data", err)
	}
}

func TestStaleSeedOfAnotherSpecIsRefused(t *testing.T) {
	out := t.TempDir()
	if _, _, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	// Seed 1 alone with another spec, forced: seed-2 still holds the old spec.
	if _, _, err := runResume(t, out, RunOptions{Seeds: []uint64{1}, Force: true}, "model.hidden=[4]"); err != nil {
		t.Fatal(err)
	}
	_, _, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}}, "model.hidden=[4]")
	if !errors.Is(err, errOtherSpec) || !strings.Contains(err.Error(), "seed-2") || !strings.Contains(err.Error(), "model.hidden is [8] there and [4] now") {
		t.Fatalf("error %v, want seed-2 named as another spec's", err)
	}
}

func TestRecordedSpecWithoutNewerKeysIsTheSame(t *testing.T) {
	specs, err := Parse([]byte(resumeSpec), "resume.yaml")
	if err != nil {
		t.Fatal(err)
	}
	now, err := specs[0].YAML()
	if err != nil {
		t.Fatal(err)
	}
	// A spec written before the multitask section existed, with other seeds.
	old := strings.Replace(string(now), "multitask:\n  binary_weight: 0\n  category_weight: 0\n", "", 1)
	old = strings.Replace(old, "seeds: [1]", "seeds: [4, 5]", 1)
	if old == string(now) {
		t.Fatal("the test spec has no multitask section to drop")
	}
	if d := specDifference(old, now); d != "" {
		t.Errorf("difference %q, want none", d)
	}
	if d := specDifference(strings.Replace(old, "  hidden: [8]", "  hidden: [8, 8]", 1), now); d != "model.hidden is [8, 8] there and [8] now" {
		t.Errorf("difference %q", d)
	}
	if d := specDifference("name: [\n", now); !strings.Contains(d, "cannot be read") {
		t.Errorf("unreadable recorded spec: difference %q", d)
	}
}

func TestImpossibleEpisodeNamesTheKeys(t *testing.T) {
	out := t.TempDir()
	for _, c := range []struct {
		set, want string
	}{
		// No class is that large: the split has no meta-train class left.
		{"episodes.shots=1000000", "train has 0 (classes with fewer than 1000015 records are left out: split.min_records, or episodes.shots + episodes.queries"},
		// Four meta-train classes are: too few for 5 ways.
		{"episodes.shots=2000", "meta-train pool: sampler: 5-way episodes need at least 5 classes; the pool has 4"},
	} {
		_, _, err := runResume(t, out, RunOptions{}, c.set, "split.min_records=0")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "episodes.replacement: true") {
			t.Errorf("--set %s: error %v, want %q and the way out", c.set, err, c.want)
		}
		if _, err := os.Stat(filepath.Join(out, "resume")); err == nil {
			t.Errorf("--set %s left a run folder", c.set)
		}
	}
}

func TestExplainShortageOnlyExplainsShortages(t *testing.T) {
	short := datasets.ErrTooFewClasses
	other := errors.New("something else")
	if got := ExplainShortage(other, 20); got != other {
		t.Errorf("another error became %q", got)
	}
	if got := ExplainShortage(short, 1); got != short {
		t.Errorf("with every class kept (min 1) the error became %q", got)
	}
	got := ExplainShortage(short, 20)
	if !errors.Is(got, datasets.ErrTooFewClasses) || !strings.Contains(got.Error(), "fewer than 20 records") {
		t.Errorf("explained: %q", got)
	}
	big := fmt.Errorf("meta-train pool: %w", datasets.ErrBatchTooLarge)
	if got := ExplainShortage(big, 1); !errors.Is(got, datasets.ErrBatchTooLarge) || !strings.Contains(got.Error(), "episodes.meta_batch") {
		t.Errorf("a meta-batch too large: %q", got)
	}
	// A pool without normal traffic names the key that asks for it (the
	// sampler's own words name no spec key).
	noNormal := fmt.Errorf("meta-test pool: %w", datasets.ErrNoNormalClass)
	if got := ExplainShortage(noNormal, 20); !errors.Is(got, datasets.ErrNoNormalClass) || !strings.Contains(got.Error(), "episodes.normal_way is true") {
		t.Errorf("no normal class: %q", got)
	}
}

// Fine-tuning's head needs two meta-train classes; fewer is a shortage
// that names the learner and the classes, not the config field behind it.
func TestPretrainClassesNeedsTwo(t *testing.T) {
	one := &datasets.Pool{Classes: []datasets.Class{{Name: "satan"}}}
	_, err := PretrainClasses(one)
	want := "learner.algo: finetune pre-trains a head over the meta-train classes and needs at least 2; the meta-train pool has 1: satan"
	if !errors.Is(err, datasets.ErrTooFewClasses) || err.Error() != want {
		t.Errorf("one class: %v, want %q", err, want)
	}
	two := &datasets.Pool{Classes: []datasets.Class{{Name: "satan"}, {Name: "smurf"}}}
	if n, err := PretrainClasses(two); n != 2 || err != nil {
		t.Errorf("two classes: %d, %v", n, err)
	}
}

// A --force run stopped before its end leaves the new spec.yaml and its
// first seeds beside the old run's summary: that summary must not be
// reported as the new run's, and the forced run removes it at its start.
func TestStoppedForcedRunIsNotReportedAsFinished(t *testing.T) {
	out, other := t.TempDir(), t.TempDir()
	if _, _, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	// The state a stopped "--force --set model.hidden=[4]" leaves behind:
	// its spec.yaml and seed 1, the old seed 2 and the old summary.
	if _, _, err := runResume(t, other, RunOptions{Seeds: []uint64{1, 2}}, "model.hidden=[4]"); err != nil {
		t.Fatal(err)
	}
	run, newRun := filepath.Join(out, "resume"), filepath.Join(other, "resume")
	for _, name := range []string{"spec.yaml", "seed-1"} {
		if err := os.RemoveAll(filepath.Join(run, name)); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(newRun, name), filepath.Join(run, name)); err != nil {
			t.Fatal(err)
		}
	}
	_, log, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}}, "model.hidden=[4]")
	if strings.Contains(log, "run resume: finished earlier") || !errors.Is(err, errOtherSpec) || !strings.Contains(err.Error(), "seed-2") {
		t.Fatalf("log %q, error %v: want seed-2 refused, not the old summary reported", log, err)
	}

	// A forced run removes the summary and report first, so stopping it
	// (here before its first step) leaves none behind.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	specs, err := Parse([]byte(resumeSpec), "resume.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRunner(RunOptions{OutDir: out, Log: &bytes.Buffer{}, Force: true}).Run(ctx, specs[0]); err == nil {
		t.Fatal("a cancelled run gave no error")
	}
	for _, name := range []string{"summary.json", "report.md", "confusion.png", "per_class_f1.svg"} {
		if _, err := os.Stat(filepath.Join(run, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after a stopped --force run (%v)", name, err)
		}
	}
}

// A run killed before its first seed finished leaves only spec.yaml: the
// folder holds no results, so another spec may run there.
func TestFolderWithOnlyASpecIsNoObstacle(t *testing.T) {
	out := t.TempDir()
	run := filepath.Join(out, "resume")
	if err := os.MkdirAll(filepath.Join(run, "seed-1.partial"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A half-written seed folder is not a finished seed either.
	if err := os.WriteFile(filepath.Join(run, "seed-1.partial", "summary.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "spec.yaml"), []byte(strings.Replace(resumeSpec, "hidden: [8]", "hidden: [16]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	s, _, err := runResume(t, out, RunOptions{})
	if err != nil || s.Seeds[0] != 1 {
		t.Fatalf("run into a folder holding only a spec: %v", err)
	}
	rec, _ := os.ReadFile(filepath.Join(run, "spec.yaml"))
	if !strings.Contains(string(rec), "hidden: [8]") {
		t.Errorf("spec.yaml not rewritten:\n%s", rec)
	}
}

// Without training steps the meta-train pool is not drawn from, so it need
// not hold episodes.ways classes (validate --deep does not ask it to).
func TestNoTrainingStepsNeedsNoMetaTrainEpisodes(t *testing.T) {
	s, _, err := runResume(t, t.TempDir(), RunOptions{}, "learner.algo=nearest-centroid", "episodes.train_steps=0",
		"episodes.val_every=0", "split.val_fraction=0.9", "episodes.ways=7")
	if err != nil {
		t.Fatal(err)
	}
	if s.Metrics["accuracy"].N != 4 {
		t.Errorf("%d test episodes, want 4", s.Metrics["accuracy"].N)
	}
}

// A --force run of another spec that fails before its first seed finishes
// rewrites spec.yaml but replaces no result: the same command as before
// still finds its seeds.
func TestFailedForcedRunLeavesTheSeedsResumable(t *testing.T) {
	out := t.TempDir()
	if _, _, err := runResume(t, out, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the forced run stops before its first step
	specs, err := Parse([]byte(resumeSpec), "resume.yaml", parseOverrides(t, []string{"model.hidden=[4]"})...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRunner(RunOptions{OutDir: out, Log: &bytes.Buffer{}, Force: true}).Run(ctx, specs[0]); err == nil {
		t.Fatal("a cancelled run gave no error")
	}
	_, log, err := runResume(t, out, RunOptions{})
	if err != nil || !strings.Contains(log, "seed 1: finished earlier, kept") {
		t.Fatalf("the original spec after a failed --force of another: %v, log %q", err, log)
	}
}

// cancelOn is a log that cancels its run when a line mentions text.
type cancelOn struct {
	text   string
	cancel context.CancelFunc
}

func (c cancelOn) Write(b []byte) (int, error) {
	if strings.Contains(string(b), c.text) {
		c.cancel()
	}
	return len(b), nil
}

// A --force run stopped halfway is resumed by the same command, as any run
// is: the seeds it finished are kept, the ones from before it run again, and
// once it has ended the next --force runs everything again.
func TestStoppedForcedRunResumes(t *testing.T) {
	out := t.TempDir()
	if _, _, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	specs, err := Parse([]byte(resumeSpec), "resume.yaml", parseOverrides(t, []string{"model.hidden=[4]"})...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opt := RunOptions{OutDir: out, Seeds: []uint64{1, 2}, Force: true, Log: cancelOn{"seed 2", cancel}}
	if _, err := NewRunner(opt).Run(ctx, specs[0]); err == nil {
		t.Fatal("a run stopped in its second seed gave no error")
	}
	seed1, err := os.ReadFile(filepath.Join(out, "resume", "seed-1", "episodes.csv"))
	if err != nil {
		t.Fatal(err)
	}

	// The same command keeps the new seed 1 and runs the old seed 2 again.
	_, log, err := runResume(t, out, RunOptions{Seeds: []uint64{1, 2}, Force: true}, "model.hidden=[4]")
	if err != nil || !strings.Contains(log, "seed 1: finished by the --force run stopped earlier, kept") || strings.Contains(log, "seed 2: finished") {
		t.Fatalf("the same --force command again: %v, log %q: want seed 1 kept and seed 2 run", err, log)
	}
	if again, _ := os.ReadFile(filepath.Join(out, "resume", "seed-1", "episodes.csv")); !bytes.Equal(again, seed1) {
		t.Error("seed 1 was run again")
	}
	if res, err := readSeedResult(filepath.Join(out, "resume", "seed-2")); err != nil || !strings.Contains(res.Spec, "hidden: [4]") {
		t.Errorf("seed 2 is not of the forced spec: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "resume", forceFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after the --force run ended (%v)", forceFile, err)
	}

	// That --force run has ended: the next starts over.
	_, log, err = runResume(t, out, RunOptions{Seeds: []uint64{1, 2}, Force: true}, "model.hidden=[4]")
	if err != nil || strings.Contains(log, "kept") || strings.Contains(log, "finished") {
		t.Fatalf("a --force after the last ended: %v, log %q: want every seed run again", err, log)
	}
}

// The categories CSV is named by its path only: an edited file makes other
// results, not the finished ones.
func TestEditedCategoriesFileIsAnotherRun(t *testing.T) {
	out := t.TempDir()
	cats := filepath.Join(t.TempDir(), "cats.csv")
	if err := os.WriteFile(cats, []byte("smurf,dos\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runResume(t, out, RunOptions{}, "dataset.categories="+cats); err != nil {
		t.Fatal(err)
	}
	if _, log, err := runResume(t, out, RunOptions{}, "dataset.categories="+cats); err != nil || !strings.Contains(log, "finished earlier") {
		t.Fatalf("the same file again: %v, log %q", err, log)
	}
	if err := os.WriteFile(cats, []byte("smurf,probe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := runResume(t, out, RunOptions{}, "dataset.categories="+cats)
	if !errors.Is(err, errOtherSpec) || !strings.Contains(err.Error(), "the content of dataset.categories differs") {
		t.Fatalf("an edited categories file: %v", err)
	}
}

// The seeds of a run are one experiment whatever order they are listed in
// (a run finished with seeds 1,2,3 is finished for 3,1,2), so the summary
// pools them in seed order and gives the same numbers bit for bit.
func TestSeedOrderDoesNotChangeTheSummary(t *testing.T) {
	var sums []*RunSummary
	for _, seeds := range [][]uint64{{1, 2, 3}, {3, 1, 2}} {
		p := testPlan(t, "protonet")
		p.Seeds = seeds
		s, err := NewRunner(RunOptions{OutDir: t.TempDir(), Log: &bytes.Buffer{}}).runPlan(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, s)
	}
	a, b := sums[0], sums[1]
	if !slices.Equal(a.Seeds, b.Seeds) {
		t.Errorf("summary seeds %v and %v, want both in seed order", a.Seeds, b.Seeds)
	}
	for _, name := range eval.MetricNames {
		if a.Metrics[name] != b.Metrics[name] || a.SeedSpread[name] != b.SeedSpread[name] {
			t.Errorf("%s: %+v (spread %+v) with seeds 1,2,3 but %+v (spread %+v) with 3,1,2",
				name, a.Metrics[name], a.SeedSpread[name], b.Metrics[name], b.SeedSpread[name])
		}
	}
}

// The keys compared are every key once, in the same order on every call,
// so that the first difference reported does not change from run to run.
func TestUnionKeysOrder(t *testing.T) {
	recorded := map[string]int{"z": 1, "b": 1, "a": 1, "c": 1}
	now := map[string]int{"c": 1, "d": 1}
	for range 20 {
		if got := strings.Join(unionKeys(recorded, now), " "); got != "c d a b z" {
			t.Fatalf("unionKeys = %q, want c d a b z", got)
		}
	}
}
