package experiments

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/detect"
	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/train"
)

func testPlan(t *testing.T, algo string) plan {
	t.Helper()
	d, err := datasets.Lookup("nsl-kdd")
	if err != nil {
		t.Fatal(err)
	}
	cfg := train.DefaultConfig(algo)
	cfg.InnerSteps, cfg.TestInnerSteps = 1, 2
	return plan{
		Name: "t-" + algo, SpecYAML: []byte("name: t\n"), Dataset: d,
		Protocol: datasets.ProtocolOptions{MinRecords: 20, ValFraction: 0.4, Seed: 1},
		Learner:  cfg,
		Episodes: episodePlan{Ways: 5, Shots: 5, Queries: 15, MetaBatch: 2, NormalWay: true,
			TrainSteps: 30, ValEvery: 10, ValEpisodes: 5, TestEpisodes: 12},
		Device: "cpu", Threads: 1, Seeds: []uint64{1, 2},
	}
}

// runSpec parses a one-run spec and runs it into a fresh folder, failing
// the test on any error; it returns the run summary and the folder.
func runSpec(t *testing.T, text, file string) (*RunSummary, string) {
	t.Helper()
	specs, err := Parse([]byte(text), file)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	s, err := NewRunner(RunOptions{OutDir: out, Log: &bytes.Buffer{}}).Run(context.Background(), specs[0])
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return s, out
}

// checkRunLevelFilesListed fails when a run folder holds a file beside its
// seed folders that runLevelFiles, which --force removes, does not list.
// checkPhases checks a seed's phase times: the phases named ran (more than
// 0 s), the optional ones not named did not, meta-train and meta-test are
// the throughput figures' times, and the phases add up to the wall time.
func checkPhases(t *testing.T, res *SeedResult, ran ...string) {
	t.Helper()
	p := res.Phases
	if p == nil {
		t.Fatal("no phase times")
	}
	optional := map[string]float64{"pretrain": p.Pretrain, "robustness": p.Robustness, "detection": p.Detection}
	for name, sec := range optional {
		if slices.Contains(ran, name) != (sec > 0) {
			t.Errorf("phase %s: %g s, want it to have run: %v", name, sec, slices.Contains(ran, name))
		}
	}
	if p.MetaTrain != res.Train.Seconds || p.MetaTest != res.Test.Seconds || !(p.Validation > 0) || !(p.Other > 0) {
		t.Errorf("phases %+v, train %g s, test %g s", *p, res.Train.Seconds, res.Test.Seconds)
	}
	sum := p.Pretrain + p.MetaTrain + p.Validation + p.MetaTest + p.Robustness + p.Detection + p.Other
	if math.Abs(sum-res.Wall) > 1e-9*res.Wall {
		t.Errorf("phases add up to %g s, wall %g s", sum, res.Wall)
	}
}

func checkRunLevelFilesListed(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && e.Name() != "spec.yaml" && !slices.Contains(runLevelFiles, e.Name()) {
			t.Errorf("%s writes %s, which runLevelFiles does not list: --force would leave it from the run it replaces", dir, e.Name())
		}
	}
}

// checkCheckpointProvenance checks that a checkpoint's provenance blob names
// its run and seed and what made it, so that a checkpoint away from its
// summary.json still says so.
func checkCheckpointProvenance(t *testing.T, blob []byte, run string, seed uint64) {
	t.Helper()
	var got CheckpointProvenance
	if err := json.Unmarshal(blob, &got); err != nil {
		t.Fatalf("checkpoint provenance %q: %v", blob, err)
	}
	want := CheckpointProvenance{Run: run, Seed: seed, Provenance: CurrentProvenance(), Backend: "cpu", Device: kernels.NewCPU().Device()}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("checkpoint provenance %+v, want %+v", got, want)
	}
}

