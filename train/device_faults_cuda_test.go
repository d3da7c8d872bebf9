//go:build metaids_cuda

package train

import (
	"bytes"
	"context"
	"math"
	"testing"
)

// A checkpoint loads onto the cuda backend as a device learner whose device
// copy holds the restored weights: its gradient is the host learner's.
func TestDeviceLearnerLoadsACheckpoint(t *testing.T) {
	be := gpuBackend(t)
	cfg := devConfig("protonet", "relu")
	host := mustNew(t, cfg, devShape)
	// A step first, so that the checkpoint differs from a fresh learner.
	if _, err := host.MetaStep(tinyBatch(t, devShape, devShape.MetaBatch, 2)); err != nil {
		t.Fatal(err)
	}
	var ckpt bytes.Buffer
	if err := host.SaveCheckpoint(&ckpt, nil); err != nil {
		t.Fatal(err)
	}
	l, _, err := Load(bytes.NewReader(ckpt.Bytes()), be)
	if err != nil {
		t.Fatal(err)
	}
	dl, ok := l.(*devLearner)
	if !ok {
		t.Fatalf("Load on the cuda backend gave a %T, want a device learner", l)
	}
	defer dl.Close()
	if r := gradAgainstHost(t, dl, host); r > 1e-4 {
		t.Errorf("loaded device learner's gradient differs from the host's by %.3g", r)
	}
}

// gradAgainstHost is the relative difference between the device learner's
// meta-gradient and the host learner's on the same batch.
func gradAgainstHost(t *testing.T, dl *devLearner, host Learner) float64 {
	t.Helper()
	b := tinyBatch(t, devShape, devShape.MetaBatch, 4)
	got, _ := deviceGrad(t, dl, b)
	want := make([]float64, len(got))
	if _, err := host.(engine).metaGrad(b, want); err != nil {
		t.Fatal(err)
	}
	return relErr32(got, want)
}

// Pre-training initialises the device copy of a device learner's encoder,
// not only its host copy.
func TestDeviceLearnerTakesAPretrainedEncoder(t *testing.T) {
	be := gpuBackend(t)
	cfg := devConfig("protonet", "relu")
	l, err := New(cfg, devShape, be)
	if err != nil {
		t.Fatal(err)
	}
	defer l.(*devLearner).Close()
	pc := DefaultPretrainConfig()
	pc.Hidden, pc.Activation, pc.Epochs, pc.BatchSize = cfg.Hidden, cfg.Activation, 1, 8
	x := make([]float32, 32*devShape.Dim)
	for i := range x {
		x[i] = float32(i%7) * 0.1
	}
	pt, err := Pretrain(context.Background(), pc, x, 32, devShape.Dim, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pt.InitLearner(l); err != nil {
		t.Fatalf("InitLearner on a device learner: %v", err)
	}
	host := mustNew(t, cfg, devShape)
	if err := pt.InitLearner(host); err != nil {
		t.Fatal(err)
	}
	if r := gradAgainstHost(t, l.(*devLearner), host); r > 1e-4 {
		t.Errorf("after pre-training, the device gradient differs from the host's by %.3g", r)
	}
}

// A NaN feature stops a step on the device as on the host: the device ReLU
// propagates NaN as Go's max(v, 0) does.
func TestDeviceLearnerReportsANaNLoss(t *testing.T) {
	be := gpuBackend(t)
	for _, algo := range []string{"protonet", "maml"} {
		cfg := devConfig(algo, "relu")
		l, err := New(cfg, devShape, be)
		if err != nil {
			t.Fatal(err)
		}
		host := mustNew(t, cfg, devShape)
		b := tinyBatch(t, devShape, devShape.MetaBatch, 1)
		b[0].QueryX[0] = float32(math.NaN())
		_, herr := host.MetaStep(b)
		_, derr := l.MetaStep(b)
		if herr == nil || derr == nil {
			t.Errorf("%s: a NaN feature: host error %v, device error %v; want both to stop", algo, herr, derr)
		}
		l.(*devLearner).Close()
	}
}
