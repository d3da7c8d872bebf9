//go:build metaids_cuda

package cuda

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func hostBuf(t *testing.T, d Dev, n int) HostBuffer {
	t.Helper()
	h, err := d.AllocHost(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.FreeHost(h) })
	return h
}

// TestGraphReplaysStep records a whole ProtoNet meta-step (upload of the
// features from page-locked memory, forward, loss, backward with a split
// reduction, download of the loss) and checks that replays give the bits
// of the step run directly, reading the host memory as it is at each
// replay.
func TestGraphReplaysStep(t *testing.T) {
	d := newDev(t)
	r := rand.New(rand.NewPCG(41, 42))
	p := newProtoTask(r, 24, 5, 2, 3, 11, 7) // 600 rows: the weight gradient splits its reduction
	if splitK(Gemm{TransA: true, M: p.din, N: p.h, K: p.B * (p.S + p.Q), LDC: p.h, Batch: 1}) < 2 {
		t.Fatal("the test shape no longer splits the weight gradient's reduction")
	}
	np := p.din*p.h + p.h
	params := randn(r, np)
	s := newProtoStep(d, p)
	dparams, grad := d.buf(params), d.buf(make([]float32, np))
	hx, hloss := hostBuf(t, d.Dev, len(p.x)), hostBuf(t, d.Dev, 1)

	// direct runs the step on x without a graph.
	direct := func(x []float32) (loss float32, g []float32) {
		d.ok(d.Upload(s.x, x))
		d.ok(s.run(dparams, grad))
		return d.get(s.lossSum)[0], d.get(grad)
	}
	g, err := d.Record(func() error {
		if err := d.Upload(s.x, hx.Float32()); err != nil {
			return err
		}
		if err := s.run(dparams, grad); err != nil {
			return err
		}
		return d.Download(hloss.Float32(), s.lossSum)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeGraph(g)
	if g.Nodes() < 18 {
		t.Errorf("graph of %d nodes, want the step's 18 or more", g.Nodes())
	}

	x2 := randn(r, len(p.x))
	for i, x := range [][]float32{p.x, x2, p.x} {
		wantLoss, wantGrad := direct(x)
		// Only the replay's own upload may bring x back.
		d.ok(d.Zero(s.x))
		d.ok(d.Zero(grad))
		clear(hloss.Float32())
		copy(hx.Float32(), x)
		d.ok(d.Launch(g))
		d.ok(d.Sync())
		if got := hloss.Float32()[0]; got != wantLoss {
			t.Errorf("replay %d: loss %g, direct %g", i, got, wantLoss)
		}
		if got := d.get(grad); !slices.Equal(got, wantGrad) {
			t.Errorf("replay %d: gradient differs from the direct step's", i)
		}
	}
}

// TestRecordRefuses checks what a recording cannot hold: each is refused
// naming it, the recording returns that error, and the backend works on.
func TestRecordRefuses(t *testing.T) {
	b := gpu(t)
	d := newDev(t)
	x := d.buf(make([]float32, 8))
	host := make([]float32, 8)
	stop := errors.New("stop")
	pre, err := d.Record(func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeGraph(pre)
	for _, c := range []struct {
		name string
		f    func() error
		want error
	}{
		{"pageable upload", func() error { return d.Upload(x, host) }, errRecording},
		{"pageable download", func() error { return d.Download(host, x) }, errRecording},
		{"sync", d.Sync, errRecording},
		{"free", func() error { return d.Free(x) }, errRecording},
		{"nested record", func() error { _, err := d.Record(func() error { return nil }); return err }, errRecording},
		{"launch", func() error { return d.Launch(pre) }, errRecording},
		{"time", func() error { _, err := b.TimeDevice(func() error { return nil }); return err }, errRecording},
		{"f's own error", func() error { return stop }, stop},
	} {
		g, err := d.Record(func() error {
			if err := d.Scale(x, 2); err != nil {
				return err
			}
			return c.f()
		})
		if !errors.Is(err, c.want) || g != nil {
			t.Errorf("%s: Record = %v, %v; want error %v", c.name, g, err, c.want)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a shape error while recording did not panic")
			}
		}()
		_, _ = d.Record(func() error { return d.Copy(x, x.Slice(0, 3)) })
	}()
	// Nothing recorded ran, and the backend is out of recording.
	d.ok(d.Upload(x, []float32{1, 2, 3, 4, 5, 6, 7, 8}))
	d.ok(d.Scale(x, 3))
	if got := d.get(x); got[7] != 24 {
		t.Errorf("after refused recordings, x[7] = %g, want 24", got[7])
	}
}

// TestGraphCopiesAndZeros records device copies and memsets, and an empty
// graph.
func TestGraphCopiesAndZeros(t *testing.T) {
	d := newDev(t)
	src := d.buf([]float32{1, 2, 3, 4, 5})
	dst := d.buf(make([]float32, 5))
	out := hostBuf(t, d.Dev, 5)
	g, err := d.Record(func() error {
		return errors.Join(d.Copy(dst, src), d.Zero(src.Slice(1, 3)), d.Scale(dst, 10), d.Download(out.Float32(), dst))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeGraph(g)
	if got := d.get(dst); !slices.Equal(got, []float32{0, 0, 0, 0, 0}) {
		t.Errorf("recording ran: dst = %v", got)
	}
	d.ok(d.Launch(g))
	d.ok(d.Sync())
	if got := out.Float32(); !slices.Equal(got, []float32{10, 20, 30, 40, 50}) {
		t.Errorf("after one replay, out = %v", got)
	}
	if got := d.get(src); !slices.Equal(got, []float32{1, 0, 0, 4, 5}) {
		t.Errorf("after one replay, src = %v", got)
	}
	d.ok(d.Launch(g)) // src's zeros now reach dst
	d.ok(d.Sync())
	if got := out.Float32(); !slices.Equal(got, []float32{10, 0, 0, 40, 50}) {
		t.Errorf("after two replays, out = %v", got)
	}
	empty, err := d.Record(func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	d.ok(d.Launch(empty))
	d.ok(d.FreeGraph(empty))
	d.ok(d.FreeGraph(empty)) // a second free is harmless
}
