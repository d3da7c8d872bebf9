package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"strings"
	"testing"
)

// The floor's parameter count is the learners' own, for every algorithm,
// with and without auxiliary heads.
func TestMemoryFloorCountsTheParameters(t *testing.T) {
	for _, algo := range allAlgos {
		for _, aux := range []AuxConfig{{}, {BinaryWeight: 0.5}, {BinaryWeight: 0.5, CategoryWeight: 1, Categories: 4}} {
			c := smallConfig(algo)
			c.Hidden = []int{16, 8}
			if algo != "nearest-centroid" {
				c.Aux = aux
			}
			if got, want := modelParams(c, small), ModelCost(c, small).Params; got != float64(want) {
				t.Errorf("%s aux %+v: %g parameters, the learner has %d", algo, c.Aux, got, want)
			}
			l := mustNew(t, c, small)
			if got, want := modelParams(c, small), l.(engine).numParams(); got != float64(want) {
				t.Errorf("%s aux %+v: %g parameters, the built learner has %d", algo, c.Aux, got, want)
			}
		}
	}
	// By hand: ProtoNet on 8 features, hidden [16]: 8*16+16 = 144
	// parameters, their gradient and Adam's two moments at 4 bytes; the
	// stacked copy of 2 episodes of 3*(2+3) rows of 8 features, and each
	// row's 16 pre-activations, outputs and their gradient; the 3*3
	// queries' logits for 3 ways and their gradient (once: ProtoNet shares
	// them between the tasks); and the 2 float32 episodes passed in.
	c := smallConfig("protonet")
	working := 30*8 + 30*3*16 + 2*9*3.0
	if got, want := MemoryFloor(c, small), 4*(4*144+working)+4*2*15*8.0; got != want {
		t.Errorf("MemoryFloor = %g, want %g", got, want)
	}
	c.Float64 = true
	if got, want := MemoryFloor(c, small), 8*(4*144+working)+4*2*15*8.0; got != want {
		t.Errorf("MemoryFloor in float64 = %g, want %g", got, want)
	}
	c.Float64, c.Optimizer.Name = false, "sgd"
	if got, want := MemoryFloor(c, small), 4*(2*144+working)+4*2*15*8.0; got != want {
		t.Errorf("MemoryFloor with SGD = %g, want %g", got, want)
	}
	// MAML's logits grow as the square of the ways: at 1 shot and 1 query,
	// each of its 2 inner steps keeps the support logits, their gradient,
	// the softmax and its gradient, and the query pass has as many. It
	// adapts one task at a time: a larger meta-batch adds its episodes only.
	c = smallConfig("maml")
	wide := Shape{Ways: 30000, Shots: 1, Queries: 1, MetaBatch: 1, Dim: 8}
	if got, want := MemoryFloor(c, wide), 4*(2*4+4)*30000*30000.0; got < want {
		t.Errorf("MemoryFloor of 30000 ways is %g bytes, want at least %g of logits", got, want)
	}
	two := wide
	two.MetaBatch = 2
	if got, want := MemoryFloor(c, two)-MemoryFloor(c, wide), 4*30000*2*8.0; got != want {
		t.Errorf("a second task adds %g bytes, want its episode's %g", got, want)
	}
}

// withMemory runs f as if the machine had the given memory.
func withMemory(bytes float64, f func()) {
	defer func(m float64) { physicalMemory = m }(physicalMemory)
	physicalMemory = bytes
	f()
}

func TestTooLargeIsRefusedBeforeAllocating(t *testing.T) {
	withMemory(1<<30, func() {
		for _, c := range []struct {
			name   string
			hidden []int
			shape  Shape
			want   string
		}{
			{"wide layer", []int{1 << 40}, small, "hidden layers [1099511627776] (9.896e+12 parameters"},
			{"two wide layers", []int{100000, 100000}, small, "hidden layers [100000 100000] (1e+10 parameters"},
			{"huge meta-batch", []int{16}, Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 1 << 30, Dim: 8},
				"a meta-batch of 1073741824 episodes of 3×5 rows × 8 features"},
		} {
			for _, algo := range []string{"protonet", "maml", "metasgd"} {
				cfg := smallConfig(algo)
				cfg.Hidden = c.hidden
				_, err := New(cfg, c.shape, nil)
				if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "this machine has 1.0 GiB") {
					t.Errorf("%s %s: %v, want ErrTooLarge naming the machine's memory", c.name, algo, err)
					continue
				}
				if algo == "protonet" && !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: %v, want it to say %q", c.name, err, c.want)
				}
			}
		}
		if _, err := New(smallConfig("maml"), small, nil); err != nil {
			t.Errorf("a small learner: %v", err)
		}
		cc := DefaultClassifierConfig()
		cc.Hidden = []int{1 << 20, 1 << 20}
		if _, err := NewClassifier(cc, 122, 5, nil); !errors.Is(err, ErrTooLarge) {
			t.Errorf("a huge classifier: %v, want ErrTooLarge", err)
		}
		cc.Hidden = []int{64}
		if _, err := NewClassifier(cc, 122, 5, nil); err != nil {
			t.Errorf("a small classifier: %v", err)
		}
	})
	// Without a known memory size nothing is refused: the small learner
	// is built either way (a huge one is not tried).
	withMemory(0, func() {
		if err := checkMemory(Config{Algo: "protonet", Hidden: []int{1 << 40}}, small); err != nil {
			t.Errorf("memory unknown: %v", err)
		}
	})
}

