//go:build metaids_cuda

package train

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/kernels/cuda"
)

var (
	devOnce sync.Once
	devBE   *cuda.Backend
	devErr  error
)

// gpuBackend returns the cuda backend, or skips the test saying why there is
// none.
func gpuBackend(t testing.TB) *cuda.Backend {
	t.Helper()
	devOnce.Do(func() { devBE, devErr = cuda.Open() })
	if devErr != nil {
		t.Skipf("no usable GPU, skipping: %v", devErr)
	}
	return devBE
}

// devShape is small and deliberately not a multiple of any block size.
var devShape = Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 3, Dim: 11}

func devConfig(algo, act string) Config {
	c := DefaultConfig(algo)
	c.Hidden = []int{7, 5}
	c.Activation = act
	c.InnerSteps = 2
	c.InnerLR = 0.3
	c.InitSeed = 5
	return c
}

// deviceGrad is the device learner's meta-gradient of b, without a step.
func deviceGrad(t *testing.T, l *devLearner, b datasets.Batch) ([]float32, float64) {
	t.Helper()
	fromPool := l.drawnFromPool(b)
	if err := l.stageHost(b, 0, fromPool); err != nil {
		t.Fatal(err)
	}
	if err := l.stageDevice(len(b), fromPool, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.step(len(b)); err != nil {
		t.Fatal(err)
	}
	g := make([]float32, len(l.base.params))
	if err := l.dev.Download(g, l.grad); err != nil {
		t.Fatal(err)
	}
	loss := make([]float32, 1)
	if err := l.dev.Download(loss, l.loss); err != nil {
		t.Fatal(err)
	}
	return g, float64(loss[0])
}

func relErr32(a []float32, b []float64) float64 {
	x := make([]float64, len(a))
	for i, v := range a {
		x[i] = float64(v)
	}
	return relErr(x, b)
}

// TestDeviceMetaGradientMatchesHost compares the whole device meta-step's
// gradient and loss with the fused CPU learner's on the same batch, for
// every device learner and activation, at full and short meta-batches.
func TestDeviceMetaGradientMatchesHost(t *testing.T) {
	be := gpuBackend(t)
	for _, algo := range []string{"protonet", "maml", "fomaml"} {
		for _, act := range []string{"relu", "tanh", "sigmoid", "leaky_relu"} {
			t.Run(algo+"/"+act, func(t *testing.T) {
				cfg := devConfig(algo, act)
				l, err := New(cfg, devShape, be)
				if err != nil {
					t.Fatal(err)
				}
				dl, ok := l.(*devLearner)
				if !ok {
					t.Fatalf("New with the cuda backend gave %T, want the device learner", l)
				}
				defer dl.Close()
				host := mustNew(t, cfg, devShape).(engine)
				for _, n := range []int{devShape.MetaBatch, 1} {
					b := tinyBatch(t, devShape, n, uint64(10+n))
					got, gotLoss := deviceGrad(t, dl, b)
					want := make([]float64, host.numParams())
					wantLoss, err := host.metaGrad(b, want)
					if err != nil {
						t.Fatal(err)
					}
					if r := relErr32(got, want); r > 1e-4 || math.IsNaN(r) {
						t.Errorf("%d tasks: device gradient differs from the host's by %.3g\ndevice %v\nhost   %v", n, r, got[:6], want[:6])
					}
					if math.Abs(gotLoss-wantLoss) > 1e-5*math.Abs(wantLoss) {
						t.Errorf("%d tasks: device loss %g, host %g", n, gotLoss, wantLoss)
					}
				}
			})
		}
	}
}

// TestDeviceTrainingMatchesHost trains a device learner and its CPU twin
// side by side: the losses and the synced parameters must agree, and the
// synced learner must predict, checkpoint and restore like the host one.
func TestDeviceTrainingMatchesHost(t *testing.T) {
	be := gpuBackend(t)
	for _, algo := range []string{"protonet", "maml"} {
		for _, opt := range []string{"adam", "sgd"} {
			t.Run(algo+"/"+opt, func(t *testing.T) {
				cfg := devConfig(algo, "tanh")
				cfg.Optimizer.Name = opt
				cfg.Optimizer.WeightDecay = 1e-3
				if opt == "sgd" {
					cfg.Optimizer.LR = 0.05
				}
				l, err := New(cfg, devShape, be)
				if err != nil {
					t.Fatal(err)
				}
				dl := l.(*devLearner)
				defer dl.Close()
				host := mustNew(t, cfg, devShape)
				for step := 0; step < 6; step++ {
					b := tinyBatch(t, devShape, devShape.MetaBatch, uint64(step))
					if lg, lh := stepBoth(t, l, host, b); math.Abs(lg-lh) > 1e-4*math.Abs(lh) {
						t.Fatalf("step %d: device loss %g, host %g", step, lg, lh)
					}
				}
				if l.Steps() != 6 {
					t.Errorf("Steps() = %d", l.Steps())
				}
				var ckpt bytes.Buffer
				if err := l.SaveCheckpoint(&ckpt, nil); err != nil { // syncs
					t.Fatal(err)
				}
				hp := make([]float64, host.(engine).numParams())
				host.(engine).getParams(hp)
				if r := relErr32(dl.base.params, hp); r > 1e-4 {
					t.Errorf("synced parameters differ from the host learner's by %.3g", r)
				}
				ep := tinyBatch(t, devShape, 1, 99)[0]
				nq := devShape.Ways * devShape.Queries
				l1, s1 := make([]int32, nq), make([]float32, nq*devShape.Ways)
				l2, s2 := make([]int32, nq), make([]float32, nq*devShape.Ways)
				if err := l.Predict(ep, l1, s1); err != nil {
					t.Fatal(err)
				}
				if err := host.Predict(ep, l2, s2); err != nil {
					t.Fatal(err)
				}
				for i := range s1 {
					if math.Abs(float64(s1[i]-s2[i])) > 1e-3 {
						t.Fatalf("score %d: device learner %g, host %g", i, s1[i], s2[i])
					}
				}
				// A restored checkpoint reaches the device: the next steps
				// continue from it.
				fresh, err := New(cfg, devShape, be)
				if err != nil {
					t.Fatal(err)
				}
				defer fresh.(*devLearner).Close()
				if _, err := fresh.LoadCheckpoint(bytes.NewReader(ckpt.Bytes())); err != nil {
					t.Fatal(err)
				}
				b := tinyBatch(t, devShape, devShape.MetaBatch, 50)
				la, _ := l.MetaStep(b)
				lb, _ := fresh.MetaStep(b)
				if la != lb {
					t.Errorf("after restoring, the step's loss is %g, the original's %g", lb, la)
				}
			})
		}
	}
}

// TestDevicePredictBatchMatchesHost classifies a batch on the device in
// one pass and episode by episode on the host.
func TestDevicePredictBatchMatchesHost(t *testing.T) {
	be := gpuBackend(t)
	cfg := devConfig("protonet", "relu")
	l, err := New(cfg, devShape, be)
	if err != nil {
		t.Fatal(err)
	}
	defer l.(*devLearner).Close()
	// Train a little so the predictions are not near ties.
	for step := 0; step < 5; step++ {
		if _, err := l.MetaStep(tinyBatch(t, devShape, devShape.MetaBatch, uint64(step))); err != nil {
			t.Fatal(err)
		}
	}
	b := tinyBatch(t, devShape, devShape.MetaBatch, 77)
	nq := devShape.Ways * devShape.Queries
	got := make([]int32, len(b)*nq)
	if err := l.(BatchPredictor).PredictBatch(b, got); err != nil {
		t.Fatal(err)
	}
	labels, scores := make([]int32, nq), make([]float32, nq*devShape.Ways)
	for i, ep := range b {
		if err := l.Predict(ep, labels, scores); err != nil {
			t.Fatal(err)
		}
		for q := range labels {
			if got[i*nq+q] != labels[q] {
				t.Fatalf("episode %d query %d: device predicts way %d, host %d (scores %v)", i, q, got[i*nq+q], labels[q], scores[q*devShape.Ways:(q+1)*devShape.Ways])
			}
		}
	}
	if err := l.(BatchPredictor).PredictBatch(b, got[:1]); err == nil {
		t.Error("PredictBatch with a short labels slice")
	}

	// MAML adapts to each episode: on the host twin, as Predict.
	m, err := New(devConfig("maml", "relu"), devShape, be)
	if err != nil {
		t.Fatal(err)
	}
	defer m.(*devLearner).Close()
	if _, err := m.MetaStep(tinyBatch(t, devShape, devShape.MetaBatch, 5)); err != nil {
		t.Fatal(err)
	}
	if err := m.(BatchPredictor).PredictBatch(b, got); err != nil {
		t.Fatal(err)
	}
	for i, ep := range b {
		if err := m.Predict(ep, labels, scores); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got[i*nq:(i+1)*nq]) != fmt.Sprint(labels) {
			t.Fatalf("maml episode %d: PredictBatch %v, Predict %v", i, got[i*nq:(i+1)*nq], labels)
		}
	}
}

