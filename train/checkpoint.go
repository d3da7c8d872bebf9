package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"sort"

	"github.com/metaids/metaids/kernels"
)

// Checkpoint layout (all integers little-endian):
//
//	magic "metaids-ckpt\n" | uint32 version | uint32 header length | JSON header
//	| parameters | Adam m | Adam v  (float32 or float64 each, per header.DType)
//	| extra blobs in header order | uint32 CRC-32 (IEEE) of everything before
const (
	ckptMagic   = "metaids-ckpt\n"
	ckptVersion = 1
)

// ErrCheckpoint is wrapped by every checkpoint decoding error.
var ErrCheckpoint = errors.New("bad checkpoint")

type ckptHeader struct {
	Version   int
	Algo      string
	Config    Config
	Shape     Shape
	DType     string
	NumParams int
	OptStep   int // optimiser step count (Adam's bias correction)
	Moments   bool
	Steps     int
	Extra     []ckptBlob
}

type ckptBlob struct {
	Name string
	Len  int
}

func dtypeOf[T Float]() string {
	var z T
	if _, ok := any(z).(float32); ok {
		return "float32"
	}
	return "float64"
}

func (l *base[T]) SaveCheckpoint(w io.Writer, extra map[string][]byte) error {
	h := ckptHeader{
		Version: ckptVersion, Algo: l.name, Config: l.cfg, Shape: l.shape, DType: dtypeOf[T](),
		NumParams: len(l.params), OptStep: l.opt.t, Moments: l.opt.m != nil, Steps: l.steps,
	}
	names, blobs := blobIndex(extra)
	h.Extra = append(h.Extra, blobs...)
	buf, err := startFrame(ckptMagic, ckptVersion, h)
	if err != nil {
		return fmt.Errorf("checkpoint header: %w", err)
	}
	writeFloats(buf, l.params)
	if h.Moments {
		writeFloats(buf, l.opt.m)
		writeFloats(buf, l.opt.v)
	}
	for _, n := range names {
		buf.Write(extra[n])
	}
	if err := endFrame(w, buf); err != nil {
		return fmt.Errorf("writing checkpoint: %w", err)
	}
	return nil
}

// A checkpoint file is a frame: magic, version, header length, JSON header,
// payload, CRC-32 of everything before it. Learners and classifiers share
// the frame and differ in magic, header and payload.

// startFrame begins a frame with its magic, version and JSON header.
func startFrame(magic string, version uint32, header any) (*bytes.Buffer, error) {
	hj, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}
	buf := new(bytes.Buffer)
	buf.WriteString(magic)
	buf.Write(binary.LittleEndian.AppendUint32(nil, version))
	buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(hj))))
	buf.Write(hj)
	return buf, nil
}

// endFrame appends the checksum and writes the frame.
func endFrame(w io.Writer, buf *bytes.Buffer) error {
	buf.Write(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(buf.Bytes())))
	_, err := w.Write(buf.Bytes())
	return err
}

// openFrame checks the checksum and version of a frame whose magic the
// caller has checked, decodes its header into h and returns the payload.
func openFrame(data []byte, magic string, version uint32, h any) ([]byte, error) {
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, fmt.Errorf("checksum mismatch (truncated or corrupted)")
	}
	p := body[len(magic):]
	if v := binary.LittleEndian.Uint32(p); v != version {
		return nil, fmt.Errorf("version %d, this build reads version %d", v, version)
	}
	hl := int(binary.LittleEndian.Uint32(p[4:]))
	p = p[8:]
	if hl > len(p) {
		return nil, fmt.Errorf("header length %d past the end", hl)
	}
	if err := json.Unmarshal(p[:hl], h); err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	return p[hl:], nil
}

// blobIndex lists the extra blobs in name order (so checkpoints are
// byte-identical for the same content) with their sizes.
func blobIndex(extra map[string][]byte) ([]string, []ckptBlob) {
	names := make([]string, 0, len(extra))
	for n := range extra {
		names = append(names, n)
	}
	sort.Strings(names)
	blobs := make([]ckptBlob, len(names))
	for i, n := range names {
		blobs[i] = ckptBlob{n, len(extra[n])}
	}
	return names, blobs
}

