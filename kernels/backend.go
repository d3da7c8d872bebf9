// Package kernels holds the compute backends: the bulk operations the learners
// need, on the CPU (always there) or on a GPU (build tag cuda).
//
// The arithmetic itself lives in leaf packages (kernels/cpu for plain Go,
// kernels/cuda for the GPU); this package holds the interface, the CPU
// adapter and the registry that Open picks from, so that a GPU backend can
// register itself without an import cycle.
package kernels

// Backend is the set of bulk operations the learners hand off. All tensors are
// dense row-major float32 slices; shapes are given explicitly. Methods never
// allocate on the hot path and never retain their arguments.
type Backend interface {
	// Name is the backend's name ("cpu", "cuda").
	Name() string
	// Device describes the device the backend runs on (e.g. the CPU model).
	Device() string

	// PairwiseSqDist writes dst[b,q,n] = sum_d (x[b,q,d]-y[b,n,d])^2 for
	// x [B,Q,D], y [B,N,D] and dst [B,Q,N].
	PairwiseSqDist(dst, x, y []float32, B, Q, N, D int)
	// PairwiseSqDistGrad accumulates into gx [B,Q,D] and gy [B,N,D] the
	// gradient of sum(gout*dist) given the upstream gradient gout [B,Q,N].
	// Either gx or gy may be nil when that gradient is not needed.
	PairwiseSqDistGrad(gx, gy, gout, x, y []float32, B, Q, N, D int)

	// SGDStep applies p -= lr*(g + weightDecay*p) in place.
	SGDStep(p, g []float32, lr, weightDecay float32)
	// AdamStep applies one Adam update (step t counts from 1) in place,
	// updating the moment buffers m and v.
	AdamStep(p, g, m, v []float32, t int, hp AdamParams)
}

// DeviceTimer is implemented by backends with a device of their own (the
// GPU): TimeDevice runs f, which queues work on the device, and returns the
// milliseconds of device time between the start and the end of that work,
// idle gaps while the host prepares the next call included.
type DeviceTimer interface {
	TimeDevice(f func() error) (ms float64, err error)
}

// AdamParams are Adam's hyper-parameters. Weight decay is decoupled (AdamW)
// when Decoupled is true, else added to the gradient (L2).
type AdamParams struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
	Decoupled                          bool
}

// Failure is the panic value of a Backend method whose device failed (the
// interface has no error results); Catch turns it back into an error.
type Failure struct{ Err error }

func (f Failure) Error() string { return f.Err.Error() }
func (f Failure) Unwrap() error { return f.Err }

// Catch, deferred, stores a Failure panic in *err; other panics go on.
func Catch(err *error) {
	if r := recover(); r != nil {
		f, ok := r.(Failure)
		if !ok {
			panic(r)
		}
		*err = f
	}
}