// devPool is a pool of 6 classes of 20 Gaussian rows each.
func devPool(t *testing.T, dim int) *datasets.Pool {
	t.Helper()
	syn, err := NewSynthetic(6, dim, dim, 1, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	p := &datasets.Pool{Dim: dim}
	ep := datasets.NewEpisode(6, 20, 0, dim)
	if err := syn.Fill(ep, 0, 6); err != nil {
		t.Fatal(err)
	}
	p.X = ep.SupportX
	for c := 0; c < 6; c++ {
		cl := datasets.Class{Name: fmt.Sprintf("c%d", c), Category: "test"}
		for r := 0; r < 20; r++ {
			cl.Rows = append(cl.Rows, int32(c*20+r))
		}
		p.Classes = append(p.Classes, cl)
	}
	return p
}

// TestDevicePoolGather trains two device learners on the same episodes,
// one fed row numbers gathered from its pool matrix on the device, the
// other the features: they must agree bit for bit.
func TestDevicePoolGather(t *testing.T) {
	be := gpuBackend(t)
	pool := devPool(t, devShape.Dim)
	for _, algo := range []string{"protonet", "maml"} {
		da, db := twoDevLearners(t, devConfig(algo, "tanh"), be)
		if err := da.UsePool(pool.X); err != nil {
			t.Fatal(err)
		}
		s, err := datasets.NewSampler(pool, datasets.SamplerConfig{Ways: devShape.Ways, Shots: devShape.Shots, Queries: devShape.Queries, MetaBatch: devShape.MetaBatch, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		batch := s.NewBatch()
		for step := 0; step < 3; step++ {
			if err := s.NextBatch(batch); err != nil {
				t.Fatal(err)
			}
			la, err := da.MetaStep(batch[:2+step%2])
			if err != nil {
				t.Fatal(err)
			}
			lb, err := db.MetaStep(batch[:2+step%2])
			if err != nil {
				t.Fatal(err)
			}
			if la != lb {
				t.Fatalf("%s step %d: loss %g gathered on the device, %g uploaded", algo, step, la, lb)
			}
		}
		if da.fromPool != 3 || db.fromPool != 0 {
			t.Errorf("%s: %d and %d batches gathered, want 3 and 0", algo, da.fromPool, db.fromPool)
		}
		// An episode whose features changed in place is uploaded.
		batch[0].Source = nil
		if _, err := da.MetaStep(batch); err != nil {
			t.Fatal(err)
		}
		if da.fromPool != 3 {
			t.Errorf("%s: a batch with a changed episode was gathered", algo)
		}
	}
	l, _ := New(devConfig("protonet", "relu"), devShape, be)
	defer l.(*devLearner).Close()
	if err := l.(PoolUser).UsePool(make([]float32, devShape.Dim+1)); err == nil {
		t.Error("UsePool with a ragged matrix")
	}
}

// twoDevLearners builds two device learners of cfg, closed when the test
// ends.
func twoDevLearners(t *testing.T, cfg Config, be *cuda.Backend) (a, b *devLearner) {
	t.Helper()
	var ls [2]*devLearner
	for i := range ls {
		l, err := New(cfg, devShape, be)
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l.(*devLearner)
		t.Cleanup(func() { ls[i].Close() })
	}
	return ls[0], ls[1]
}

// sameParams brings a's and b's host copies up to date and fails unless
// their parameters are equal bit for bit; how names the way each trained.
func sameParams(t *testing.T, algo string, a, b *devLearner, howA, howB string) {
	t.Helper()
	for _, l := range []*devLearner{a, b} {
		if err := l.sync(); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range a.base.params {
		if p != b.base.params[i] {
			t.Fatalf("%s: parameter %d is %g %s, %g %s", algo, i, p, howA, b.base.params[i], howB)
		}
	}
}

// TestDeviceGraphsMatchDirect trains a learner that replays recorded steps
// and one that launches every kernel, on the same batches of changing
// sizes, gathered and uploaded, with the pool replaced midway: losses,
// parameters and batch predictions must agree bit for bit.
func TestDeviceGraphsMatchDirect(t *testing.T) {
	be := gpuBackend(t)
	if !be.Dev().Graphs() {
		t.Skipf("%s turns graphs off", cuda.GraphsVar)
	}
	pool := devPool(t, devShape.Dim)
	for _, algo := range []string{"protonet", "maml", "fomaml"} {
		graph, direct := twoDevLearners(t, devConfig(algo, "relu"), be)
		ls := [2]*devLearner{graph, direct}
		direct.useGraph = false
		var s *datasets.Sampler
		var batch datasets.Batch
		nq := devShape.Ways * devShape.Queries
		for step := 0; step < 8; step++ {
			if step == 0 || step == 5 {
				// From step 5 on, episodes come from another pool matrix:
				// the recorded gathers must not read the old one.
				p := pool
				if step == 5 {
					p = &datasets.Pool{Dim: pool.Dim, Classes: pool.Classes, X: make([]float32, len(pool.X))}
					for i, v := range pool.X {
						p.X[i] = 2*v + 1
					}
				}
				for _, l := range ls {
					if err := l.UsePool(p.X); err != nil {
						t.Fatal(err)
					}
					if len(l.graphs) != 0 {
						t.Fatalf("%s: %d recorded steps kept across UsePool", algo, len(l.graphs))
					}
				}
				var err error
				s, err = datasets.NewSampler(p, datasets.SamplerConfig{Ways: devShape.Ways, Shots: devShape.Shots, Queries: devShape.Queries, MetaBatch: devShape.MetaBatch, Seed: 8})
				if err != nil {
					t.Fatal(err)
				}
				batch = s.NewBatch()
			}
			if err := s.NextBatch(batch); err != nil {
				t.Fatal(err)
			}
			b := batch[:1+step%devShape.MetaBatch]
			if step%4 == 3 {
				for _, ep := range b {
					ep.Source = nil // uploaded, not gathered
				}
			}
			var loss [2]float64
			for i, l := range ls {
				var err error
				if loss[i], err = l.MetaStep(b); err != nil {
					t.Fatal(err)
				}
			}
			if loss[0] != loss[1] {
				t.Fatalf("%s step %d: loss %g replayed, %g launched", algo, step, loss[0], loss[1])
			}
			if algo == "protonet" {
				var pred [2][]int32
				for i, l := range ls {
					pred[i] = make([]int32, len(b)*nq)
					if err := l.PredictBatch(b, pred[i]); err != nil {
						t.Fatal(err)
					}
				}
				if fmt.Sprint(pred[0]) != fmt.Sprint(pred[1]) {
					t.Fatalf("step %d: predictions %v replayed, %v launched", step, pred[0], pred[1])
				}
			}
		}
		sameParams(t, algo, graph, direct, "replayed", "launched")
		if len(graph.graphs) < 3 || len(direct.graphs) != 0 {
			t.Errorf("%s: %d and %d recorded steps, want several and none", algo, len(graph.graphs), len(direct.graphs))
		}
		if graph.fromPool == 0 || graph.fromPool == 8 {
			t.Errorf("%s: %d of 8 batches gathered, want some but not all", algo, graph.fromPool)
		}
	}
}

// TestDevicePipeline queues steps (QueueStep, Drain) on one learner and
// takes them one by one (MetaStep) on another: the same losses in the same
// order, each once, and the same parameters, bit for bit, with reads of
// the learner (predictions, checkpoints) while steps are in flight. A
// step's loss arrives after the step has been queued, and a loss that is
// not finite is reported with its step.
func TestDevicePipeline(t *testing.T) {
	be := gpuBackend(t)
	pool := devPool(t, devShape.Dim)
	for _, algo := range []string{"protonet", "maml"} {
		queued, stepped := twoDevLearners(t, devConfig(algo, "tanh"), be)
		ls := [2]*devLearner{queued, stepped}
		for _, l := range ls {
			if err := l.UsePool(pool.X); err != nil {
				t.Fatal(err)
			}
		}
		s, err := datasets.NewSampler(pool, datasets.SamplerConfig{Ways: devShape.Ways, Shots: devShape.Shots, Queries: devShape.Queries, MetaBatch: devShape.MetaBatch, Seed: 9})
		if err != nil {
			t.Fatal(err)
		}
		batch := s.NewBatch()
		// Another batch to classify while steps are in flight.
		s2, err := datasets.NewSampler(pool, datasets.SamplerConfig{Ways: devShape.Ways, Shots: devShape.Shots, Queries: devShape.Queries, MetaBatch: devShape.MetaBatch, Seed: 10})
		if err != nil {
			t.Fatal(err)
		}
		other := s2.NewBatch()
		if err := s2.NextBatch(other); err != nil {
			t.Fatal(err)
		}
		var got, want []float64
		nq := devShape.Ways * devShape.Queries
		for step := 0; step < 9; step++ {
			if err := s.NextBatch(batch); err != nil {
				t.Fatal(err)
			}
			b := batch[:1+step%devShape.MetaBatch]
			if step%3 == 2 {
				for _, ep := range b {
					ep.Source = nil
				}
			}
			losses, err := queued.QueueStep(b)
			if err != nil {
				t.Fatal(err)
			}
			if step == 0 && len(losses) != 0 {
				t.Errorf("%s: the first QueueStep returned %d losses, want none (its step is in flight)", algo, len(losses))
			}
			got = append(got, losses...)
			var predicted []int32
			if step == 4 && algo == "protonet" {
				// With steps in flight (the two learners share one stream, so this
				// comes before the other's step): it stages its batch where they did.
				predicted = make([]int32, len(other)*nq)
				if err := queued.PredictBatch(other, predicted); err != nil {
					t.Fatal(err)
				}
			}
			loss, err := stepped.MetaStep(b)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, loss)
			switch step {
			case 4: // a read waits for the steps in flight; their losses are kept
				if algo == "protonet" {
					labels := make([]int32, len(other)*nq)
					if err := stepped.PredictBatch(other, labels); err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(predicted) != fmt.Sprint(labels) {
						t.Errorf("%s: predictions with steps in flight %v, after each step %v", algo, predicted, labels)
					}
				}
				var ckpt bytes.Buffer
				if err := queued.SaveCheckpoint(&ckpt, nil); err != nil {
					t.Fatal(err)
				}
			case 6:
				losses, err := queued.Drain()
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, losses...)
			}
		}
		losses, err := queued.Drain()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, losses...)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: queued losses %v, stepped %v", algo, got, want)
		}
		if losses, err := queued.Drain(); len(losses) != 0 || err != nil {
			t.Errorf("%s: a second Drain gave %v, %v", algo, losses, err)
		}
		sameParams(t, algo, queued, stepped, "queued", "stepped")

		// A diverged step: its loss is NaN, reported with the step's number.
		nan := make([]float32, len(queued.base.params))
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		if err := queued.dev.Upload(queued.params, nan); err != nil {
			t.Fatal(err)
		}
		if _, err := queued.QueueStep(batch); err != nil {
			t.Fatalf("%s: queueing a step reported %v before it ran", algo, err)
		}
		n := queued.base.steps // the step's number, taken back when it fails
		_, err = queued.Drain()
		if want := fmt.Sprintf("step %d: loss is NaN", n); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Drain after a diverged step = %v, want an error with %q", algo, err, want)
		}
	}
}