func TestRunnerWritesResultsAndSkipsFinishedRuns(t *testing.T) {
	out := t.TempDir()
	var log bytes.Buffer
	r := NewRunner(RunOptions{OutDir: out, Log: &log})
	p := testPlan(t, "protonet")
	s, err := r.runPlan(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Seeds) != 2 || s.Metrics["accuracy"].N != 24 || s.SeedSpread["accuracy"].N != 2 {
		t.Fatalf("summary seeds %v, accuracy %+v, spread %+v", s.Seeds, s.Metrics["accuracy"], s.SeedSpread["accuracy"])
	}
	if _, ok := s.Metrics["detection_rate"]; !ok {
		t.Error("no detection rate although normal is a way")
	}
	// Every way has the same number of queries, so macro recall is accuracy
	// (the suite report says so in place of a table of its own).
	if a, r := s.Metrics["accuracy"].Mean, s.Metrics["macro_recall"].Mean; math.Abs(a-r) > 1e-12 {
		t.Errorf("macro recall %v, accuracy %v: want them equal", r, a)
	}
	for _, f := range []string{"spec.yaml", "summary.json", "report.md", "seed-1/summary.json", "seed-1/episodes.csv",
		"seed-1/per_class.csv", "seed-1/confusion.csv", "seed-1/curve.csv", "seed-2/summary.json"} {
		if _, err := os.Stat(filepath.Join(out, p.Name, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	checkRunLevelFilesListed(t, filepath.Join(out, p.Name))
	// The checkpoint restores the selected learner with its encoder and spec.
	ckpt, err := os.Open(filepath.Join(out, p.Name, "seed-1", "checkpoint.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	l, extra, err := train.Load(ckpt, nil)
	if err != nil || l.Name() != "protonet" || string(extra["spec"]) != string(p.SpecYAML) {
		t.Fatalf("checkpoint: %v, extra %v", err, extra)
	}
	var enc datasets.Encoder
	if err := enc.UnmarshalJSON(extra["encoder"]); err != nil || enc.Dim() != 125 {
		t.Errorf("checkpoint encoder: %v", err)
	}
	checkCheckpointProvenance(t, extra["provenance"], p.Name, 1)
	if st, err := os.Stat(filepath.Join(out, p.Name, "summary.json")); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("summary.json mode %v, want 0644 (readable by others)", st.Mode())
	}
	seed1, err := readSeedResult(filepath.Join(out, p.Name, "seed-1"))
	if err != nil {
		t.Fatal(err)
	}
	checkPhases(t, seed1)
	if seed1.Cost.Params != 125*64+64 || seed1.Cost.MACsPerFlow != 125*64+5*64 || !(seed1.Test.LatencyPerFlowUS > 0) || s.Cost != seed1.Cost {
		t.Errorf("model cost %+v, latency %v µs/flow; run cost %+v", seed1.Cost, seed1.Test.LatencyPerFlowUS, s.Cost)
	}
	if seed1.Provenance.GoVersion == "" || seed1.Backend != "cpu" || seed1.Device == "" || seed1.Train.BestStep < 10 {
		t.Errorf("seed summary lacks provenance or training record: %+v %+v", seed1.Provenance, seed1.Train)
	}
	// The numbers depend bit for bit on the host's kernels: both summaries
	// and the report name them.
	if k := train.HostKernels(); seed1.Provenance.Kernels != k || s.Provenance.Kernels != k ||
		!strings.Contains(string(must(os.ReadFile(filepath.Join(out, p.Name, "report.md")))), k+" kernels") {
		t.Errorf("kernels %q (seed) and %q (run), want %q recorded and reported", seed1.Provenance.Kernels, s.Provenance.Kernels, k)
	}
	if got := strings.Count(string(must(os.ReadFile(filepath.Join(out, p.Name, "seed-1", "episodes.csv")))), "\n"); got != 14 {
		t.Errorf("episodes.csv has %d lines, want the provenance line, header + 12", got)
	}
	if rep := string(must(os.ReadFile(filepath.Join(out, p.Name, "report.md")))); !strings.Contains(rep, "## Spec") || !strings.Contains(rep, "```yaml\n"+strings.TrimRight(string(p.SpecYAML), "\n")+"\n```") {
		t.Errorf("report.md does not end with the resolved spec:\n%s", rep)
	}
	// Each CSV says what made it, in a comment line of its own.
	for _, f := range []string{"episodes.csv", "per_class.csv", "confusion.csv", "curve.csv"} {
		first, _, _ := strings.Cut(string(must(os.ReadFile(filepath.Join(out, p.Name, "seed-1", f)))), "\n")
		want := fmt.Sprintf("# metaids run %s, seed 1; spec sha256:%x; commit %s; %s; backend cpu (%s); kernels %s",
			p.Name, sha256.Sum256([]byte(seed1.Spec)), seed1.Provenance.Commit, runtime.Version(), seed1.Device, train.HostKernels())
		if first != want {
			t.Errorf("%s begins %q, want %q", f, first, want)
		}
	}
	checkSummaryFromEpisodes(t, filepath.Join(out, p.Name), s)

	// A second runner finds the finished run and does not repeat it.
	log.Reset()
	again, err := NewRunner(RunOptions{OutDir: out, Log: &log}).runPlan(context.Background(), p)
	if err != nil || !strings.Contains(log.String(), "finished earlier") || again.Metrics["accuracy"] != s.Metrics["accuracy"] {
		t.Errorf("rerun: %v, log %q", err, log.String())
	}

	// The same plan and seeds elsewhere give bit-identical numbers.
	other := t.TempDir()
	s2, err := NewRunner(RunOptions{OutDir: other, Log: &log}).runPlan(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range s.Metrics {
		if s2.Metrics[name] != m {
			t.Errorf("%s differs between identical runs: %+v vs %+v", name, m, s2.Metrics[name])
		}
	}
	a := must(os.ReadFile(filepath.Join(out, p.Name, "seed-2", "episodes.csv")))
	b := must(os.ReadFile(filepath.Join(other, p.Name, "seed-2", "episodes.csv")))
	if !bytes.Equal(a, b) {
		t.Error("episodes.csv differs between identical runs")
	}
}

func TestRunnerInterruptLeavesNoPartialSeed(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewRunner(RunOptions{OutDir: out, Log: &bytes.Buffer{}}).runPlan(ctx, testPlan(t, "fomaml"))
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("error %v, want interrupted", err)
	}
	entries, _ := os.ReadDir(filepath.Join(out, "t-fomaml"))
	for _, e := range entries {
		if e.Name() != "spec.yaml" {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

// A run that fails before any seed finishes leaves no folder it made; one
// that was there before stays.
func TestFailedRunLeavesNoFolder(t *testing.T) {
	out := t.TempDir()
	p := testPlan(t, "protonet")
	p.Protocol.ValFraction = 0.1 // fails when drawing validation episodes, after the folder is made
	if _, err := NewRunner(RunOptions{OutDir: out, Log: &bytes.Buffer{}}).runPlan(context.Background(), p); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(filepath.Join(out, p.Name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed run left %s behind (%v)", p.Name, err)
	}
	keep := filepath.Join(out, p.Name, "notes.txt")
	if err := os.MkdirAll(filepath.Dir(keep), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRunner(RunOptions{OutDir: out, Log: &bytes.Buffer{}}).runPlan(context.Background(), p); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a folder that was there before lost its file: %v", err)
	}
}

// A run whose folder's path is a file, a link to nothing or a folder of
// other files says so, and leaves the path as it was.
func TestRunFolderThatCannotBeOne(t *testing.T) {
	p := testPlan(t, "protonet")
	for _, c := range []struct {
		name, want string
		make       func(path string) error
	}{
		{"dangling link", "is a link to ", func(path string) error { return os.Symlink(filepath.Join(filepath.Dir(path), "gone"), path) }},
		{"file", "is a file, not a folder", func(path string) error { return os.WriteFile(path, []byte("x"), 0o644) }},
		{"folder of other files", "is a folder that holds no run", func(path string) error {
			if err := os.Mkdir(path, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(path, "report.md"), []byte("mine"), 0o644)
		}},
	} {
		for _, force := range []bool{false, true} {
			out := t.TempDir()
			path := filepath.Join(out, p.Name)
			if err := c.make(path); err != nil {
				t.Fatal(err)
			}
			_, err := NewRunner(RunOptions{OutDir: out, Force: force, Log: &bytes.Buffer{}}).runPlan(context.Background(), p)
			if err == nil || !strings.Contains(err.Error(), path+" "+c.want) {
				t.Errorf("%s, force %v: got %v, want an error saying %q", c.name, force, err, path+" "+c.want)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Errorf("%s, force %v: the path is gone: %v", c.name, force, err)
			}
			if b, err := os.ReadFile(filepath.Join(path, "report.md")); c.name == "folder of other files" && string(b) != "mine" {
				t.Errorf("force %v: the folder's report.md is %q (%v), want it kept", force, b, err)
			}
		}
	}
}

// A command killed outright while it writes a run's files leaves their
// temporary files, here those of a new run's spec.yaml and first seed: the
// same command runs the run in that folder and removes them.
func TestRunResumesAfterAKillMidWrite(t *testing.T) {
	p := testPlan(t, "protonet")
	p.Seeds = []uint64{1}
	dir := filepath.Join(t.TempDir(), p.Name)
	if err := os.MkdirAll(filepath.Join(dir, "seed-1.partial"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".spec.yaml.1996737175.tmp"), p.SpecYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewRunner(RunOptions{OutDir: filepath.Dir(dir), Log: &bytes.Buffer{}}).runPlan(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".spec.yaml.1996737175.tmp", "seed-1.partial"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there (%v)", name, err)
		}
	}
	// Only such names: a file of the user's is not taken for one.
	for name, want := range map[string]bool{".report.md.42.tmp": true, ".notes.tmp": false, ".notes.42.tmp": false, "seed-x.partial": false} {
		if isLeftover(name) != want {
			t.Errorf("isLeftover(%q) = %v, want %v", name, !want, want)
		}
	}
}

func TestRunnerReportsUndrawableValidation(t *testing.T) {
	p := testPlan(t, "protonet")
	p.Protocol.ValFraction = 0.1 // one attack class + normal: too few for 5 ways
	_, err := NewRunner(RunOptions{OutDir: t.TempDir(), Log: &bytes.Buffer{}}).runPlan(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "meta-val pool") || !strings.Contains(err.Error(), "episodes.val_every: 0") {
		t.Errorf("error %v, want a meta-val pool error with the way out", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestSupervisedTrack(t *testing.T) {
	s, out := runSpec(t, `
name: sup
dataset: {name: nsl-kdd}
split: {protocol: supervised}
supervised: {labels: category, test_files: [KDDTest-21, KDDTest+], epochs: 1, batch_size: 512}
model: {hidden: [8]}
seeds: [1, 2]
`, "sup.yaml")
	if s.Protocol != "supervised" || len(s.Supervised) != 2 || s.Supervised[0].TestFile != "KDDTest-21" || s.Supervised[1].Records != 22544 {
		t.Fatalf("summary %+v", s.Supervised)
	}
	acc := s.Supervised[1].Metrics["accuracy"]
	if acc.N != 2 || !(acc.Mean > 0.5 && acc.Mean <= 1) {
		t.Errorf("KDDTest+ accuracy over 2 seeds: %+v", acc)
	}
	conf := s.Supervised[1].Confusion
	var total int64
	for _, row := range conf.Counts {
		for _, n := range row {
			total += n
		}
	}
	if strings.Join(conf.Classes, ",") != "normal,dos,probe,r2l,u2r" || total != 2*22544 {
		t.Errorf("pooled confusion over %v holds %d predictions, want 2 seeds x 22544", conf.Classes, total)
	}
	for _, f := range []string{"seed-1/checkpoint.bin", "seed-2/per_class-KDDTest+.csv", "report.md"} {
		if _, err := os.Stat(filepath.Join(out, "sup", f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	checkRunLevelFilesListed(t, filepath.Join(out, "sup"))
	// Its plots name what they show: epochs of training, not meta-training,
	// and per-class figures of the first test file, not of meta-test.
	if svg := string(must(os.ReadFile(filepath.Join(out, "sup", "seed-1", "curve.svg")))); !strings.Contains(svg, ">epoch<") || !strings.Contains(svg, ">training loss<") || strings.Contains(svg, "meta-") {
		t.Errorf("seed-1/curve.svg does not plot training loss against epoch:\n%.300s", svg)
	}
	if svg := string(must(os.ReadFile(filepath.Join(out, "sup", "per_class_f1.svg")))); !strings.Contains(svg, "per-class F1 on KDDTest-21") {
		t.Errorf("per_class_f1.svg does not name the test file it shows")
	}
	if _, err := os.Stat(filepath.Join(out, "sup", "seed-1", "episodes.csv")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a supervised seed has an episodes.csv (%v); it has no episodes", err)
	}
	if b := string(must(os.ReadFile(filepath.Join(out, "sup", "seed-2", "per_class-KDDTest+.csv")))); !strings.HasPrefix(b, "# metaids run sup, seed 2; spec sha256:") {
		t.Errorf("per_class-KDDTest+.csv does not open with its provenance line:\n%.200s", b)
	}
	ckpt, err := os.Open(filepath.Join(out, "sup", "seed-2", "checkpoint.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	_, extra, err := train.LoadClassifier(ckpt, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkCheckpointProvenance(t, extra["provenance"], "sup", 2)
	if sec := SupervisedSection([]*RunSummary{s}); !strings.Contains(sec, "| category |") || !strings.Contains(sec, "RNN-IDS") {
		t.Errorf("report section:\n%s", sec)
	}
}

func TestPretrainAndDetection(t *testing.T) {
	for _, rule := range []string{"far", "f1"} {
		s, out := runSpec(t, `
name: threats
dataset: {name: nsl-kdd}
split: {val_fraction: 0.4, min_records: 20}
episodes: {normal_way: true, meta_batch: 2, train_steps: 20, val_every: 10, val_episodes: 4, test_episodes: 8}
pretrain: {objective: mask, epochs: 1, batch_size: 1024}
detection: {method: mahalanobis, threshold: `+rule+`, max_normal: 2000}
seeds: [3]
`, "threats.yaml")
		res, err := readSeedResult(filepath.Join(out, "threats", "seed-3"))
		if err != nil {
			t.Fatal(err)
		}
		checkPhases(t, res, "pretrain", "detection")
		if res.Pretrain == nil || res.Pretrain.Objective != "mask" || res.Pretrain.Rows != 67343 || len(res.Pretrain.Losses) != 1 {
			t.Errorf("%s: pretrain record %+v", rule, res.Pretrain)
		}
		d := res.Detection
		if d == nil || d.FitNormal != 1000 || d.TestNormal != 9711 || !(d.Report.AUROC > 0.5 && d.Report.AUROC <= 1) {
			t.Fatalf("%s: detection %+v", rule, d)
		}
		// Per type: the 8 novel attack types of KDDTest+ with >= 20 records.
		if len(d.Report.PerType) != 8 || len(d.Report.ROC.FPR) > maxROCPoints {
			t.Errorf("%s: %d attack types, %d ROC points", rule, len(d.Report.PerType), len(d.Report.ROC.FPR))
		}
		if rule == "f1" && !(d.TuneF1 > 0) {
			t.Errorf("f1 threshold without a tuning F1: %+v", d)
		}
		if s.Detection == nil || s.Detection.Metrics["auroc"].N != 1 {
			t.Errorf("%s: run summary detection %+v", rule, s.Detection)
		}
		for _, f := range []string{"roc.png", "report.md"} {
			if _, err := os.Stat(filepath.Join(out, "threats", f)); err != nil {
				t.Errorf("%s: missing %s", rule, f)
			}
		}
		checkRunLevelFilesListed(t, filepath.Join(out, "threats"))
	}
}

func TestThreatOptionChecks(t *testing.T) {
	cases := map[string]string{
		"learner: {algo: nearest-centroid}\npretrain: {objective: denoise}": "nearest-centroid has no encoder",
		"pretrain: {objective: mask, mask_rate: 1.5}":                       "pretrain.mask_rate: 1.5",
		"detection: {method: cosine}":                                       "detection.method",
		"detection: {method: euclidean, target_far: 0}":                     "detection.target_far",
		"split: {protocol: supervised}\ndetection: {method: euclidean}":     "open-set detection is for the episodic",
		"multitask: {binary_weight: -1}":                                    "multitask.binary_weight: -1, want a finite weight",
		"multitask: {category_weight: .inf}":                                "multitask.category_weight: want a finite number",
		"learner: {algo: nearest-centroid}\nmultitask: {binary_weight: 1}":  "nearest-centroid has no encoder for auxiliary heads",
		"learner: {engine: gorgonia}\nmultitask: {category_weight: 1}":      "implemented by the fused engine",
		"split: {protocol: supervised}\nmultitask: {binary_weight: 1}":      "episodic (novel) protocol",
		"split: {normal: false}\nmultitask: {binary_weight: 1}":             "split.normal is false",
	}
	for body, want := range cases {
		_, err := Parse([]byte("dataset: {name: nsl-kdd}\n"+body+"\n"), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", body, err, want)
		}
	}
}

func TestAdversarialTrainingAndRobustness(t *testing.T) {
	s, out := runSpec(t, `
name: adv
dataset: {name: nsl-kdd}
split: {val_fraction: 0.4, min_records: 20}
episodes: {normal_way: true, meta_batch: 2, train_steps: 10, val_every: 5, val_episodes: 3, test_episodes: 5}
adversarial: {train_eps: 0.05, eval_budgets: [0.02, 0.1], pgd_steps: 3, eval_episodes: 6}
seeds: [1, 2]
`, "adv.yaml")
	if s.Variant != "adversarial-0.05" || s.Label() != "protonet + adversarial-0.05" {
		t.Errorf("variant %q", s.Variant)
	}
	if len(s.Robustness) == 0 {
		t.Fatal("no robustness results")
	}
	var robustSec float64
	for _, seed := range []string{"seed-1", "seed-2"} {
		res, err := readSeedResult(filepath.Join(out, "adv", seed))
		if err != nil {
			t.Fatal(err)
		}
		checkPhases(t, res, "robustness")
		robustSec += res.Phases.Robustness
	}
	if s.Phases == nil || s.Phases.Robustness != robustSec {
		t.Errorf("run phases %+v, want the seeds' robustness times added up (%g s)", s.Phases, robustSec)
	}
	clean := s.Robustness[0]
	if clean.Eps != 0 {
		t.Fatalf("first result %+v, want the clean score", clean)
	}
	for _, r := range s.Robustness {
		if r.Accuracy.N != 12 { // 6 episodes x 2 seeds
			t.Errorf("%s at %g: over %d episodes, want 12", r.Attack, r.Eps, r.Accuracy.N)
		}
		// A small budget may flip a few predictions either way; the largest
		// must cost accuracy.
		switch {
		case r.Eps == 0.1 && !(r.Accuracy.Mean < clean.Accuracy.Mean):
			t.Errorf("%s at %g: accuracy %.3f not below clean %.3f", r.Attack, r.Eps, r.Accuracy.Mean, clean.Accuracy.Mean)
		case r.Eps > 0 && r.Accuracy.Mean > clean.Accuracy.Mean+0.02:
			t.Errorf("%s at %g: accuracy %.3f well above clean %.3f", r.Attack, r.Eps, r.Accuracy.Mean, clean.Accuracy.Mean)
		}
	}
	for _, f := range []string{"robustness.png", "report.md"} {
		if _, err := os.Stat(filepath.Join(out, "adv", f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	checkRunLevelFilesListed(t, filepath.Join(out, "adv"))
	if _, err := Parse([]byte("dataset: {name: nsl-kdd}\nlearner: {engine: gorgonia}\nadversarial: {eval_budgets: [0.1]}\n"), "x.yaml"); err == nil || !strings.Contains(err.Error(), "fused engine") {
		t.Errorf("gorgonia engine with adversarial evaluation: %v", err)
	}
}

func TestMultitaskHeads(t *testing.T) {
	specs, err := Parse([]byte(`
name: mt
dataset: {name: nsl-kdd}
split: {val_fraction: 0.4, min_records: 20}
episodes: {normal_way: true, meta_batch: 2, train_steps: 30, val_every: 15, val_episodes: 3, test_episodes: 10}
learner: {algo: [protonet, maml], inner_steps: 1, test_inner_steps: 1, inner_lr: 0.1}
multitask: {binary_weight: 0.5, category_weight: [0, 1]}
seeds: [1, 2]
`), "mt.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 4 || specs[1].Name != "mt-protonet-cw1" {
		t.Fatalf("%d specs, second named %q", len(specs), specs[1].Name)
	}
	out := t.TempDir()
	r := NewRunner(RunOptions{OutDir: out, Log: &bytes.Buffer{}})
	for _, spec := range specs {
		s, err := r.Run(context.Background(), spec)
		if err != nil {
			t.Fatalf("%s: %v", spec.Name, err)
		}
		m := s.Multitask
		if m == nil || m.BinaryWeight != 0.5 {
			t.Fatalf("%s: multitask summary %+v", spec.Name, m)
		}
		res, err := readSeedResult(filepath.Join(out, spec.Name, "seed-2"))
		if err != nil {
			t.Fatal(err)
		}
		mr := res.Multitask
		// Every test episode has a normal way: 10 episodes x 5 ways x 15 queries.
		var rows int64
		for _, row := range mr.Binary.Counts {
			for _, c := range row {
				rows += c
			}
		}
		if rows != 750 || mr.Binary.Counts[0][0]+mr.Binary.Counts[0][1] != 150 {
			t.Errorf("%s: binary confusion %v, want 750 rows of which 150 normal", spec.Name, mr.Binary.Counts)
		}
		if auc := mr.Metrics["binary_auroc"]; !(auc >= 0 && auc <= 1) {
			t.Errorf("%s: binary head AUROC %g", spec.Name, auc)
		}
		if spec.Multitask.CategoryWeight == 0 {
			if mr.Category != nil || s.Variant != "multitask-b0.5" {
				t.Errorf("%s: category head without a weight, variant %q", spec.Name, s.Variant)
			}
			continue
		}
		if s.Variant != "multitask-b0.5-c1" {
			t.Errorf("%s: variant %q", spec.Name, s.Variant)
		}
		// The meta-train pool's categories; meta-test's novel attacks of
		// those categories are scored, the rest counted as unknown.
		if !slices.Equal(mr.Categories, []string{"dos", "normal", "probe", "r2l", "u2r"}) {
			t.Errorf("%s: categories %v", spec.Name, mr.Categories)
		}
		var scored int64
		for _, row := range mr.Category.Counts {
			for _, c := range row {
				scored += c
			}
		}
		if scored+int64(mr.UnknownRows) != 750 || scored < 150 {
			t.Errorf("%s: %d category rows scored, %d unknown, want 750 in all", spec.Name, scored, mr.UnknownRows)
		}
		if acc := mr.Metrics["category_accuracy"]; !(acc > 0 && acc <= 1) {
			t.Errorf("%s: category accuracy %g", spec.Name, acc)
		}
		for _, f := range []string{"multitask_category.png", "report.md"} {
			if _, err := os.Stat(filepath.Join(out, spec.Name, f)); err != nil {
				t.Errorf("%s: missing %s", spec.Name, f)
			}
		}
		checkRunLevelFilesListed(t, filepath.Join(out, spec.Name))
	}
}

func TestMultitaskPlanCheck(t *testing.T) {
	// A plan that slips past the spec checks still fails before training.
	p := testPlan(t, "protonet")
	p.Protocol.NoNormal = true
	p.Episodes.NormalWay = false
	p.Learner.Aux.BinaryWeight = 1
	_, err := NewRunner(RunOptions{OutDir: t.TempDir(), Log: &bytes.Buffer{}}).runPlan(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), `multitask.binary_weight: the meta-train pool has no "normal" class`) {
		t.Errorf("binary head without normal meta-train traffic: %v", err)
	}
}

// TestAdversarialTrainingPerturbsMetaBatches: with train_eps the meta-steps
// see the FGSM queries, so the first step's loss (same initial weights, same
// draws) is above the clean run's.
func TestAdversarialTrainingPerturbsMetaBatches(t *testing.T) {
	r := NewRunner(RunOptions{OutDir: t.TempDir(), Log: &bytes.Buffer{}})
	firstLoss := func(eps float64) float64 {
		p := testPlan(t, "protonet")
		p.Episodes.TrainSteps, p.Episodes.ValEvery, p.Episodes.TestEpisodes = 1, 0, 1
		p.Adversarial = AdversarialSpec{TrainEps: eps, TrainMix: 1}
		split, err := r.split(p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.runSeed(context.Background(), p, split, kernels.NewCPU(), 1)
		if err != nil {
			t.Fatal(err)
		}
		return res.Curve[0].TrainLoss
	}
	clean, adv := firstLoss(0), firstLoss(0.1)
	if !(adv > clean) {
		t.Errorf("first meta-step loss %g with train_eps 0.1, %g without: the queries were not perturbed", adv, clean)
	}
}

// TestPretrainedEncoderReachesTheLearner: with no meta-training steps the
// evaluated learner's encoder is exactly the one pre-training fits on the
// meta-train pool's normal traffic.
func TestPretrainedEncoderReachesTheLearner(t *testing.T) {
	r := NewRunner(RunOptions{OutDir: t.TempDir(), Log: &bytes.Buffer{}})
	p := testPlan(t, "protonet")
	p.Episodes.TrainSteps, p.Episodes.ValEvery, p.Episodes.TestEpisodes = 0, 0, 1
	pc := train.DefaultPretrainConfig()
	pc.Objective, pc.Epochs, pc.BatchSize = "mask", 1, 4096
	pc.Hidden, pc.Activation = p.Learner.Hidden, p.Learner.Activation
	p.Pretrain = &pc
	split, err := r.split(p)
	if err != nil {
		t.Fatal(err)
	}
	const seed = 4
	res, err := r.runSeed(context.Background(), p, split, kernels.NewCPU(), seed)
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Learner
	cfg.InitSeed = seed
	shape := train.Shape{Ways: 5, Shots: 5, Queries: 15, MetaBatch: 2, Dim: split.Encoder.Dim()}
	ran, err := train.New(cfg, shape, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ran.LoadCheckpoint(bytes.NewReader(res.checkpoint)); err != nil {
		t.Fatal(err)
	}
	_, rows, err := normalRows(p, split)
	if err != nil {
		t.Fatal(err)
	}
	pc.Seed = seed
	x := gather(split.Train, rows)
	pt, err := train.Pretrain(context.Background(), pc, x, len(rows), split.Train.Dim, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := train.New(cfg, shape, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pt.InitLearner(want); err != nil {
		t.Fatal(err)
	}
	const n = 50
	h := cfg.Hidden[len(cfg.Hidden)-1]
	a, b := make([]float32, n*h), make([]float32, n*h)
	if err := ran.(train.Embedder).Embed(x[:n*split.Train.Dim], n, a); err != nil {
		t.Fatal(err)
	}
	if err := want.(train.Embedder).Embed(x[:n*split.Train.Dim], n, b); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Errorf("the evaluated encoder is not the pre-trained one: embeddings %v, want %v", a[:4], b[:4])
	}
}

// detectionFixture is the test plan of a ProtoNet run with detection det,
// its split and an untrained learner for it.
func detectionFixture(t *testing.T, det DetectionSpec) (plan, *datasets.Split, train.Learner) {
	t.Helper()
	r := NewRunner(RunOptions{OutDir: t.TempDir(), Log: &bytes.Buffer{}})
	p := testPlan(t, "protonet")
	p.Detection = det
	split, err := r.split(p)
	if err != nil {
		t.Fatal(err)
	}
	cfg := p.Learner
	cfg.InitSeed = 1
	l, err := train.New(cfg, train.Shape{Ways: 5, Shots: 5, Queries: 15, MetaBatch: 2, Dim: split.Encoder.Dim()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, split, l
}

// TestDetectionThresholdOnHeldOutNormals: the far rule's threshold is the
// one ThresholdAtFAR sets on the sampled normal flows that the normal model
// was not fitted on, so their false-alarm rate is at most the target.
func TestDetectionThresholdOnHeldOutNormals(t *testing.T) {
	p, split, l := detectionFixture(t, DetectionSpec{Method: "mahalanobis", Shrinkage: detect.LedoitWolf, Threshold: "far", TargetFAR: 0.05, MaxNormal: 2000})
	const seed = 5
	res, err := runDetection(p, split, l, seed)
	if err != nil {
		t.Fatal(err)
	}
	// The same seeded sample, halved as runDetection halves it.
	_, all, err := normalRows(p, split)
	if err != nil {
		t.Fatal(err)
	}
	rows := sample(rand.New(rand.NewPCG(seed, 0xd7ec7)), all, p.Detection.MaxNormal)
	half := len(rows) / 2
	embed := func(rows []int32) []float32 {
		out := make([]float32, len(rows)*l.(train.Embedder).EmbedDim())
		if err := l.(train.Embedder).Embed(gather(split.Train, rows), len(rows), out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	h := l.(train.Embedder).EmbedDim()
	m, err := detect.Fit(detect.Mahalanobis, embed(rows[:half]), half, h, detect.LedoitWolf)
	if err != nil {
		t.Fatal(err)
	}
	held := make([]float64, len(rows)-half)
	if err := m.Score(embed(rows[half:]), len(held), held); err != nil {
		t.Fatal(err)
	}
	want, err := detect.ThresholdAtFAR(held, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	alarms := 0
	for _, s := range held {
		if s > res.Report.Threshold {
			alarms++
		}
	}
	if res.Report.Threshold != want || float64(alarms) > 0.05*float64(len(held)) || res.FitNormal != half || res.TuneFlows != len(held) {
		t.Errorf("threshold %g (%d of %d held-out normal flows above it, fitted on %d), want %g set on the %d held-out flows",
			res.Report.Threshold, alarms, len(held), res.FitNormal, want, len(held))
	}
}

// TestDetectionSingularNamesShrinkage: ten normal flows (five to fit on)
// cannot span the embedding, so without shrinkage the covariance is
// singular, which only shows after training: the error names the key.
func TestDetectionSingularNamesShrinkage(t *testing.T) {
	p, split, l := detectionFixture(t, DetectionSpec{Method: "mahalanobis", Shrinkage: 0, Threshold: "far", TargetFAR: 0.05, MaxNormal: 10})
	_, err := runDetection(p, split, l, 5)
	if !errors.Is(err, detect.ErrIllConditioned) || !strings.HasPrefix(err.Error(), "detection.shrinkage 0: ") {
		t.Errorf("error %v, want an ill-conditioned covariance naming detection.shrinkage 0", err)
	}
}

// Normal embeddings all alike (a collapsed model) have no covariance to
// shrink: the error says so and names the keys that can mend it, not
// detection.shrinkage.
func TestDetectionNoVarianceNamesTheKeys(t *testing.T) {
	_, err := detect.Fit(detect.Mahalanobis, make([]float32, 10), 10, 1, detect.LedoitWolf)
	err = fitError(err, detect.LedoitWolf)
	for _, want := range []string{"detection.method mahalanobis: ", "zero covariance", "detection.method: euclidean", "model.hidden"} {
		if !errors.Is(err, detect.ErrNoVariance) || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want ErrNoVariance and %q", err, want)
		}
	}
}

// TestTestEpisodesIndependentOfTraining checks that for a seed the meta-test
// episodes are the same whatever the learner, its training and validation,
// so that learners are compared on the same episodes.
func TestTestEpisodesIndependentOfTraining(t *testing.T) {
	r := NewRunner(RunOptions{OutDir: t.TempDir(), Log: &bytes.Buffer{}})
	be := kernels.NewCPU()
	run := func(algo string, edit func(*episodePlan)) *SeedResult {
		t.Helper()
		p := testPlan(t, algo)
		edit(&p.Episodes)
		split, err := r.split(p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.runSeed(context.Background(), p, split, be, 4)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	untrained := run("nearest-centroid", func(e *episodePlan) { e.TrainSteps, e.ValEvery, e.MetaBatch = 0, 0, 1 })
	trained := run("nearest-centroid", func(e *episodePlan) { e.TrainSteps, e.ValEvery, e.ValEpisodes, e.MetaBatch = 25, 5, 7, 3 })
	// nearest-centroid learns nothing: the same episodes give the same scores.
	if !slices.Equal(untrained.episodes, trained.episodes) {
		t.Errorf("nearest-centroid scores differ with training and validation:\n%v\n%v", untrained.episodes, trained.episodes)
	}
	proto := run("protonet", func(*episodePlan) {})
	if a, b := truthCounts(untrained.Confusion), truthCounts(proto.Confusion); !slices.Equal(a, b) {
		t.Errorf("query rows per meta-test class: %v for nearest-centroid, %v for protonet", a, b)
	}
}

// truthCounts are the rows of a confusion table's classes, summed.
func truthCounts(c ConfusionTable) []int64 {
	out := make([]int64, len(c.Counts))
	for i, row := range c.Counts {
		for _, n := range row {
			out[i] += n
		}
	}
	return out
}
