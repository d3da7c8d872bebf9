package kernels

import (
	"bufio"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/metaids/metaids/kernels/cpu"
)

// CPU is the plain-Go backend. It is always available; its zero value is
// ready to use.
type CPU struct {
	device string
}

var _ Backend = (*CPU)(nil)

// NewCPU returns the CPU backend, with the CPU model looked up once.
func NewCPU() *CPU {
	return &CPU{device: cpuDevice()}
}

// Name returns "cpu".
func (*CPU) Name() string { return "cpu" }

// Device returns the CPU model and architecture, e.g. "AMD EPYC (amd64)",
// or just the architecture where the model is unknown.
func (c *CPU) Device() string {
	if c.device != "" {
		return c.device
	}
	return cpuDevice()
}

func (*CPU) PairwiseSqDist(dst, x, y []float32, B, Q, N, D int) {
	cpu.PairwiseSqDist(dst, x, y, B, Q, N, D)
}

func (*CPU) PairwiseSqDistGrad(gx, gy, gout, x, y []float32, B, Q, N, D int) {
	cpu.PairwiseSqDistGrad(gx, gy, gout, x, y, B, Q, N, D)
}

func (*CPU) SGDStep(p, g []float32, lr, weightDecay float32) {
	cpu.SGD(p, g, lr, weightDecay)
}

func (*CPU) AdamStep(p, g, m, v []float32, t int, hp AdamParams) {
	cpu.Adam(p, g, m, v, t, hp.LR, hp.Beta1, hp.Beta2, hp.Eps, hp.WeightDecay, hp.Decoupled)
}

func cpuDevice() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	if model := modelName(f); model != "" {
		return model + " (" + runtime.GOARCH + ")"
	}
	return runtime.GOARCH
}

// modelName returns the first "model name" value in cpuinfo-formatted text.
func modelName(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(val)
		}
	}
	return ""
}