// TestDeviceRowsOnly trains a device learner on episodes from a RowsOnly
// sampler and another on the same draws with features: equal losses, bit
// for bit. A RowsOnly batch not from the learner's pool is refused.
func TestDeviceRowsOnly(t *testing.T) {
	be := gpuBackend(t)
	pool := devPool(t, devShape.Dim)
	for _, algo := range []string{"protonet", "maml"} {
		rowsL, fullL := twoDevLearners(t, devConfig(algo, "tanh"), be)
		var batches [2]datasets.Batch
		var samplers [2]*datasets.Sampler
		for i, l := range []*devLearner{rowsL, fullL} {
			if err := l.UsePool(pool.X); err != nil {
				t.Fatal(err)
			}
			var err error
			samplers[i], err = datasets.NewSampler(pool, datasets.SamplerConfig{Ways: devShape.Ways, Shots: devShape.Shots,
				Queries: devShape.Queries, MetaBatch: devShape.MetaBatch, Seed: 6, RowsOnly: i == 0})
			if err != nil {
				t.Fatal(err)
			}
			batches[i] = samplers[i].NewBatch()
		}
		for step := 0; step < 4; step++ {
			var loss [2]float64
			for i, l := range []*devLearner{rowsL, fullL} {
				if err := samplers[i].NextBatch(batches[i]); err != nil {
					t.Fatal(err)
				}
				var err error
				if loss[i], err = l.MetaStep(batches[i]); err != nil {
					t.Fatal(err)
				}
			}
			if loss[0] != loss[1] {
				t.Fatalf("%s step %d: loss %g from row numbers only, %g with features", algo, step, loss[0], loss[1])
			}
		}
		if !batches[0][0].RowsOnly || rowsL.fromPool != 4 {
			t.Fatalf("%s: the RowsOnly batches were not gathered (%d of 4)", algo, rowsL.fromPool)
		}
		batches[0][0].Rows[3] = int32(len(pool.X) / pool.Dim)
		if _, err := rowsL.MetaStep(batches[0]); err == nil || !strings.Contains(err.Error(), "outside the pool") {
			t.Errorf("%s: a row number past the pool: %v", algo, err)
		}
		batches[0][0].Rows[3] = -1
		if _, err := rowsL.MetaStep(batches[0]); err == nil || !strings.Contains(err.Error(), "outside the pool") {
			t.Errorf("%s: a negative row number: %v", algo, err)
		}
		batches[0][0].Source = nil
		if _, err := rowsL.MetaStep(batches[0]); err == nil || !strings.Contains(err.Error(), "row numbers only") {
			t.Errorf("%s: a RowsOnly batch off the pool: %v", algo, err)
		}
	}
}

