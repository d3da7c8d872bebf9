// Package train holds the models and learners: an MLP encoder, the
// meta-learners (ProtoNet, MAML, FOMAML, Reptile, ANIL, Meta-SGD) and the
// baselines (fine-tuning, nearest centroid), their optimisers, checkpoints,
// multi-task auxiliary heads (AuxConfig) and a throughput benchmark.
//
// Gradients are written out by hand: backward passes for the MLP and the
// losses, and, for second-order MAML, ANIL and Meta-SGD, exact
// Hessian-vector products by the R-operator (forward-mode differentiation of
// the backward pass). Every buffer is sized once per shape, so a steady-state
// meta-step does not allocate.
package train

import (
	"errors"
	"fmt"
	"math"
)

// OptimConfig configures the outer (meta) optimiser.
type OptimConfig struct {
	Name        string  // "adam" or "sgd"
	LR          float64 // learning rate, > 0
	WeightDecay float64 // L2 penalty (added to the gradient), >= 0
	Decoupled   bool    // Adam only: decoupled weight decay (AdamW)
	ClipNorm    float64 // clip the gradient's global L2 norm to this; 0 = off
	Beta1       float64 // Adam, in [0,1)
	Beta2       float64 // Adam, in [0,1)
	Eps         float64 // Adam, > 0
}

// check reports the first invalid field through bad, which names it.
func (o OptimConfig) check(bad func(field, format string, args ...any) error) error {
	switch o.Name {
	case "adam":
		// Below 1 in float32 too, in which the optimiser steps: a rate
		// that rounds to 1 makes the bias correction divide by 0.
		if !(o.Beta1 >= 0 && o.Beta1 < 1 && float32(o.Beta1) < 1) {
			return bad("Optimizer.Beta1", "%g, want in [0,1), and below 1 in float32", o.Beta1)
		}
		if !(o.Beta2 >= 0 && o.Beta2 < 1 && float32(o.Beta2) < 1) {
			return bad("Optimizer.Beta2", "%g, want in [0,1), and below 1 in float32", o.Beta2)
		}
		if !(o.Eps > 0) {
			return bad("Optimizer.Eps", "%g, want > 0", o.Eps)
		}
	case "sgd":
		if o.Decoupled {
			return bad("Optimizer.Decoupled", "only Adam has decoupled weight decay")
		}
	default:
		return bad("Optimizer.Name", "%q, want adam or sgd", o.Name)
	}
	if !(o.LR > 0) {
		return bad("Optimizer.LR", "%g, want > 0", o.LR)
	}
	if !(o.WeightDecay >= 0) {
		return bad("Optimizer.WeightDecay", "%g, want >= 0", o.WeightDecay)
	}
	if !(o.ClipNorm >= 0) {
		return bad("Optimizer.ClipNorm", "%g, want >= 0", o.ClipNorm)
	}
	// Infinities would also make the configuration unsavable (JSON).
	for _, f := range []struct {
		name string
		v    float64
	}{{"LR", o.LR}, {"WeightDecay", o.WeightDecay}, {"ClipNorm", o.ClipNorm}, {"Eps", o.Eps}} {
		if math.IsInf(f.v, 0) {
			return bad("Optimizer."+f.name, "%g, want finite", f.v)
		}
	}
	return nil
}

// finitePositive rejects zero, negatives, NaN and infinities: an infinite
// rate or scale turns every loss into NaN and cannot be saved as JSON.
func finitePositive(x float64) bool { return x > 0 && !math.IsInf(x, 0) }

