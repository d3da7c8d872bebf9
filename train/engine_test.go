package train

import (
	"fmt"
	"strings"
	"testing"
)

func TestEngineSelection(t *testing.T) {
	shape := Shape{Ways: 3, Shots: 2, Queries: 2, MetaBatch: 1, Dim: 4}
	for _, algo := range []string{"protonet", "maml", "fomaml"} {
		cfg := DefaultConfig(algo)
		cfg.Hidden, cfg.InnerSteps = []int{5}, 1
		cfg.Engine = "gorgonia"
		l, err := New(cfg, shape, nil)
		if err != nil {
			t.Fatalf("%s on gorgonia: %v", algo, err)
		}
		if got := fmt.Sprintf("%T", l); !strings.HasPrefix(got, "*train.graph") {
			t.Errorf("%s with engine gorgonia built %s", algo, got)
		}
		cfg.Engine = ""
		l, err = New(cfg, shape, nil)
		if got := fmt.Sprintf("%T", l); err != nil || strings.HasPrefix(got, "*train.graph") {
			t.Errorf("%s with the default engine built %s (%v)", algo, got, err)
		}
	}
	cfg := DefaultConfig("anil")
	cfg.Engine = "gorgonia"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "not anil") {
		t.Errorf("anil on gorgonia: %v", err)
	}
	cfg.Engine = "tensorflow"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"tensorflow", want fused or gorgonia`) {
		t.Errorf("unknown engine: %v", err)
	}
}
