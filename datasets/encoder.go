package datasets

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
)

// Scaling is how the encoder scales numeric features after log1p.
type Scaling string

const (
	MinMax Scaling = "minmax" // (v-min)/(max-min), fitted range maps to [0,1]
	ZScore Scaling = "zscore" // (v-mean)/sd
)

// EncoderOptions configure FitEncoder.
type EncoderOptions struct {
	Scaling Scaling // default MinMax
	NoLog1p bool    // skip log1p before scaling (default: apply it)
}

// encoderVersion is bumped whenever the encoding of a record changes.
const encoderVersion = 1

// UnknownValue names the one-hot column of values the training file lacks.
const UnknownValue = "<unknown>"

// Encoder turns records into float32 feature vectors: the 38 numeric
// features first (log1p, then min-max or z-score, with parameters fitted on
// the training file only), then a one-hot block per categorical feature with
// one column per training value plus an explicit unknown column. A constant
// column (zero range or variance) encodes as 0, never NaN.
type Encoder struct {
	Version int                  `json:"version"`
	Scaling Scaling              `json:"scaling"`
	Log1p   bool                 `json:"log1p"`
	Offset  [NumNumeric]float64  `json:"offset"` // min or mean
	Scale   [NumNumeric]float64  `json:"scale"`  // 1/range or 1/sd; 0 for constant columns
	Values  [3][]string          `json:"values"` // training values per categorical feature, sorted
	index   [3]map[string]uint16 // value -> position within its block
}

// FitEncoder fits an encoder on training records.
func FitEncoder(r *Records, opt EncoderOptions) (*Encoder, error) {
	if r == nil || r.N == 0 {
		return nil, fmt.Errorf("fit encoder: no training records")
	}
	s := opt.Scaling
	if s == "" {
		s = MinMax
	}
	if s != MinMax && s != ZScore {
		return nil, fmt.Errorf("encoder scaling %q: want %q or %q", s, MinMax, ZScore)
	}
	e := &Encoder{Version: encoderVersion, Scaling: s, Log1p: !opt.NoLog1p}
	var memo log1pMemo
	col := make([]float64, r.N)
	for j := 0; j < NumNumeric; j++ {
		lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
		for i := range col {
			v := e.pre(&memo, r.Num[i*NumNumeric+j])
			col[i] = v
			lo, hi = min(lo, v), max(hi, v)
			sum += v
		}
		if s == MinMax {
			e.Offset[j] = lo
			if hi > lo {
				e.Scale[j] = 1 / (hi - lo)
			}
			continue
		}
		mean := sum / float64(r.N)
		var sumSq float64
		for _, v := range col {
			sumSq += (v - mean) * (v - mean)
		}
		e.Offset[j] = mean
		if sd := math.Sqrt(sumSq / float64(r.N)); sd > 0 {
			e.Scale[j] = 1 / sd
		}
	}
	for k := range e.Values {
		vals := append([]string(nil), r.CatValues[k]...)
		sort.Strings(vals)
		e.Values[k] = vals
	}
	e.buildIndex()
	return e, nil
}

// pre applies the optional log1p. Negative values cannot occur in these files
// but are passed through unchanged rather than turned into NaN.
func (e *Encoder) pre(memo *log1pMemo, v float64) float64 {
	if e.Log1p && v > -1 {
		return memo.log1p(v)
	}
	return v
}

// log1pMemo caches math.Log1p by exact input. The record files hold few
// distinct values per column (counts, two-decimal rates), and log1p was most
// of the cost of encoding; results are bit-identical to math.Log1p.
type log1pMemo struct {
	in, out [4096]float64
	set     [4096]bool
}

func (m *log1pMemo) log1p(v float64) float64 {
	if v == 0 {
		return 0
	}
	h := (math.Float64bits(v) * 0x9E3779B97F4A7C15) >> 52
	if m.set[h] && m.in[h] == v {
		return m.out[h]
	}
	out := math.Log1p(v)
	m.in[h], m.out[h], m.set[h] = v, out, true
	return out
}

func (e *Encoder) buildIndex() {
	for k, vals := range e.Values {
		e.index[k] = make(map[string]uint16, len(vals))
		for i, v := range vals {
			e.index[k][v] = uint16(i)
		}
	}
}

// Dim is the length of an encoded vector.
func (e *Encoder) Dim() int {
	d := NumNumeric
	for _, v := range e.Values {
		d += len(v) + 1
	}
	return d
}

// OneHotBlocks returns the [start, end) column range of each categorical
// feature's one-hot block (unknown column included). Columns [0, NumNumeric)
// are the numeric features.
func (e *Encoder) OneHotBlocks() [3][2]int {
	var b [3][2]int
	start := NumNumeric
	for k, v := range e.Values {
		b[k] = [2]int{start, start + len(v) + 1}
		start += len(v) + 1
	}
	return b
}