// Config is a learner's specification.
type Config struct {
	Algo       string // a registered learner name (see Names)
	Hidden     []int  // hidden layer widths; the last is the embedding size
	Activation string // relu, leaky_relu, tanh or sigmoid
	InitSeed   uint64 // seed of the weight initialisation

	// ProtoNet.
	Distance    string  // euclidean (negative squared distance) or cosine
	CosineScale float64 // logits are CosineScale*cos; > 0

	// Gradient-based meta-learners (maml, fomaml, reptile, anil, metasgd).
	InnerSteps     int     // adaptation steps during meta-training, >= 1
	TestInnerSteps int     // adaptation steps in Predict, >= 0
	InnerLR        float64 // inner learning rate (Meta-SGD's initial value), > 0

	// Fine-tuning baseline.
	PretrainClasses int     // classes of the supervised pre-training head (> max pool class index)
	FinetuneSteps   int     // gradient steps fitting the new head in Predict, >= 1
	FinetuneLR      float64 // learning rate of those steps, > 0

	// Aux adds multi-task heads trained jointly with the episodic loss
	// (every learner but nearest-centroid, fused engine).
	Aux AuxConfig

	Optimizer OptimConfig
	Float64   bool // compute in float64 (gradient checks); float32 otherwise

	// Engine computes the gradients: "fused" (default; hand-derived fused
	// kernels, every learner) or "gorgonia" (gorgonia graphs built once per
	// shape with symbolic second-order differentiation; protonet, maml and
	// fomaml). The two agree to rounding; the fused engine is about ten
	// times faster and allocation-free.
	Engine string

	// Threads is how many tasks of a meta-batch the MAML family (fused
	// engine) adapts at once; 0 or 1 runs them one after another. The
	// numbers do not depend on it, as the tasks' shares of the
	// meta-gradient are added in task order; nor do checkpoints, which do
	// not record it.
	Threads int `json:"-"`
}

// Engines lists the gradient engines.
var Engines = []string{"fused", "gorgonia"}