func TestDeviceFallsBackToHost(t *testing.T) {
	be := gpuBackend(t)
	for _, edit := range []func(*Config){
		func(c *Config) { c.Algo = "anil" },
		func(c *Config) { c.Distance = "cosine" },
		func(c *Config) { c.Optimizer.ClipNorm = 1 },
		func(c *Config) { c.Aux = AuxConfig{BinaryWeight: 1} },
	} {
		cfg := devConfig("protonet", "relu")
		edit(&cfg)
		l, err := New(cfg, devShape, be)
		if err != nil {
			t.Fatal(err)
		}
		if _, dev := l.(*devLearner); dev || DeviceUnsupported(cfg) == "" {
			t.Errorf("%s %+v: device learner %v, reason %q", cfg.Algo, cfg.Optimizer, dev, DeviceUnsupported(cfg))
		}
	}
	l, err := New(devConfig("maml", "relu"), devShape, be)
	if err != nil {
		t.Fatal(err)
	}
	dl := l.(*devLearner)
	if dl.DeviceBytes() <= 0 {
		t.Errorf("DeviceBytes %d", dl.DeviceBytes())
	}
	b := tinyBatch(t, devShape, 2, 1)
	if _, err := l.MetaStep(b); err != nil {
		t.Fatal(err)
	}
	if err := dl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.MetaStep(b); err == nil {
		t.Error("MetaStep after Close")
	}
	// Close synced the step: the host twin predicts with it.
	nq := devShape.Ways * devShape.Queries
	if err := l.Predict(b[0], make([]int32, nq), make([]float32, nq*devShape.Ways)); err != nil {
		t.Errorf("Predict after Close: %v", err)
	}
	if dl.base.steps != 1 || dl.stale {
		t.Errorf("after Close: %d steps, stale %v", dl.base.steps, dl.stale)
	}
}

