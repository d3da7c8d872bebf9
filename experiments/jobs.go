package experiments

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/train"
)

// MaxJobs bounds RunOptions.Jobs: more would only queue goroutines.
const MaxJobs = 1024

// RunAll runs specs and returns the summaries of the runs that finished, in
// spec order. With Jobs at most 1 the runs go one after another and the first
// failure stops the rest. With more, up to Jobs runs are under way at once and
// their seeds share Jobs slots, so that a single run's seeds fill them too;
// the first failure (in spec order) stops the runs still going as an
// interrupt does, keeping their finished seeds. Each seed is computed as it
// would be alone, so the numbers do not depend on Jobs. Under Force, the
// runs' force.json go only once all have finished, so that the same command
// stopped halfway keeps the runs it finished as well as their seeds.
func (r *Runner) RunAll(ctx context.Context, specs []Spec) ([]*RunSummary, error) {
	if err := CheckJobs(r.opt, specs); err != nil {
		return nil, fmt.Errorf("jobs %d: %w", r.opt.Jobs, err)
	}
	if r.slots == nil {
		var done []*RunSummary
		for _, s := range specs {
			sum, err := r.run(ctx, s)
			if err != nil {
				return done, err
			}
			done = append(done, sum)
		}
		r.clearForceMarks()
		return done, nil
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	sums := make([]*RunSummary, len(specs))
	errs := make([]error, len(specs))
	running := make(chan struct{}, r.opt.Jobs)
	var wg sync.WaitGroup
	for i, s := range specs {
		select {
		case running <- struct{}{}:
		case <-runCtx.Done():
		}
		if runCtx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-running }()
			if sums[i], errs[i] = r.run(runCtx, s); errs[i] != nil {
				stop()
			}
		}()
	}
	wg.Wait()
	var done []*RunSummary
	for _, s := range sums {
		if s != nil {
			done = append(done, s)
		}
	}
	if err := firstFailure(errs); err != nil {
		return done, err
	}
	if ctx.Err() != nil {
		return done, errInterrupted
	}
	r.clearForceMarks()
	return done, nil
}

// firstFailure is the first error that is not an interruption, else the
// first error: a run stopped because another failed is not the cause.
func firstFailure(errs []error) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if !errors.Is(err, errInterrupted) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// CheckJobs refuses an opt.Jobs that would run seeds whose working memory
// (train.MemoryFloor; each alone was checked with its spec) together passes
// the machine's: the largest floors, as many as may run at once. Each seed
// of a run counts (opt.Seeds, when set, replacing the spec's), as a run's
// seeds fill the slots too, except on cuda, where they run one at a time.
func CheckJobs(opt RunOptions, specs []Spec) error {
	jobs := max(opt.Jobs, 1)
	if opt.Jobs > MaxJobs || opt.Jobs < 0 {
		return fmt.Errorf("want 1 to %d runs and seeds at once (got %d)", MaxJobs, opt.Jobs)
	}
	var floors []float64
	for _, s := range specs {
		if s.Split.Protocol == "supervised" {
			continue // a classifier's buffers are small beside the data, which seeds share
		}
		cfg, e := s.LearnerConfig(1), s.Episodes
		cfg.Threads = 1 // not applied to seeds side by side
		floor := train.MemoryFloor(cfg, train.Shape{Ways: e.Ways, Shots: e.Shots, Queries: e.Queries,
			MetaBatch: e.MetaBatch, Dim: datasets.MinEncodedDim})
		seeds := len(s.Seeds)
		if len(opt.Seeds) > 0 {
			seeds = len(opt.Seeds)
		}
		if cmp.Or(opt.Device, s.Backend.Device) == "cuda" {
			seeds = 1
		}
		for range min(seeds, jobs) {
			floors = append(floors, floor)
		}
	}
	slices.SortFunc(floors, func(a, b float64) int { return cmp.Compare(b, a) })
	var sum float64
	for _, f := range floors[:min(jobs, len(floors))] {
		sum += f
	}
	if jobs > 1 && !train.FitsMemory(sum) {
		return fmt.Errorf("%d seeds at once need at least %s; this machine has %s", min(jobs, len(floors)),
			train.GiB(sum), train.GiB(train.MachineMemory()))
	}
	return nil
}

// lockedWriter serialises the log lines of seeds that run at once. Not being
// a terminal, it also turns their progress bars into log lines, which do not
// overwrite one another.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