// ColumnNames names every encoded column: the numeric feature names, then
// "protocol_type=tcp", ..., "protocol_type=<unknown>", and so on.
func (e *Encoder) ColumnNames() []string {
	names := make([]string, 0, e.Dim())
	for _, fi := range NumericFields {
		names = append(names, FeatureNames[fi])
	}
	for k, vals := range e.Values {
		f := FeatureNames[CategoricalFields[k]]
		for _, v := range vals {
			names = append(names, f+"="+v)
		}
		names = append(names, f+"="+UnknownValue)
	}
	return names
}

// Matrix is an encoded record file: one row per record.
type Matrix struct {
	Rows, Dim int
	X         []float32 // [Rows, Dim] row-major
}

// Row returns row i.
func (m *Matrix) Row(i int) []float32 { return m.X[i*m.Dim : (i+1)*m.Dim] }

// Transform encodes records. Categorical values the training file lacked go
// to their feature's unknown column.
func (e *Encoder) Transform(r *Records) *Matrix {
	dim := e.Dim()
	m := &Matrix{Rows: r.N, Dim: dim, X: make([]float32, r.N*dim)}
	blocks := e.OneHotBlocks()
	// Map this file's vocabulary onto encoder columns once.
	var col [3][]int
	for k := range col {
		col[k] = make([]int, len(r.CatValues[k]))
		for i, v := range r.CatValues[k] {
			pos, ok := e.index[k][v]
			if !ok {
				pos = uint16(len(e.Values[k])) // the unknown column
			}
			col[k][i] = blocks[k][0] + int(pos)
		}
	}
	var memo log1pMemo
	for i := 0; i < r.N; i++ {
		row := m.X[i*dim : (i+1)*dim]
		num := r.Num[i*NumNumeric : (i+1)*NumNumeric]
		for j, v := range num {
			row[j] = float32((e.pre(&memo, v) - e.Offset[j]) * e.Scale[j])
		}
		for k := range col {
			row[col[k][r.Cat[k][i]]] = 1
		}
	}
	return m
}

// MarshalJSON is the encoder's checkpoint form.
func (e *Encoder) MarshalJSON() ([]byte, error) {
	type plain Encoder
	return json.Marshal((*plain)(e))
}

// UnmarshalJSON restores and validates an encoder saved with MarshalJSON.
// Offset and scale are read as lists, so that a short one is an error and
// not an array padded with zeros (a feature that would encode as 0).
func (e *Encoder) UnmarshalJSON(b []byte) error {
	var p struct {
		Version int        `json:"version"`
		Scaling Scaling    `json:"scaling"`
		Log1p   bool       `json:"log1p"`
		Offset  []float64  `json:"offset"`
		Scale   []float64  `json:"scale"`
		Values  [][]string `json:"values"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("encoder: %w", err)
	}
	if p.Version != encoderVersion {
		return fmt.Errorf("encoder: version %d, this build reads version %d", p.Version, encoderVersion)
	}
	if p.Scaling != MinMax && p.Scaling != ZScore {
		return fmt.Errorf("encoder: scaling %q: want %q or %q", p.Scaling, MinMax, ZScore)
	}
	if len(p.Offset) != NumNumeric || len(p.Scale) != NumNumeric {
		return fmt.Errorf("encoder: %d offsets and %d scales, want %d of each", len(p.Offset), len(p.Scale), NumNumeric)
	}
	for j := range p.Scale {
		name := FeatureNames[NumericFields[j]]
		if math.IsNaN(p.Offset[j]) || math.IsInf(p.Offset[j], 0) || math.IsNaN(p.Scale[j]) || math.IsInf(p.Scale[j], 0) {
			return fmt.Errorf("encoder: numeric feature %s has a non-finite parameter", name)
		}
		if p.Scale[j] < 0 {
			return fmt.Errorf("encoder: numeric feature %s has a negative scale %v", name, p.Scale[j])
		}
	}
	if len(p.Values) != len(CategoricalFields) {
		return fmt.Errorf("encoder: %d lists of categorical values, want %d", len(p.Values), len(CategoricalFields))
	}
	out := Encoder{Version: p.Version, Scaling: p.Scaling, Log1p: p.Log1p}
	copy(out.Offset[:], p.Offset)
	copy(out.Scale[:], p.Scale)
	for k, vs := range p.Values {
		name := FeatureNames[CategoricalFields[k]]
		if len(vs) == 0 {
			return fmt.Errorf("encoder: categorical feature %s has no values", name)
		}
		for i := 1; i < len(vs); i++ {
			if vs[i-1] >= vs[i] {
				return fmt.Errorf("encoder: values of %s are not sorted and distinct (%q before %q)", name, vs[i-1], vs[i])
			}
		}
		out.Values[k] = vs
	}
	*e = out
	e.buildIndex()
	return nil
}
