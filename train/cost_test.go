package train

import "testing"

func TestModelCost(t *testing.T) {
	s := Shape{Ways: 5, Shots: 2, Queries: 3, MetaBatch: 1, Dim: 10}
	// Hidden [8, 4]: layers 10x8 and 8x4 (+ a 4x5 head where there is one).
	enc := 10*8 + 8 + 8*4 + 4
	cases := []struct {
		algo         string
		params, macs int
	}{
		{"protonet", enc, 10*8 + 8*4 + 5*4},
		{"maml", enc + 4*5 + 5, 10*8 + 8*4 + 4*5},
		{"fomaml", enc + 4*5 + 5, 10*8 + 8*4 + 4*5},
		{"metasgd", 2 * (enc + 4*5 + 5), 10*8 + 8*4 + 4*5},
		{"finetune", enc + 4*7 + 7, 10*8 + 8*4 + 5*4},
		{"nearest-centroid", 0, 5 * 10},
	}
	for _, c := range cases {
		cfg := DefaultConfig(c.algo)
		cfg.Hidden = []int{8, 4}
		cfg.PretrainClasses = 7
		got := ModelCost(cfg, s)
		if got.Params != c.params || got.MACsPerFlow != c.macs {
			t.Errorf("%s: %+v, want params %d, MACs %d", c.algo, got, c.params, c.macs)
		}
		// The count is the learner's real parameter vector.
		l, err := New(cfg, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := l.(engine); ok && e.numParams() != got.Params {
			t.Errorf("%s: learner has %d parameters, ModelCost says %d", c.algo, e.numParams(), got.Params)
		}
	}
}

func TestClassifierCost(t *testing.T) {
	cfg := DefaultClassifierConfig()
	cfg.Hidden = []int{8}
	c, err := NewClassifier(cfg, 10, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Cost(); got.Params != 10*8+8+8*3+3 || got.MACsPerFlow != 10*8+8*3 {
		t.Errorf("classifier cost %+v", got)
	}
}