func writeFloats[T Float](buf *bytes.Buffer, x []T) {
	b := make([]byte, 0, 8*len(x))
	for _, v := range x {
		switch v := any(v).(type) {
		case float32:
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		case float64:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	buf.Write(b)
}

// readCheckpoint decodes and verifies a checkpoint, returning its header and
// the payload after the header.
func readCheckpoint(r io.Reader) (ckptHeader, []byte, error) {
	var h ckptHeader
	data, err := io.ReadAll(r)
	if err != nil {
		return h, nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	if len(data) < len(ckptMagic)+12 || string(data[:len(ckptMagic)]) != ckptMagic {
		return h, nil, fmt.Errorf("%w: not a metaids checkpoint", ErrCheckpoint)
	}
	p, err := openFrame(data, ckptMagic, ckptVersion, &h)
	if err != nil {
		return h, nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	return h, p, nil
}

// Load builds the learner a checkpoint describes and restores it.
func Load(r io.Reader, be kernels.Backend) (Learner, map[string][]byte, error) {
	h, payload, err := readCheckpoint(r)
	if err != nil {
		return nil, nil, err
	}
	// The payload holds every parameter, so it bounds the model a header
	// may describe. A corrupt header asking for more than the machine has
	// is refused as too large by New; one asking for less, but for more
	// than the payload holds, is refused here, before New allocates it.
	if checkMemory(h.Config, h.Shape) == nil {
		if n := modelParams(h.Config, h.Shape); elemBytes(h.Config.Float64)*n > float64(len(payload)) {
			return nil, nil, fmt.Errorf("%w: the model described has %.4g parameters, more than the %d-byte payload holds", ErrCheckpoint, n, len(payload))
		}
	}
	l, err := New(h.Config, h.Shape, be)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	extra, err := l.(interface {
		restore(ckptHeader, []byte) (map[string][]byte, error)
	}).restore(h, payload)
	return l, extra, err
}

func (l *base[T]) LoadCheckpoint(r io.Reader) (map[string][]byte, error) {
	h, payload, err := readCheckpoint(r)
	if err != nil {
		return nil, err
	}
	return l.restore(h, payload)
}

// restore checks that the checkpoint's model structure matches the learner
// (algorithm, layers, activation, precision, ways, input width: what the
// parameter layout depends on) and loads its state. The learner keeps its
// own hyper-parameters.
func (l *base[T]) restore(h ckptHeader, p []byte) (map[string][]byte, error) {
	c, k := l.cfg, h.Config
	switch {
	case h.Version != ckptVersion:
		return nil, fmt.Errorf("%w: header version %d, want %d", ErrCheckpoint, h.Version, ckptVersion)
	case h.Algo != l.name:
		return nil, fmt.Errorf("%w: checkpoint is for %s, learner is %s", ErrCheckpoint, h.Algo, l.name)
	case h.DType != dtypeOf[T]():
		return nil, fmt.Errorf("%w: checkpoint is %s, learner is %s", ErrCheckpoint, h.DType, dtypeOf[T]())
	case !slices.Equal(k.Hidden, c.Hidden) || k.Activation != c.Activation || k.Distance != c.Distance || k.PretrainClasses != c.PretrainClasses:
		return nil, fmt.Errorf("%w: model structure differs (hidden %v %s vs %v %s)", ErrCheckpoint, k.Hidden, k.Activation, c.Hidden, c.Activation)
	case auxLayout(k.Aux) != auxLayout(c.Aux):
		return nil, fmt.Errorf("%w: auxiliary heads differ (%s vs %s)", ErrCheckpoint, auxLayout(k.Aux), auxLayout(c.Aux))
	case h.Shape.Ways != l.shape.Ways || h.Shape.Dim != l.shape.Dim:
		return nil, fmt.Errorf("%w: checkpoint is %d-way dim %d, learner is %d-way dim %d", ErrCheckpoint, h.Shape.Ways, h.Shape.Dim, l.shape.Ways, l.shape.Dim)
	case h.NumParams != len(l.params):
		return nil, fmt.Errorf("%w: %d parameters, learner has %d", ErrCheckpoint, h.NumParams, len(l.params))
	case h.OptStep < 0 || h.Steps < 0:
		return nil, fmt.Errorf("%w: negative step count", ErrCheckpoint)
	case h.Moments != (l.opt.m != nil):
		return nil, fmt.Errorf("%w: optimiser state does not match %s", ErrCheckpoint, l.cfg.Optimizer.Name)
	}
	blobs, err := blobsLength(h.Extra, len(p))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	if need := stateSize(h.DType, h.NumParams, h.Moments) + blobs; need != len(p) {
		return nil, fmt.Errorf("%w: payload is %d bytes, header describes %d", ErrCheckpoint, len(p), need)
	}
	p = readFloats(p, l.params)
	if h.Moments {
		p = readFloats(p, l.opt.m)
		p = readFloats(p, l.opt.v)
	}
	l.opt.t, l.steps = h.OptStep, h.Steps
	return readBlobs(p, h.Extra), nil
}

// stateSize is the bytes of a checkpoint's numeric state: nParams values of
// dtype, three times over with Adam's moments.
func stateSize(dtype string, nParams int, moments bool) int {
	size := 4
	if dtype == "float64" {
		size = 8
	}
	n := nParams * size
	if moments {
		n *= 3
	}
	return n
}

// blobsLength adds up the extra blobs' lengths, refusing one that is
// negative or longer than the payload, and a name listed twice (one blob
// would silently replace the other).
func blobsLength(blobs []ckptBlob, payload int) (int, error) {
	total := 0
	seen := map[string]bool{}
	for _, b := range blobs {
		if b.Len < 0 || b.Len > payload {
			return 0, fmt.Errorf("blob %q has length %d", b.Name, b.Len)
		}
		if seen[b.Name] {
			return 0, fmt.Errorf("blob %q is listed twice", b.Name)
		}
		seen[b.Name] = true
		total += b.Len
	}
	return total, nil
}

// readBlobs copies the extra blobs, in header order, out of p (checked to
// hold them).
func readBlobs(p []byte, blobs []ckptBlob) map[string][]byte {
	extra := make(map[string][]byte, len(blobs))
	for _, b := range blobs {
		extra[b.Name] = bytes.Clone(p[:b.Len])
		p = p[b.Len:]
	}
	return extra
}

func readFloats[T Float](p []byte, dst []T) []byte {
	for i := range dst {
		switch any(dst[i]).(type) {
		case float32:
			dst[i] = T(math.Float32frombits(binary.LittleEndian.Uint32(p)))
			p = p[4:]
		case float64:
			dst[i] = T(math.Float64frombits(binary.LittleEndian.Uint64(p)))
			p = p[8:]
		}
	}
	return p
}