// MemoryShortfall blames the inner steps when the MAML family's adapted
// copies are what does not fit, and the model or episode otherwise.
func TestMemoryShortfallNamesThePart(t *testing.T) {
	withMemory(1<<30, func() {
		steps := func(algo string, n int, hidden ...int) Config {
			c := smallConfig(algo)
			c.InnerSteps = n
			if len(hidden) > 0 {
				c.Hidden = hidden
			}
			return c
		}
		threads := func(c Config, n int) Config { c.Threads = n; return c }
		for _, c := range []struct {
			name  string
			cfg   Config
			shape Shape
			want  string
		}{
			{"fits", steps("maml", 5), small, ""},
			{"many inner steps", steps("maml", 1e9), small, "inner-steps"},
			{"many first-order inner steps, which reuse one", steps("fomaml", 1e6), small, ""},
			{"many Reptile inner steps, which reuse one", steps("reptile", 1e6), small, ""},
			// ... but keep a few slice headers for each.
			{"a billion first-order inner steps", steps("fomaml", 1e9), small, "inner-steps"},
			{"a billion Reptile inner steps", steps("reptile", 1e9), small, "inner-steps"},
			{"many tasks adapted at once", threads(steps("maml", 50, 1<<12), 1024), Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 1024, Dim: 8}, "threads"},
			{"many tasks of a small model at once", threads(steps("maml", 5), 1024), Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 1024, Dim: 8}, ""},
			{"wide model, many inner steps", steps("maml", 1e9, 1<<40), small, "model"},
			{"wide model", steps("protonet", 1e9, 1<<40), small, "model"},
			{"long episode", steps("maml", 1), Shape{Ways: 3, Shots: 1 << 40, Queries: 3, MetaBatch: 1, Dim: 8}, "episode"},
			{"huge meta-batch", steps("protonet", 5), Shape{Ways: 3, Shots: 2, Queries: 3, MetaBatch: 1 << 30, Dim: 8}, "meta-batch"},
		} {
			if part, _ := MemoryShortfall(c.cfg, c.shape); part != c.want {
				t.Errorf("%s: %q, want %q", c.name, part, c.want)
			}
		}
		// train.New says so too, and the rows of an episode whose shots and
		// queries add up past the largest int.
		if _, err := New(steps("maml", 1e9), small, nil); err == nil || !strings.Contains(err.Error(), "and 1000000000 inner steps need") {
			t.Errorf("maml with 1e9 inner steps: %v", err)
		}
		if err := checkMemory(smallConfig("protonet"), Shape{Ways: 2, Shots: 1 << 62, Queries: 1 << 62, MetaBatch: 1, Dim: 8}); err == nil ||
			!strings.Contains(err.Error(), "2×9223372036854775808 rows") {
			t.Errorf("shots + queries past the largest int: %v", err)
		}
	})
}

// A checkpoint whose header (with a valid checksum) describes an absurd
// model is refused, not allocated.
func TestCheckpointOfAbsurdModelIsRefused(t *testing.T) {
	var buf bytes.Buffer
	if err := mustNew(t, smallConfig("protonet"), small).SaveCheckpoint(&buf, nil); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	withHidden := func(hidden []int) *bytes.Buffer {
		return rewriteHeader(t, ckptMagic, raw, func(h map[string]any) { h["Config"].(map[string]any)["Hidden"] = hidden })
	}
	_, _, err := Load(withHidden([]int{1 << 40}), nil)
	if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), ErrTooLarge.Error()) {
		t.Errorf("Load of a checkpoint with hidden [2^40]: %v, want a bad checkpoint too large for the machine", err)
	}
	// A model that fits the machine but not the payload is refused before
	// it is built (it took 19 GB and half a minute at hidden [20000 20000]).
	withMemory(1<<30, func() {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := Load(withHidden([]int{4000, 4000}), nil)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "payload") {
			t.Errorf("Load of a checkpoint with hidden [4000 4000] and the payload of [16]: %v, want a bad checkpoint naming the payload", err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("refusing it allocated %d bytes", grew)
		}
	})
}

