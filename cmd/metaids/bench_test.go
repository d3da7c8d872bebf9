package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metaids/metaids/kernels"
	"github.com/metaids/metaids/train"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runMain(context.Background(), &env{stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestBenchJSON(t *testing.T) {
	code, out, errs := runCmd("bench", "--algo", "maml", "--ways", "3", "--shots", "2", "--queries", "3", "--meta-batch", "2",
		"--inner-steps", "2", "--hidden", "16,8", "--dim", "10", "--steps", "5", "--warmup", "1", "--repeats", "3", "--threads", "1", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Algo        string  `json:"algo"`
		StepsPerSec float64 `json:"steps_per_sec"`
		TasksPerSec float64 `json:"tasks_per_sec"`
		Allocs      float64 `json:"allocs_per_step"`
		Hidden      []int   `json:"hidden"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Algo != "maml" || r.StepsPerSec <= 0 || r.TasksPerSec != 2*r.StepsPerSec || len(r.Hidden) != 2 {
		t.Errorf("unexpected result %+v", r)
	}
}

func TestBenchText(t *testing.T) {
	code, out, errs := runCmd("bench", "--algo", "protonet", "--dim", "8", "--hidden", "8", "--steps", "3", "--warmup", "0", "--repeats", "1")
	if code != 0 || !strings.Contains(out, "steps/s") {
		t.Fatalf("exit %d, output %q, errors %q", code, out, errs)
	}
}

func TestBenchEvalText(t *testing.T) {
	code, out, errs := runCmd("bench", "--eval", "--meta-batch", "1,2", "--dim", "8", "--hidden", "8", "--steps", "3", "--warmup", "0", "--repeats", "1")
	if code != 0 || !strings.Contains(out, "episodes/s") || !strings.Contains(out, "error rate") {
		t.Fatalf("exit %d, output %q, errors %q", code, out, errs)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // in the message, which names the flag
	}{
		{[]string{"bench", "--algo", "nope"}, `--algo: unknown learner "nope"`},
		{[]string{"bench", "--hidden", "a,b"}, "--hidden"},
		{[]string{"bench", "--hidden", "64,0"}, "--hidden: layer 1 has width 0"},
		{[]string{"bench", "--format", "xml"}, "--format"},
		{[]string{"bench", "--ways", "1"}, "--ways: 1, want >= 2"},
		{[]string{"bench", "--dim", "0"}, "--dim: 0, want >= 1"},
		{[]string{"bench", "--meta-batch", "4,0"}, "--meta-batch: 0, want >= 1"},
		{[]string{"bench", "--inner-steps", "0"}, "--inner-steps: 0, want >= 1"},
		{[]string{"bench", "--activation", "gelu"}, `--activation: unknown activation "gelu"`},
		{[]string{"bench", "--algo", "reptile", "--engine", "gorgonia"}, "--engine: the gorgonia engine implements"},
		{[]string{"bench", "--steps", "0"}, "--steps must be at least 1 (got 0)"},
		{[]string{"bench", "--repeats", "0"}, "--repeats must be at least 1 (got 0)"},
		{[]string{"bench", "--warmup", "-1"}, "--warmup must be at least 0 (got -1)"},
		{[]string{"bench", "--threads", "-3"}, "--threads must be at least 0 (got -3)"},
		{[]string{"bench", "--threads", "100000"}, "--threads must be at most 1024 (got 100000)"},
		{[]string{"bench", "extra"}, `invalid arguments: unexpected arguments ["extra"]`},
		{[]string{"bench", "--hidden", "64,,32"}, `invalid arguments: --hidden: "64,,32" is not an integer list`},
		{[]string{"bench", "--algo", "protonet,maml, protonet"}, "--algo: protonet is listed twice"},
		{[]string{"bench", "--meta-batch", "1,2,01"}, "--meta-batch: 1 is listed twice"},
		{[]string{"bench", "--device", "gpu"}, `--device "gpu": want auto, cpu or cuda`},
		{[]string{"bench", "--backend", "tpu"}, `--device "tpu": want auto, cpu or cuda`},
		{[]string{"bench", "--device", ""}, `--device "": want auto, cpu or cuda`},
	} {
		code, _, errs := runCmd(c.args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, errs, c.want)
		}
	}
	// Sizes beyond the machine's memory name the flag to lower.
	if train.MachineMemory() > 0 {
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"bench", "--meta-batch", "1,100000000"}, "--meta-batch 100000000: needs at least"},
			{[]string{"bench", "--algo", "maml", "--inner-steps", "1000000000"}, "--inner-steps 1000000000: the inner loop keeps an adapted copy of the model per step: at least"},
			{[]string{"bench", "--algo", "reptile", "--inner-steps", "3000000000"}, "--inner-steps 3000000000: the inner loop keeps a record of every step: at least"},
			{[]string{"bench", "--algo", "maml", "--meta-batch", "1024", "--inner-steps", "100", "--hidden", "16384", "--threads", "1024"},
				"--threads 1024: each task adapted at once keeps its own inner-loop buffers: at least"},
			{[]string{"bench", "--hidden", "1000000000,1000000000"}, "--hidden [1000000000 1000000000] (with --dim 122): the model needs at least"},
			{[]string{"bench", "--shots", "1000000000"}, "--ways 5, --shots 1000000000, --queries 15: one episode needs at least"},
		} {
			if code, _, errs := runCmd(c.args...); code != 2 || !strings.Contains(errs, c.want) {
				t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, errs, c.want)
			}
		}
	}
	// cuda is a wrong command line only where the build lacks it.
	if !kernels.Compiled("cuda") {
		for _, cmd := range []string{"bench", "run"} {
			args := []string{cmd, "--device", "cuda"}
			if cmd == "run" {
				args = append(args, "../../experiments/nsl-kdd/protonet-5way5shot.yaml")
			}
			if code, _, errs := runCmd(args...); code != 2 || !strings.Contains(errs, "--device cuda: this build has no cuda backend") {
				t.Errorf("%v: exit %d, stderr %q; want exit 2 naming the missing backend", args, code, errs)
			}
		}
	}
}

func TestBenchSweepAgainstPyTorch(t *testing.T) {
	ref := filepath.Join(t.TempDir(), "pytorch.json")
	// The shape bench/pytorch_bench.py prints, with a meta-batch that
	// failed there.
	env := `"env": {"gpu": "test", "ways": 3, "shots": 2, "queries": 2, "dim": 8, "hidden": 8, "inner_steps": 1, "first_order": false}`
	if err := os.WriteFile(ref, []byte(`{`+env+`, "results": [
		{"algo": "protonet", "meta_batch": 1, "tasks_per_sec": 100.0},
		{"algo": "protonet", "meta_batch": 2, "error": "out of memory"},
		{"algo": "maml", "meta_batch": 2, "tasks_per_sec": 50.0}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd("bench", "--algo", "protonet,maml", "--meta-batch", "1,2", "--ways", "3", "--shots", "2", "--queries", "2",
		"--dim", "8", "--hidden", "8", "--steps", "3", "--warmup", "0", "--repeats", "1", "--compare", ref, "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var doc struct {
		Env     map[string]any `json:"env"`
		Results []struct {
			Algo      string  `json:"algo"`
			MetaBatch int     `json:"meta_batch"`
			TasksPS   float64 `json:"tasks_per_sec"`
			PyTorch   float64 `json:"pytorch_tasks_per_sec"`
			SpeedUp   float64 `json:"speed_up"`
			Resident  bool    `json:"device_resident"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(doc.Results) != 4 || doc.Env["backend"] != "cpu" {
		t.Fatalf("sweep %s", out)
	}
	for i, want := range []struct {
		algo    string
		mb      int
		pytorch float64
	}{{"protonet", 1, 100}, {"protonet", 2, 0}, {"maml", 1, 0}, {"maml", 2, 50}} {
		r := doc.Results[i]
		if r.Algo != want.algo || r.MetaBatch != want.mb || r.PyTorch != want.pytorch || !(r.TasksPS > 0) || r.Resident {
			t.Errorf("row %d: %+v, want %s meta-batch %d beside PyTorch's %g", i, r, want.algo, want.mb, want.pytorch)
		}
		if want.pytorch > 0 && math.Abs(r.SpeedUp-r.TasksPS/want.pytorch) > 1e-9 {
			t.Errorf("row %d: speed-up %g, want %g", i, r.SpeedUp, r.TasksPS/want.pytorch)
		}
	}

	small := []string{"--ways", "3", "--shots", "2", "--queries", "2", "--dim", "8", "--hidden", "8", "--steps", "2", "--warmup", "0", "--repeats", "1"}
	code, out, _ = runCmd(append([]string{"bench", "--meta-batch", "1,2", "--compare", ref}, small...)...)
	if code != 0 || !strings.Contains(out, "PyTorch tasks/s") || !strings.Contains(out, "speed-up") {
		t.Errorf("table sweep: exit %d\n%s", code, out)
	}
	for _, bad := range []string{filepath.Join(t.TempDir(), "missing.json"), writeTemp(t, "not json"), writeTemp(t, `{"results": []}`),
		writeTemp(t, `{"env": {"gpu": "test"}, "results": [{"algo": "maml", "meta_batch": 2, "tasks_per_sec": 50.0}]}`), // which settings?
		writeTemp(t, `{`+env+`, "results": [{"algo": "maml", "meta_batch": 2, "tasks_per_sec": 50.0}, {"algo": "maml", "meta_batch": 2, "tasks_per_sec": 40.0}]}`),
		writeTemp(t, `{`+env+`, "results": [{"algo": "maml", "meta_batch": 2, "tasks_per_sec": -5}]}`)} {
		if code, _, errs := runCmd(append([]string{"bench", "--compare", bad}, small...)...); code != 2 || !strings.Contains(errs, "--compare") {
			t.Errorf("--compare %s: exit %d, %s", bad, code, errs)
		}
	}
	// A value of the wrong kind is named by the file's key, not a Go type.
	for doc, want := range map[string]string{`[1]`: "the top level is a JSON array", `{"env": {"ways": "5"}}`: "env.ways is a JSON string"} {
		bad := writeTemp(t, doc)
		if code, _, errs := runCmd(append([]string{"bench", "--compare", bad}, small...)...); code != 2 || !strings.Contains(errs, "--compare "+bad+": "+want) || strings.Contains(errs, "Go ") {
			t.Errorf("--compare %s: exit %d, %s; want exit 2 and %q", doc, code, errs, want)
		}
	}
	// Figures of other settings, or of training beside evaluation, are
	// not compared.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--ways", "5"}, "timed 3-way 2-shot 2-query episodes, dim 8, hidden [8], 1 inner steps, relu, float32; this bench is 5-way"},
		{[]string{"--hidden", "8,8"}, "hidden [8 8]"},
		{[]string{"--inner-steps", "2"}, "2 inner steps"},
		{[]string{"--activation", "tanh"}, "tanh"},
		{[]string{"--float64"}, "float64: run both with the same settings"},
		{[]string{"--eval"}, "--compare with --eval: bench/pytorch_bench.py times meta-training, not evaluation"},
	} {
		args := append(append([]string{"bench", "--algo", "maml", "--compare", ref}, small...), c.args...)
		if code, _, errs := runCmd(args...); code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, %s; want 2 and %q", c.args, code, errs, c.want)
		}
	}
	// Rows of first-order MAML there are fomaml here.
	fo := writeTemp(t, `{`+strings.Replace(env, `"first_order": false`, `"first_order": true`, 1)+`, "results": [{"algo": "maml", "meta_batch": 1, "tasks_per_sec": 50.0}]}`)
	code, out, errs = runCmd(append([]string{"bench", "--algo", "maml,fomaml", "--compare", fo, "--format", "json"}, small...)...)
	doc.Results = nil
	if err := json.Unmarshal([]byte(out), &doc); code != 0 || err != nil || len(doc.Results) != 2 || doc.Results[0].PyTorch != 0 || doc.Results[1].PyTorch != 50 {
		t.Errorf("first-order reference: exit %d, %v, %+v %s", code, err, doc.Results, errs)
	}
	if code, _, _ := runCmd("bench", "--meta-batch", "1,x"); code != 2 {
		t.Errorf("bad --meta-batch list: exit %d, want 2", code)
	}
}

func writeTemp(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.json")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The JSON of a measurement records the settings that change it, and where
// it was taken.
func TestBenchJSONRecordsItsSettings(t *testing.T) {
	code, out, errs := runCmd("bench", "--steps", "2", "--warmup", "0", "--repeats", "1", "--format", "json",
		"--engine", "gorgonia", "--activation", "tanh", "--seed", "7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	for k, want := range map[string]any{"engine": "gorgonia", "activation": "tanh", "float64": false, "seed": 7.0, "warmup": 0.0, "backend": "cpu"} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	for _, k := range []string{"device", "commit", "go"} {
		if s, _ := got[k].(string); s == "" {
			t.Errorf("%s missing:\n%s", k, out)
		}
	}
}

// Interrupted, bench says so and exits 1, with no figures.
func TestBenchInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	code := runMain(ctx, &env{stdout: &out, stderr: &errOut}, []string{"bench", "--steps", "2", "--warmup", "0", "--repeats", "1"})
	if code != 1 || !strings.Contains(errOut.String(), "interrupted") || out.Len() != 0 {
		t.Errorf("exit %d, stderr %q, stdout %q; want exit 1, interrupted and no output", code, errOut.String(), out.String())
	}
}
