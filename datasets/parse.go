package datasets

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Records is a parsed record file in columnar form: numeric features as
// float64 (exact for every value in the files), categorical features and
// labels as indices into per-file vocabularies in order of first appearance.
type Records struct {
	Name   string // file name, for messages
	Format Format
	N      int

	Num        []float64 // [N, NumNumeric] row-major, in NumericFields order
	Cat        [3][]uint16
	CatValues  [3][]string
	Label      []uint16
	LabelNames []string
	// LabelLines holds the line of each label's first record (0 where
	// unknown: records not read from a file).
	LabelLines []int
	Difficulty []int8 // NSL-KDD difficulty 0-21; nil for KDD Cup 99
	// Repeats counts the records of the file left out as repeats of
	// earlier ones (LoadOptions.Distinct).
	Repeats int
}

// LabelCounts returns the number of records of each label, by name.
func (r *Records) LabelCounts() map[string]int {
	counts := make([]int, len(r.LabelNames))
	for _, l := range r.Label {
		counts[l]++
	}
	m := make(map[string]int, len(counts))
	for i, c := range counts {
		m[r.LabelNames[i]] = c
	}
	return m
}

// ParseError is a malformed record: it names the file, the line and the field.
type ParseError struct {
	File  string
	Line  int
	Field string // field name, or "" when the whole line is at fault
	Msg   string
}

func (e *ParseError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s line %d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s line %d, field %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// maxVocab bounds a categorical vocabulary so indices fit in uint16.
const maxVocab = math.MaxUint16

// Parse reads a record file of the given format, plain or gzip-compressed
// (detected from its first bytes). name is used in error messages.
func Parse(r io.Reader, name string, f Format) (*Records, error) {
	return parseHint(r, name, f, 0)
}

// parseHint is Parse with an expected record count (0 if unknown) to size the
// column buffers once.
func parseHint(r io.Reader, name string, f Format, hint int) (*Records, error) {
	src, zipped, err := decompressed(r, name)
	if err != nil {
		return nil, err
	}
	return parseText(src, zipped, name, f, hint, false)
}

// countRecords checks every record of r, the uncompressed content of a
// file (gunzipped when zipped), and counts them without keeping them; an
// empty file has none.
func countRecords(r io.Reader, zipped bool, name string, f Format) (int, error) {
	rec, err := parseText(r, zipped, name, f, 0, true)
	if err != nil {
		return 0, err
	}
	return rec.N, nil
}

// parseText parses uncompressed records, read from a gzip stream when
// zipped. With discard the parsed values are dropped line by line (only N
// counts), and an empty file is no error.
func parseText(r io.Reader, zipped bool, name string, f Format, hint int, discard bool) (*Records, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	p := newParser(name, f, hint)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &ParseError{File: name, Line: p.line + 1, Msg: "line longer than 64 KiB"}
		}
		// The gzip stream ended well before the data that follows it: its
		// last line is whole.
		trailing := errors.Is(err, errNotGzip)
		if err != nil && err != io.EOF && !trailing {
			return nil, readError(name, p.line, err)
		}
		if len(line) > 0 {
			if perr := p.parseLine(line); perr != nil {
				if zipped && !trailing {
					return nil, corruptBehind(br, name, p.line, perr)
				}
				return nil, perr
			}
			if discard {
				p.reset()
			}
		}
		if trailing {
			return nil, fmt.Errorf("%s: the gzip stream ends after line %d and is followed by data that is not gzip", name, p.line)
		}
		if err == io.EOF {
			break
		}
	}
	if p.rec.N == 0 && !discard {
		return nil, fmt.Errorf("%s: no records (empty file)", name)
	}
	return &p.rec, nil
}

// readError says what went wrong reading a file after line.
func readError(name string, line int, err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: truncated gzip stream after line %d: %w", name, line, err)
	case corruptGzip(err):
		return fmt.Errorf("%s: corrupt gzip stream after line %d: %w", name, line, err)
	}
	return fmt.Errorf("%s: read after line %d: %w", name, line, err)
}

// corruptBehind returns perr, a malformed record of a gzip stream, unless
// the rest of the stream is corrupt: a damaged deflate stream decodes to
// garbage before its damage shows, so the stream is then what is wrong.
// Only a file already in error is read on.
func corruptBehind(rest io.Reader, name string, line int, perr error) error {
	if _, err := io.Copy(io.Discard, rest); corruptGzip(err) {
		return fmt.Errorf("%s: corrupt gzip stream, read as far as line %d: %w", name, line, err)
	}
	return perr
}

