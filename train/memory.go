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
// for shape s takes to train: its parameters, their gradient and Adam's two
// moments, the meta-batch of float32 episodes a caller passes it, and the
// working buffers the learner allocates for them (workingElems). Computed
// in float64, so absurd sizes do not overflow.
func MemoryFloor(cfg Config, s Shape) float64 {
	rows := float64(s.Ways) * (float64(s.Shots) + float64(s.Queries))
	model := 2 * modelParams(cfg, s)
	if cfg.Optimizer.Name == "adam" {
		model *= 2
	}
	return elemBytes(cfg.Float64)*(model+workingElems(cfg, s)) + stepBytes(cfg, s) + 4*float64(s.MetaBatch)*rows*float64(s.Dim)
}

// innerStepBytes is what a fused MAML-family worker keeps per inner step
// besides the buffers workingElems counts (gbml.go newWork): the slice
// headers of the step's weights, gradient, softmax and its gradient and a
// pointer to its pass. FOMAML and Reptile keep them for every step though
// the buffers behind them are one step's, so inner steps by the billion
// take more than a machine has.
const innerStepBytes = 4*24 + 8

// InnerStepsKeep says what cfg's inner loop keeps of each step, for the
// message that refuses too many: the second-order learners an adapted copy
// of the model, the first-order ones a record of the step (innerStepBytes).
func InnerStepsKeep(cfg Config) string {
	if keepsEveryStep(cfg) {
		return "an adapted copy of the model per step"
	}
	return "a record of every step"
}

// keepsEveryStep reports whether cfg's inner loop keeps every step's
// adapted weights for the backward sweep: the second-order learners.
func keepsEveryStep(cfg Config) bool {
	return cfg.Algo == "maml" || cfg.Algo == "anil" || cfg.Algo == "metasgd"
}

// stepBytes is innerStepBytes for every inner step of every worker.
func stepBytes(cfg Config, s Shape) float64 {
	if !fusedGBML(cfg) {
		return 0
	}
	return float64(TaskWorkers(cfg, s)) * float64(cfg.InnerSteps) * innerStepBytes
}

// workingElems counts the elements of the largest buffers a learner of cfg
// allocates for shape s besides its parameters (protonet.go, gbml.go,
// finetune.go): a pass over n rows keeps each hidden unit's pre-activation,
// output and gradient (3n), and the output layer's logits and gradient.
// What a learner keeps for Predict or for auxiliary heads is left out.
func workingElems(cfg Config, s Shape) float64 {
	ways, dim := float64(s.Ways), float64(s.Dim)
	// Support and query rows of a task; none at a meta-batch of none,
	// whose floor is the model's alone.
	task := min(float64(s.MetaBatch), 1)
	ns, nq := task*ways*float64(s.Shots), task*ways*float64(s.Queries)
	var units float64
	for _, h := range cfg.Hidden {
		units += float64(h)
	}
	pass := func(n, out float64) float64 { return n * (3*units + 2*out) }
	switch cfg.Algo {
	case "nearest-centroid":
		// The query-by-way logits and their gradient.
		return 2 * nq * ways
	case "protonet":
		// The fused engine runs the meta-batch through the encoder as one
		// stacked copy; gorgonia's graph holds one episode.
		n := ns + nq
		if cfg.Engine != "gorgonia" {
			n *= float64(s.MetaBatch)
		}
		return n*dim + pass(n, 0) + 2*nq*ways
	case "finetune":
		// Every row of the meta-batch through the PretrainClasses-way
		// head, with the softmax and its gradient.
		n := float64(s.MetaBatch) * (ns + nq)
		c := float64(cfg.PretrainClasses)
		return n*dim + pass(n, c) + 2*n*c
	}
	// The MAML family adapts a task per worker (Config.Threads). Each
	// worker keeps the adapted weights and their gradient of every inner
	// step, with its pass over the support rows (Reptile's: support and
	// query) and the softmax and its gradient, for the backward sweep of
	// the second-order learners; first-order ones keep one step's. Then the
	// query pass with its gradient, and two vectors of the sweep. Each task
	// leaves its meta-gradient (Meta-SGD: and a rate term per inner step):
	// one at a time with one worker, every task's with several.
	theta := mlpParams(s.Dim, cfg.Hidden, s.Ways)
	n := ns
	if cfg.Algo == "reptile" {
		n += nq
	}
	kept := 1.0
	if keepsEveryStep(cfg) {
		kept = float64(cfg.InnerSteps)
	}
	q := max(nq, n)
	perWorker := kept*(2*theta+pass(n, ways)+2*n*ways) + pass(q, ways) + 2*q*ways + 2*theta
	workers, shares := TaskWorkers(cfg, s), theta
	if workers > 1 {
		share := theta
		if cfg.Algo == "metasgd" {
			share += float64(cfg.InnerSteps) * theta
		}
		shares += float64(s.MetaBatch) * share
	}
	return float64(workers)*perWorker + shares
}

// TaskThreads is how many tasks of a meta-batch l adapts at once on the
// host: the MAML family's workers, one for every other learner and for a
// device-resident one.
func TaskThreads(l Learner) int {
	if t, ok := l.(interface{ taskThreads() int }); ok {
		return t.taskThreads()
	}
	return 1
}

