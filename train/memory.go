package train

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrTooLarge is wrapped by the error of a constructor asked for a model or
// meta-batch that cannot fit in the machine's memory: refused before
// allocating, instead of the runtime dying out of memory.
var ErrTooLarge = errors.New("too large for this machine's memory")

// physicalMemory is the machine's memory in bytes, 0 when unknown (no
// check then). A variable so that tests can set it.
var physicalMemory = memTotal()

// memTotal reads MemTotal from /proc/meminfo; 0 where there is none.
func memTotal() float64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
		if err != nil || kb <= 0 {
			return 0
		}
		return kb * 1024
	}
	return 0
}

// MemoryFloor is a lower bound, in bytes, on the memory a learner of cfg
// for shape s takes to train: its parameters and their gradient, the
// meta-batch of float32 episodes a caller passes it, and the query-by-way
// logits and their gradient, which grow as the square of the ways (once for
// the prototype learners, once per task for the others, which adapt each
// task's own copy). Computed in float64, so absurd sizes do not overflow.
func MemoryFloor(cfg Config, s Shape) float64 {
	ways := float64(s.Ways)
	rows := ways * (float64(s.Shots) + float64(s.Queries))
	tasks := float64(s.MetaBatch)
	if cfg.Algo == "protonet" || cfg.Algo == "nearest-centroid" {
		tasks = min(tasks, 1)
	}
	scores := tasks * ways * float64(s.Queries) * ways
	elem := elemBytes(cfg.Float64)
	return 2*elem*modelParams(cfg, s) + 4*float64(s.MetaBatch)*rows*float64(s.Dim) + 2*elem*scores
}

// elemBytes is the size of a parameter: float32, or float64 (gradient
// checks).
func elemBytes(float64s bool) float64 {
	if float64s {
		return 8
	}
	return 4
}

// FitsMemory reports whether bytes fit in the machine's memory; anything
// does where its size is unknown.
func FitsMemory(bytes float64) bool { return physicalMemory <= 0 || bytes <= physicalMemory }

// modelParams counts cfg's parameters for shape s, as ModelCost does, in
// float64 arithmetic: widths of any size give a finite count.
func modelParams(cfg Config, s Shape) float64 {
	mlp := func(out int) float64 {
		n, in := 0.0, float64(s.Dim)
		for _, h := range cfg.Hidden {
			n += (in + 1) * float64(h)
			in = float64(h)
		}
		if out > 0 {
			n += (in + 1) * float64(out)
		}
		return n
	}
	var n float64
	switch cfg.Algo {
	case "nearest-centroid":
		return 0
	case "protonet":
		n = mlp(0)
	case "finetune":
		n = mlp(cfg.PretrainClasses)
	case "metasgd":
		n = 2 * mlp(s.Ways)
	default:
		n = mlp(s.Ways)
	}
	if cfg.Aux.Enabled() && len(cfg.Hidden) > 0 {
		// Small beside the layers above, which decide a refusal.
		n += float64(auxParamCount(cfg.Aux, cfg.Hidden[len(cfg.Hidden)-1]))
	}
	return n
}

// MemoryShortfall says which part of training a learner of cfg for shape s
// does not fit in the machine's memory, and the memory floor of that part:
// "" when all of it fits; "model" when its parameters and gradient alone do
// not (at the fewest ways, as the output layer has a unit per way);
// "episode" when one episode with the model does not; else "meta-batch".
func MemoryShortfall(cfg Config, s Shape) (part string, need float64) {
	if need = MemoryFloor(cfg, s); FitsMemory(need) {
		return "", need
	}
	if model := MemoryFloor(cfg, Shape{Ways: 2, Dim: s.Dim}); !FitsMemory(model) {
		return "model", model
	}
	one := s
	one.MetaBatch = 1
	if episode := MemoryFloor(cfg, one); !FitsMemory(episode) {
		return "episode", episode
	}
	return "meta-batch", need
}

// MachineMemory is the machine's memory in bytes, 0 when unknown.
func MachineMemory() float64 { return physicalMemory }

// checkMemory refuses a learner whose MemoryFloor exceeds the machine's
// memory, naming the sizes that make it so.
func checkMemory(cfg Config, s Shape) error {
	floor := MemoryFloor(cfg, s)
	if FitsMemory(floor) {
		return nil
	}
	episodes := "episodes"
	if s.MetaBatch == 1 {
		episodes = "episode"
	}
	return fmt.Errorf("%w: hidden layers %v (%.4g parameters, trained with their gradient) and a meta-batch of %d %s of %d×%d rows × %d features need at least %s; this machine has %s",
		ErrTooLarge, cfg.Hidden, modelParams(cfg, s), s.MetaBatch, episodes, s.Ways, s.Shots+s.Queries, s.Dim, GiB(floor), GiB(physicalMemory))
}

// checkClassifierMemory is checkMemory for a classifier: its parameters,
// their gradient, and one batch of inputs.
func checkClassifierMemory(cfg ClassifierConfig, dim, classes int) error {
	elem := elemBytes(cfg.Float64)
	params := modelParams(Config{Algo: "finetune", Hidden: cfg.Hidden, PretrainClasses: classes}, Shape{Dim: dim})
	floor := 2*elem*params + elem*float64(cfg.BatchSize)*float64(dim)
	if FitsMemory(floor) {
		return nil
	}
	return fmt.Errorf("%w: classifier with hidden layers %v (%.4g parameters, trained with their gradient) on %d features needs at least %s; this machine has %s",
		ErrTooLarge, cfg.Hidden, params, dim, GiB(floor), GiB(physicalMemory))
}

// GiB writes a byte count in GiB, for messages.
func GiB(bytes float64) string { return fmt.Sprintf("%.1f GiB", bytes/(1<<30)) }