func corruptGzip(err error) bool {
	var ce flate.CorruptInputError
	return errors.As(err, &ce) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader)
}

type parser struct {
	rec    Records
	line   int
	fields [NumFeatures + 2][]byte
	catIdx [3]map[string]uint16
	labIdx map[string]uint16
}

func newParser(name string, f Format, hint int) *parser {
	p := &parser{rec: Records{Name: name, Format: f}, labIdx: map[string]uint16{}}
	for k := range p.catIdx {
		p.catIdx[k] = map[string]uint16{}
		p.rec.Cat[k] = make([]uint16, 0, hint)
	}
	p.rec.Num = make([]float64, 0, hint*NumNumeric)
	p.rec.Label = make([]uint16, 0, hint)
	if f == FormatNSL {
		p.rec.Difficulty = make([]int8, 0, hint)
	}
	return p
}

// reset drops the values parsed so far, keeping the count and vocabularies.
func (p *parser) reset() {
	r := &p.rec
	r.Num, r.Label = r.Num[:0], r.Label[:0]
	for k := range r.Cat {
		r.Cat[k] = r.Cat[k][:0]
	}
	if r.Difficulty != nil {
		r.Difficulty = r.Difficulty[:0]
	}
}

func (p *parser) parseLine(line []byte) error {
	p.line++
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) == 0 {
		return &ParseError{File: p.rec.Name, Line: p.line, Msg: "empty line"}
	}
	want := p.rec.Format.Fields()
	n := 0
	for start := 0; ; {
		i := bytes.IndexByte(line[start:], ',')
		if n == want {
			return p.fieldCountError(line)
		}
		if i < 0 {
			p.fields[n] = line[start:]
			n++
			break
		}
		p.fields[n] = line[start : start+i]
		n++
		start += i + 1
	}
	if n != want {
		return p.fieldCountError(line)
	}

	r := &p.rec
	for k, fi := range NumericFields {
		v, ok := parseNumber(p.fields[fi])
		if !ok {
			return &ParseError{File: r.Name, Line: p.line, Field: FeatureNames[fi],
				Msg: fmt.Sprintf("%q is not a number", p.fields[fi])}
		}
		// Every numeric feature is a count, a size, a flag or a rate: a
		// negative one, a rate above 1 or a value beyond float32 (the
		// encoded width) is a broken record, not data.
		if v < 0 || v > math.MaxFloat32 || (isRate[k] && v > 1) {
			return &ParseError{File: r.Name, Line: p.line, Field: FeatureNames[fi], Msg: outOfRangeMsg(p.fields[fi], isRate[k])}
		}
		r.Num = append(r.Num, v)
	}
	for k, fi := range CategoricalFields {
		b := p.fields[fi]
		if len(b) == 0 {
			return &ParseError{File: r.Name, Line: p.line, Field: FeatureNames[fi], Msg: "empty value"}
		}
		if msg := badValue(b); msg != "" {
			return &ParseError{File: r.Name, Line: p.line, Field: FeatureNames[fi], Msg: msg}
		}
		idx, ok := p.catIdx[k][string(b)]
		if !ok {
			if len(r.CatValues[k]) >= maxVocab {
				return &ParseError{File: r.Name, Line: p.line, Field: FeatureNames[fi], Msg: "too many distinct values"}
			}
			idx = uint16(len(r.CatValues[k]))
			s := string(b)
			p.catIdx[k][s] = idx
			r.CatValues[k] = append(r.CatValues[k], s)
		}
		r.Cat[k] = append(r.Cat[k], idx)
	}
	label := p.fields[NumFeatures]
	if msg := badValue(label); msg != "" {
		return &ParseError{File: r.Name, Line: p.line, Field: "label", Msg: msg}
	}
	label = bytes.TrimSuffix(label, []byte{'.'})
	if len(label) == 0 {
		return &ParseError{File: r.Name, Line: p.line, Field: "label", Msg: "empty label"}
	}
	li, ok := p.labIdx[string(label)]
	if !ok {
		if len(r.LabelNames) >= maxVocab {
			return &ParseError{File: r.Name, Line: p.line, Field: "label", Msg: "too many distinct labels"}
		}
		li = uint16(len(r.LabelNames))
		s := string(label)
		p.labIdx[s] = li
		r.LabelNames = append(r.LabelNames, s)
		r.LabelLines = append(r.LabelLines, p.line)
	}
	r.Label = append(r.Label, li)
	if r.Format == FormatNSL {
		d, err := strconv.Atoi(string(p.fields[NumFeatures+1]))
		if err != nil || d < 0 || d > 21 {
			return &ParseError{File: r.Name, Line: p.line, Field: "difficulty",
				Msg: fmt.Sprintf("%q is not an integer from 0 to 21", p.fields[NumFeatures+1])}
		}
		r.Difficulty = append(r.Difficulty, int8(d))
	}
	r.N++
	return nil
}