// TaskWorkers is how many tasks of a meta-batch a host learner of cfg
// adapts at once: Config.Threads, at most one per task, for the fused MAML
// family; one for every other learner, which runs the meta-batch as one
// stacked pass (ProtoNet, fine-tuning) or through a graph (gorgonia).
func TaskWorkers(cfg Config, s Shape) int {
	if !fusedGBML(cfg) {
		return 1
	}
	return max(1, min(cfg.Threads, s.MetaBatch))
}

// fusedGBML reports whether cfg is a MAML-family learner on the fused
// engine, which adapts tasks on workers of its own.
func fusedGBML(cfg Config) bool {
	switch cfg.Algo {
	case "protonet", "finetune", "nearest-centroid":
		return false
	}
	return cfg.Engine != "gorgonia"
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
	var n float64
	switch cfg.Algo {
	case "nearest-centroid":
		return 0
	case "protonet":
		n = mlpParams(s.Dim, cfg.Hidden, 0)
	case "finetune":
		n = mlpParams(s.Dim, cfg.Hidden, cfg.PretrainClasses)
	case "metasgd":
		n = 2 * mlpParams(s.Dim, cfg.Hidden, s.Ways)
	default:
		n = mlpParams(s.Dim, cfg.Hidden, s.Ways)
	}
	if cfg.Aux.Enabled() && len(cfg.Hidden) > 0 {
		// Small beside the layers above, which decide a refusal.
		n += float64(auxParamCount(cfg.Aux, cfg.Hidden[len(cfg.Hidden)-1]))
	}
	return n
}

// mlpParams counts the parameters of an MLP on dim inputs with the given
// hidden widths and, when out > 0, a linear head of out units.
func mlpParams(dim int, hidden []int, out int) float64 {
	n, in := 0.0, float64(dim)
	for _, h := range hidden {
		n += (in + 1) * float64(h)
		in = float64(h)
	}
	if out > 0 {
		n += (in + 1) * float64(out)
	}
	return n
}

// MemoryShortfall says which part of training a learner of cfg for shape s
// does not fit in the machine's memory, and the memory floor of that part:
// "" when all of it fits; "model" when the model alone does not (its
// parameters, gradient, optimiser state and the MAML family's adapted
// copies, at the fewest ways, as the output layer has a unit per way);
// "episode" when one episode with the model does not; "inner-steps" when
// either would fit but for the MAML family's inner steps, each of which
// keeps its own adapted copy; "threads" when all would fit with the tasks
// adapted one at a time (Config.Threads); else "meta-batch".
func MemoryShortfall(cfg Config, s Shape) (part string, need float64) {
	if need = MemoryFloor(cfg, s); FitsMemory(need) {
		return "", need
	}
	if one := cfg; TaskWorkers(cfg, s) > 1 {
		if one.Threads = 1; FitsMemory(MemoryFloor(one, s)) {
			return "threads", need
		}
	}
	oneStep := cfg
	oneStep.InnerSteps = 1
	model := Shape{Ways: 2, Dim: s.Dim}
	episode := s
	episode.MetaBatch = 1
	for _, p := range []struct {
		name  string
		shape Shape
	}{{"model", model}, {"episode", episode}} {
		if floor := MemoryFloor(cfg, p.shape); !FitsMemory(floor) {
			if FitsMemory(MemoryFloor(oneStep, p.shape)) {
				return "inner-steps", floor
			}
			return p.name, floor
		}
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
	steps := ""
	if oneStep := cfg; oneStep.InnerSteps > 1 {
		// The MAML family keeps an adapted copy per inner step.
		if oneStep.InnerSteps = 1; MemoryFloor(oneStep, s) != floor {
			steps = fmt.Sprintf(" and %d inner steps", cfg.InnerSteps)
		}
	}
	if w := TaskWorkers(cfg, s); w > 1 {
		steps += fmt.Sprintf(", adapting %d tasks at once (threads),", w)
	}
	return fmt.Errorf("%w: hidden layers %v (%.4g parameters, trained with their gradient), a meta-batch of %d %s of %d×%d rows × %d features%s need at least %s with the learner's working buffers; this machine has %s",
		ErrTooLarge, cfg.Hidden, modelParams(cfg, s), s.MetaBatch, episodes, s.Ways, uint64(s.Shots)+uint64(s.Queries), s.Dim, steps, GiB(floor), GiB(physicalMemory))
}

// checkClassifierMemory is checkMemory for a classifier: its parameters,
// their gradient, and one batch of inputs.
func checkClassifierMemory(cfg ClassifierConfig, dim, classes int) error {
	elem := elemBytes(cfg.Float64)
	params := mlpParams(dim, cfg.Hidden, classes)
	floor := 2*elem*params + elem*float64(cfg.BatchSize)*float64(dim)
	if FitsMemory(floor) {
		return nil
	}
	return fmt.Errorf("%w: classifier with hidden layers %v (%.4g parameters, trained with their gradient) on %d features needs at least %s; this machine has %s",
		ErrTooLarge, cfg.Hidden, params, dim, GiB(floor), GiB(physicalMemory))
}

// GiB writes a byte count in GiB, for messages.
func GiB(bytes float64) string { return fmt.Sprintf("%.1f GiB", bytes/(1<<30)) }