// DefaultConfig returns a complete configuration for algo with the usual
// hyper-parameters: one hidden layer of 64 ReLU units, Adam at 1e-3, five
// inner steps at 0.01 (ten at test time), Euclidean ProtoNet.
func DefaultConfig(algo string) Config {
	return Config{
		Algo: algo, Hidden: []int{64}, Activation: "relu", InitSeed: 1,
		Distance: "euclidean", CosineScale: 10,
		InnerSteps: 5, TestInnerSteps: 10, InnerLR: 0.01,
		PretrainClasses: 0, FinetuneSteps: 100, FinetuneLR: 0.1,
		Optimizer: OptimConfig{Name: "adam", LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Of: "config", Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if _, ok := lookup(c.Algo); !ok {
		return bad("Algo", "unknown learner %q (want one of %v)", c.Algo, Names())
	}
	if len(c.Hidden) == 0 && c.Algo != "nearest-centroid" {
		return bad("Hidden", "need at least one hidden layer")
	}
	if err := checkWidths(c.Hidden, bad); err != nil {
		return err
	}
	switch c.Engine {
	case "", "fused":
	case "gorgonia":
		if c.Algo != "protonet" && c.Algo != "maml" && c.Algo != "fomaml" {
			return bad("Engine", "the gorgonia engine implements protonet, maml and fomaml, not %s; use the fused engine", c.Algo)
		}
	default:
		return bad("Engine", "%q, want fused or gorgonia", c.Engine)
	}
	if _, err := parseActivation(c.Activation); err != nil {
		return bad("Activation", "%v", err)
	}
	if c.Distance != "euclidean" && c.Distance != "cosine" {
		return bad("Distance", "%q, want euclidean or cosine", c.Distance)
	}
	if !finitePositive(c.CosineScale) {
		return bad("CosineScale", "%g, want finite > 0", c.CosineScale)
	}
	if c.InnerSteps < 1 {
		return bad("InnerSteps", "%d, want >= 1", c.InnerSteps)
	}
	if c.TestInnerSteps < 0 {
		return bad("TestInnerSteps", "%d, want >= 0", c.TestInnerSteps)
	}
	if !finitePositive(c.InnerLR) {
		return bad("InnerLR", "%g, want finite > 0", c.InnerLR)
	}
	if c.Algo == "finetune" && c.PretrainClasses < 2 {
		return bad("PretrainClasses", "%d, finetune needs >= 2 (the meta-train class count)", c.PretrainClasses)
	}
	if c.FinetuneSteps < 1 {
		return bad("FinetuneSteps", "%d, want >= 1", c.FinetuneSteps)
	}
	if !finitePositive(c.FinetuneLR) {
		return bad("FinetuneLR", "%g, want finite > 0", c.FinetuneLR)
	}
	if c.Threads < 0 || c.Threads > MaxThreads {
		return bad("Threads", "%d, want 0 to %d", c.Threads, MaxThreads)
	}
	if err := c.Optimizer.check(bad); err != nil {
		return err
	}
	if err := c.Aux.check(bad); err != nil {
		return err
	}
	if c.Aux.Enabled() {
		switch {
		case c.Algo == "nearest-centroid":
			return bad("Aux", "nearest-centroid has no encoder for auxiliary heads")
		case c.Engine == "gorgonia":
			return bad("Aux", "auxiliary heads are implemented by the fused engine only")
		}
	}
	return nil
}

// checkWidths reports, through bad, a hidden layer narrower than 1.
func checkWidths(hidden []int, bad func(field, format string, args ...any) error) error {
	for i, h := range hidden {
		if h < 1 {
			return bad("Hidden", "layer %d has width %d, want >= 1", i, h)
		}
	}
	return nil
}

// Shape is the episode shape a learner is built for. Buffers are sized from
// it once; MetaStep accepts batches of 1..MetaBatch episodes of this shape.
type Shape struct {
	Ways, Shots, Queries, MetaBatch, Dim int
}

// Validate reports the first invalid field.
func (s Shape) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"Ways", s.Ways}, {"Shots", s.Shots}, {"Queries", s.Queries}, {"MetaBatch", s.MetaBatch}, {"Dim", s.Dim}} {
		if f.v < 1 {
			return &FieldError{Of: "shape", Field: f.name, Msg: fmt.Sprintf("%d, want >= 1", f.v)}
		}
	}
	if s.Ways < 2 {
		return &FieldError{Of: "shape", Field: "Ways", Msg: fmt.Sprintf("%d, want >= 2", s.Ways)}
	}
	return nil
}

// FieldError is an invalid field of a Config or Shape. Field is the Go
// field name, so that a caller that took the value from a flag or a spec key
// can name that instead.
type FieldError struct {
	Of    string // "config" or "shape"
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Of + " " + e.Field + ": " + e.Msg }

// ErrShape is wrapped by errors about episodes that do not match the
// learner's shape.
var ErrShape = errors.New("episode shape mismatch")

// DivergedError is a training loss that is not finite, met before the step
// that would have spread it to the parameters (pre-training and the
// supervised classifier). Its message names the Config fields to change;
// Where says what diverged and when, for a caller that names them its own
// way.
type DivergedError struct {
	Stage, Loss    string      // "pretrain", "reconstruction"; "classifier fit", "training"
	Value          float64     // the loss: NaN or an infinity
	Epoch          int         // from 1
	Batch, Batches int         // from 1, of Batches in the epoch
	Optimizer      OptimConfig // the optimiser that diverged, whose LR, WeightDecay and ClipNorm to change
}

// Where is what diverged and when: "reconstruction loss is NaN at epoch 1
// (batch 3 of 264)".
func (e *DivergedError) Where() string {
	return fmt.Sprintf("%s loss is %g at epoch %d (batch %d of %d)", e.Loss, e.Value, e.Epoch, e.Batch, e.Batches)
}

func (e *DivergedError) Error() string {
	return fmt.Sprintf("%s: %s; lower Optimizer.LR (now %g) or set Optimizer.ClipNorm", e.Stage, e.Where(), e.Optimizer.LR)
}