// The floor is a lower bound on what a learner really holds, and not far
// below it: for every learner at a small and a medium shape, the live heap
// that building it and three meta-steps leave (with the meta-batch, after
// a collection; MetaStep allocates nothing once built) is at least the
// floor and at most floorSlack times it.
func TestMemoryFloorBoundsTheHeap(t *testing.T) {
	const floorSlack = 3
	for _, hidden := range [][]int{{64}, {256, 128}} {
		for _, mb := range []int{1, 8} {
			s := Shape{Ways: 5, Shots: 5, Queries: 15, MetaBatch: mb, Dim: 125}
			for _, algo := range allAlgos {
				c := DefaultConfig(algo)
				c.Hidden, c.PretrainClasses = hidden, 23
				c.Threads = mb / 2 // the MAML family adapts four tasks at once at meta-batch 8
				floor := MemoryFloor(c, s)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.GC() // and what finalizers of earlier tests let go
				runtime.ReadMemStats(&before)
				b := tinyBatch(t, s, mb, 1)
				l := mustNew(t, c, s)
				for range 3 {
					if _, err := l.MetaStep(b); err != nil {
						t.Fatal(err)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(l)
				runtime.KeepAlive(b)
				held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
				t.Logf("%-16s hidden %v meta-batch %d: floor %8.0f B, held %8.0f B (%.2f×)", algo, hidden, mb, floor, held, held/floor)
				if floor > held || held > floorSlack*floor {
					t.Errorf("%s hidden %v meta-batch %d: floor %.0f B, but the learner holds %.0f B", algo, hidden, mb, floor, held)
				}
			}
		}
	}
}

// rewriteHeader is a checkpoint with its JSON header edited (and its
// checksum made right again), as another writer might make one.
func rewriteHeader(t *testing.T, magic string, raw []byte, edit func(h map[string]any)) *bytes.Buffer {
	t.Helper()
	p := raw[len(magic):]
	hl := int(binary.LittleEndian.Uint32(p[4:]))
	var h map[string]any
	if err := json.Unmarshal(p[8:8+hl], &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	header, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.WriteString(magic)
	out.Write(p[:4])
	out.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(header))))
	out.Write(header)
	out.Write(p[8+hl : len(p)-4])
	out.Write(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(out.Bytes())))
	return &out
}

// A header of another version, or naming an extra blob twice (one would
// replace the other), is a bad checkpoint, for meta-learners and
// classifiers; the unedited file loads.
func TestCheckpointHeaderVersionAndBlobs(t *testing.T) {
	var learner, clf bytes.Buffer
	blob := map[string][]byte{"a": []byte("xy")}
	if err := mustNew(t, smallConfig("protonet"), small).SaveCheckpoint(&learner, blob); err != nil {
		t.Fatal(err)
	}
	if err := mustClassifier(t, DefaultClassifierConfig(), 4, 2).Save(&clf, blob); err != nil {
		t.Fatal(err)
	}
	load := map[string]func(io.Reader) (map[string][]byte, error){
		ckptMagic: func(r io.Reader) (map[string][]byte, error) { _, extra, err := Load(r, nil); return extra, err },
		clfMagic: func(r io.Reader) (map[string][]byte, error) {
			_, extra, err := LoadClassifier(r, nil)
			return extra, err
		},
	}
	for magic, raw := range map[string][]byte{ckptMagic: learner.Bytes(), clfMagic: clf.Bytes()} {
		if extra, err := load[magic](rewriteHeader(t, magic, raw, func(map[string]any) {})); err != nil || string(extra["a"]) != "xy" {
			t.Fatalf("%q: the unedited checkpoint: %v, blob a %q", magic, err, extra["a"])
		}
		for _, c := range []struct {
			edit func(h map[string]any)
			want string
		}{
			{func(h map[string]any) { h["Version"] = 2 }, "header version 2, want 1"},
			{func(h map[string]any) {
				h["Extra"] = []map[string]any{{"Name": "a", "Len": 1}, {"Name": "a", "Len": 1}}
			}, `blob "a" is listed twice`},
		} {
			_, err := load[magic](rewriteHeader(t, magic, raw, c.edit))
			if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%q: error %v, want a bad checkpoint: %q", magic, err, c.want)
			}
		}
	}
}
