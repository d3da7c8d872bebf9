package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
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

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--algo", "nope"},
		{"bench", "--hidden", "a,b"},
		{"bench", "--format", "xml"},
		{"bench", "--ways", "1"},
		{"bench", "extra"},
	} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