// BenchmarkDeviceMetaStep is the device-resident meta-step for the speed
// target's shape (5-way 5-shot 15-query, 122 features, hidden 64, one inner
// step, episodes drawn from a pool on the device) across meta-batch sizes,
// in tasks per second, replayed as a graph and launched kernel by kernel.
func BenchmarkDeviceMetaStep(b *testing.B) {
	be := gpuBackend(b)
	for _, algo := range []string{"protonet", "maml"} {
		for _, mb := range []int{1, 16, 256, 1024} {
			for _, graphs := range []bool{true, false} {
				if graphs && !be.Dev().Graphs() {
					continue
				}
				b.Run(fmt.Sprintf("%s/mb%d/graphs=%v", algo, mb, graphs), func(b *testing.B) {
					cfg := DefaultConfig(algo)
					cfg.InnerSteps = 1 // as bench/pytorch_bench.py and metaids bench
					s := benchShape(mb)
					l, err := New(cfg, s, be)
					if err != nil {
						b.Fatal(err)
					}
					defer l.(*devLearner).Close()
					l.(*devLearner).useGraph = graphs
					// As in a run: rows of a pool matrix kept on the device.
					batch := tinyBatch(b, s, mb, 1)
					if err := l.(PoolUser).UsePool(poolOf([]datasets.Batch{batch})); err != nil {
						b.Fatal(err)
					}
					l.MetaStep(batch)
					b.ResetTimer()
					for b.Loop() {
						if _, err := l.MetaStep(batch); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N*mb)/b.Elapsed().Seconds(), "tasks/s")
					for _, g := range l.(*devLearner).graphs {
						b.ReportMetric(float64(g.Nodes()), "nodes/graph")
					}
				})
			}
		}
	}
}

