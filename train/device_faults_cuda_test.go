//go:build metaids_cuda

package train

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels/cuda"
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

// optState is what a meta-step updates: the parameters, Adam's moments
// (nil with SGD), the optimiser's step count and Steps().
type optState struct {
	p, m, v  []float32
	t, steps int
}

// deviceState reads dl's parameters and moments from the device itself.
func deviceState(t *testing.T, dl *devLearner) optState {
	t.Helper()
	s := optState{t: dl.base.opt.t, steps: dl.Steps()}
	for _, x := range []struct {
		dst *[]float32
		src cuda.Buffer
	}{{&s.p, dl.params}, {&s.m, dl.mom}, {&s.v, dl.vel}} {
		if x.src.IsNil() {
			continue
		}
		*x.dst = make([]float32, x.src.Len())
		if err := dl.dev.Download(*x.dst, x.src); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// hostState is a copy of a float32 CPU learner's state.
func hostState(t *testing.T, l Learner) optState {
	t.Helper()
	var b *base[float32]
	switch h := l.(type) {
	case *protoNet[float32]:
		b = &h.base
	case *gbml[float32]:
		b = &h.base
	default:
		t.Fatalf("hostState of a %T", l)
	}
	return optState{p: slices.Clone(b.params), m: slices.Clone(b.opt.m), v: slices.Clone(b.opt.v), t: b.opt.t, steps: b.steps}
}

// sameState fails unless got is want, bit for bit.
func sameState(t *testing.T, what string, got, want optState) {
	t.Helper()
	if got.t != want.t || got.steps != want.steps {
		t.Errorf("%s: optimiser step %d and Steps() %d, want %d and %d", what, got.t, got.steps, want.t, want.steps)
	}
	for _, x := range []struct {
		name      string
		got, want []float32
	}{{"parameter", got.p, want.p}, {"first moment", got.m, want.m}, {"second moment", got.v, want.v}} {
		if len(x.got) != len(x.want) {
			t.Fatalf("%s: %d values of %s, want %d", what, len(x.got), x.name, len(x.want))
		}
		for i, v := range x.got {
			if math.Float32bits(v) != math.Float32bits(x.want[i]) {
				t.Errorf("%s: %s %d is %g, want %g", what, x.name, i, v, x.want[i])
				break
			}
		}
	}
}

// A step whose loss is not finite stops on the device as on the host (a NaN
// feature: the device ReLU passes NaN on as Go's max(v, 0) does) and leaves
// both learners as they were: parameters, Adam's moments and step count,
// Steps(). The device learns of the loss only after the update is queued,
// so its update kernels read the loss themselves. A good step after it goes
// on from there, on both alike.
func TestDeviceLearnerSkipsANonFiniteStep(t *testing.T) {
	be := gpuBackend(t)
	for _, algo := range []string{"protonet", "maml"} {
		for _, opt := range []string{"sgd", "adam"} {
			t.Run(algo+"/"+opt, func(t *testing.T) {
				cfg := devConfig(algo, "relu")
				cfg.Optimizer.Name = opt
				l, err := New(cfg, devShape, be)
				if err != nil {
					t.Fatal(err)
				}
				dl := l.(*devLearner)
				defer dl.Close()
				host := mustNew(t, cfg, devShape)
				// A good step first, so that the moments and counts are not zero.
				good := tinyBatch(t, devShape, devShape.MetaBatch, 1)
				for _, l := range []Learner{dl, host} {
					if _, err := l.MetaStep(good); err != nil {
						t.Fatal(err)
					}
				}
				devBefore, hostBefore := deviceState(t, dl), hostState(t, host)
				bad := tinyBatch(t, devShape, devShape.MetaBatch, 2)
				bad[0].QueryX[0] = float32(math.NaN())
				for _, l := range []Learner{dl, host} {
					if _, err := l.MetaStep(bad); err == nil || !strings.Contains(err.Error(), "step 2: loss is NaN") {
						t.Errorf("%T: a NaN feature: %v, want an error naming step 2's NaN loss", l, err)
					}
				}
				sameState(t, "device after the failed step", deviceState(t, dl), devBefore)
				sameState(t, "host after the failed step", hostState(t, host), hostBefore)

				next := tinyBatch(t, devShape, devShape.MetaBatch, 3)
				if ld, lh := stepBoth(t, dl, host, next); math.Abs(ld-lh) > 1e-4*math.Abs(lh) {
					t.Errorf("the step after: device loss %g, host %g", ld, lh)
				}
				d, h := deviceState(t, dl), hostState(t, host)
				if d.t != 2 || d.steps != 2 || h.t != 2 || h.steps != 2 {
					t.Errorf("after two good steps: device step count %d, Steps() %d; host %d, %d; want 2", d.t, d.steps, h.t, h.steps)
				}
				hp := make([]float64, len(h.p))
				for i, v := range h.p {
					hp[i] = float64(v)
				}
				if r := relErr32(d.p, hp); !(r <= 1e-4) {
					t.Errorf("after the step that followed, the device parameters differ from the host's by %.3g", r)
				}
			})
		}
	}
}

// Queued steps (QueueStep) skip a non-finite loss's update too, and once
// the steps in flight are in, Steps() and the optimiser's count are the
// updates applied. A step queued behind the failing one was numbered before
// the failure was known: SGD does not read the count, so its parameters
// are MetaStep's bit for bit; Adam's bias correction used the count the
// step was queued with, one more than the updates before it.
func TestDeviceQueuedStepsSkipANonFiniteStep(t *testing.T) {
	be := gpuBackend(t)
	for _, opt := range []string{"sgd", "adam"} {
		t.Run(opt, func(t *testing.T) {
			cfg := devConfig("protonet", "relu")
			cfg.Optimizer.Name = opt
			queued, stepped := twoDevLearners(t, cfg, be)
			good := tinyBatch(t, devShape, devShape.MetaBatch, 1)
			bad := tinyBatch(t, devShape, devShape.MetaBatch, 2)
			bad[0].QueryX[0] = float32(math.NaN())
			next := tinyBatch(t, devShape, devShape.MetaBatch, 3)
			for i, b := range []datasets.Batch{good, bad, next} {
				if _, err := queued.QueueStep(b); err != nil {
					t.Fatalf("queueing step %d: %v", i+1, err)
				}
			}
			if _, err := queued.Drain(); err == nil || !strings.Contains(err.Error(), "step 2: loss is NaN") {
				t.Fatalf("Drain = %v, want an error naming step 2's NaN loss", err)
			}
			losses, err := queued.Drain()
			if err != nil || len(losses) != 1 {
				t.Fatalf("the step behind the failed one: losses %v, %v", losses, err)
			}

			if _, err := stepped.MetaStep(good); err != nil {
				t.Fatal(err)
			}
			if _, err := stepped.MetaStep(bad); err == nil {
				t.Fatal("a NaN feature: no error")
			}
			if opt == "adam" {
				stepped.base.opt.t++ // the count the queued step was given
			}
			loss, err := stepped.MetaStep(next)
			if err != nil {
				t.Fatal(err)
			}
			if opt == "adam" {
				stepped.base.opt.t--
			}
			if loss != losses[0] {
				t.Errorf("the step after: loss %g queued, %g stepped", losses[0], loss)
			}
			got, want := deviceState(t, queued), deviceState(t, stepped)
			if want.t != 2 || want.steps != 2 {
				t.Errorf("stepped: optimiser step %d and Steps() %d, want 2", want.t, want.steps)
			}
			sameState(t, "queued against stepped", got, want)
		})
	}
}