// badValue says why a symbol or label cannot be one ("" when it can): a
// quote, a space or a control character would make a symbol or label of
// its own ("\"tcp\"" another protocol, "normal " a label with no category),
// so the record would be read as something it is not. The files' values
// are plain ASCII, checked byte by byte; anything else is looked at closer.
func badValue(b []byte) string {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\'' {
			return valueProblem(b)
		}
	}
	return ""
}

func valueProblem(v []byte) string {
	first, _ := utf8.DecodeRune(v)
	last, _ := utf8.DecodeLastRune(v)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return fmt.Sprintf("%q has spaces around it", v)
	}
	for b := v; len(b) > 0; {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size == 1:
			return fmt.Sprintf("%q is not UTF-8 text", v)
		case !unicode.IsGraphic(r): // tabs and line ends too
			return fmt.Sprintf("%q: control characters are not part of a value", v)
		case unicode.IsSpace(r):
			return fmt.Sprintf("%q: spaces are not part of a value", v)
		case unicode.Is(unicode.Quotation_Mark, r):
			return fmt.Sprintf("%q: quotes are not part of a value", v)
		}
		b = b[size:]
	}
	return ""
}

func (p *parser) fieldCountError(line []byte) error {
	got := bytes.Count(line, []byte{','}) + 1
	return &ParseError{File: p.rec.Name, Line: p.line,
		Msg: fmt.Sprintf("%d fields, want %d (%s format)", got, p.rec.Format.Fields(), p.rec.Format)}
}

// pow10 holds the exactly representable powers of ten used by parseNumber.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseNumber parses the plain decimals the files hold ("491", "0.17")
// without allocating. Dividing an exact integer mantissa below 2^53 by an
// exact power of ten is correctly rounded, so the result equals
// strconv.ParseFloat's; any other form is handed to strconv.
func parseNumber(b []byte) (float64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var mant uint64
	digits, frac := 0, -1
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits >= 15 {
				return parseSlow(b)
			}
			mant = mant*10 + uint64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0 && i > 0:
			frac = 0
		default:
			return parseSlow(b)
		}
	}
	if frac == 0 { // "12." has no digits after the point
		return parseSlow(b)
	}
	v := float64(mant)
	if frac > 0 {
		v /= pow10[frac]
	}
	return v, true
}

// isRate marks the numeric features (by position in NumericFields) that
// are fractions in [0, 1].
var isRate = func() (r [NumNumeric]bool) {
	for k, fi := range NumericFields {
		r[k] = strings.HasSuffix(FeatureNames[fi], "_rate")
	}
	return r
}()

func outOfRangeMsg(field []byte, rate bool) string {
	if rate {
		return fmt.Sprintf("%q is outside [0, 1], the range of a rate", field)
	}
	return fmt.Sprintf("%q is outside [0, 3.4e38]: a count or size is not negative and fits in float32", field)
}

// parseSlow parses the other decimal forms ("1e3", "+2", "0.000000000000001").
// Go's literal syntax, which strconv.ParseFloat also accepts, is not data: an
// underscore between digits ("1_0" would read as 10) and hexadecimal floats
// ("0x1p3" as 8) are refused, as are NaN and infinities. A decimal beyond
// float64 ("1e400") is a number, read as an infinity, so that the range
// check names it as out of range.
func parseSlow(b []byte) (float64, bool) {
	if bytes.ContainsAny(b, "_xX") {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if errors.Is(err, strconv.ErrRange) {
		return v, true
	}
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}