// BenchmarkDeviceStaging is the host's share of a queued meta-step at the
// bench's shape: checking a batch drawn from the device's pool and laying
// out its labels and row numbers in page-locked memory. With steps queued,
// the device runs the previous step meanwhile, so a step costs the longer
// of this and the device's time.
func BenchmarkDeviceStaging(b *testing.B) {
	be := gpuBackend(b)
	for _, mb := range []int{16, 256, 1024} {
		b.Run(fmt.Sprintf("mb%d", mb), func(b *testing.B) {
			s := benchShape(mb)
			l, err := New(DefaultConfig("protonet"), s, be)
			if err != nil {
				b.Fatal(err)
			}
			dl := l.(*devLearner)
			defer dl.Close()
			batch := datasets.Batch(tinyBatch(b, s, mb, 1))
			if err := dl.UsePool(poolOf([]datasets.Batch{batch})); err != nil {
				b.Fatal(err)
			}
			if !dl.drawnFromPool(batch) {
				b.Fatal("the batch is not drawn from the device pool")
			}
			for b.Loop() { // as queue does
				fromPool := dl.drawnFromPool(batch)
				if err := dl.base.checkBatchLayout(batch, fromPool); err != nil {
					b.Fatal(err)
				}
				if err := dl.stageHost(batch, 0, fromPool); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/step")
		})
	}
}

// TestDeviceBenchEval checks what the evaluation bench says of device
// learners: ProtoNet classifies on the device and is timed there; MAML
// adapts on the host twin, which the result says, with no device time.
func TestDeviceBenchEval(t *testing.T) {
	be := gpuBackend(t)
	for _, algo := range []string{"protonet", "maml"} {
		r, err := Bench(context.Background(), BenchOptions{Config: devConfig(algo, "relu"), Shape: devShape, Backend: be,
			Steps: 2, Repeats: 1, Threads: 1, Seed: 1, Eval: true})
		if err != nil {
			t.Fatal(err)
		}
		onHost := algo == "maml"
		if !r.DeviceResident || r.EvalOnHost != onHost || (r.DeviceMSPerStep > 0) == onHost {
			t.Errorf("%s: device-resident %v, evaluated on the host %v (want %v), device ms/step %g",
				algo, r.DeviceResident, r.EvalOnHost, onHost, r.DeviceMSPerStep)
		}
	}
}

// stepBoth takes the same meta-step with the device and the host learner
// and returns their losses, failing the test on an error from either.
func stepBoth(t *testing.T, dev, host Learner, b datasets.Batch) (float64, float64) {
	t.Helper()
	ld, err := dev.MetaStep(b)
	if err != nil {
		t.Fatal(err)
	}
	lh, err := host.MetaStep(b)
	if err != nil {
		t.Fatal(err)
	}
	return ld, lh
}
