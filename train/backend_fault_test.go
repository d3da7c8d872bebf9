package train

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/metaids/metaids/kernels"
)

// faultyBackend is a backend whose device has failed: every call panics
// with a kernels.Failure, as the cuda backend's methods do.
type faultyBackend struct{ kernels.Backend }

var errDeviceLost = errors.New("device lost")

func (faultyBackend) fail() { panic(kernels.Failure{Err: errDeviceLost}) }
func (f faultyBackend) PairwiseSqDist(dst, x, y []float32, B, Q, N, D int) {
	f.fail()
}
func (f faultyBackend) PairwiseSqDistGrad(gx, gy, gout, x, y []float32, B, Q, N, D int) {
	f.fail()
}
func (f faultyBackend) SGDStep(p, g []float32, lr, weightDecay float32)             { f.fail() }
func (f faultyBackend) AdamStep(p, g, m, v []float32, t int, hp kernels.AdamParams) { f.fail() }

// A backend that fails under a learner, a pre-training or a classifier is
// an error that wraps the device's, never a panic.
func TestFailedBackendIsAnError(t *testing.T) {
	be := faultyBackend{kernels.NewCPU()}
	for _, c := range []struct{ algo, engine string }{{"protonet", "fused"}, {"anil", "fused"}, {"protonet", "gorgonia"}, {"maml", "gorgonia"}} {
		cfg := smallConfig(c.algo)
		cfg.Engine = c.engine
		l, err := New(cfg, small, be)
		if err != nil {
			t.Fatal(err)
		}
		// The graph engine's machine keeps only the text of an op's error.
		if _, err := l.MetaStep(tinyBatch(t, small, 1, 1)); err == nil || !strings.Contains(err.Error(), errDeviceLost.Error()) {
			t.Errorf("%s (%s): MetaStep on a failed backend gave %v", c.algo, c.engine, err)
		}
	}

	x := make([]float32, 16*small.Dim)
	for i := range x {
		x[i] = float32(i%5) * 0.2
	}
	pc := DefaultPretrainConfig()
	pc.Hidden, pc.Epochs, pc.BatchSize = []int{4}, 1, 8
	if _, err := Pretrain(context.Background(), pc, x, 16, small.Dim, be, nil); !errors.Is(err, errDeviceLost) {
		t.Errorf("Pretrain on a failed backend gave %v", err)
	}

	cc := DefaultClassifierConfig()
	cc.Epochs = 1
	clf, err := NewClassifier(cc, small.Dim, 2, be)
	if err != nil {
		t.Fatal(err)
	}
	y := make([]int32, 16)
	for i := range y {
		y[i] = int32(i % 2)
	}
	if err := clf.Fit(context.Background(), x, y, 16, nil); !errors.Is(err, errDeviceLost) {
		t.Errorf("classifier Fit on a failed backend gave %v", err)
	}
}
