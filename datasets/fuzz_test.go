package datasets

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets run their seeds with go test; go test -fuzz=FuzzParse
// ./datasets searches further (the README lists the targets).

// shippedLines returns the first n lines of a shipped record file.
func shippedLines(t testing.TB, path string, n int) []byte {
	t.Helper()
	var out bytes.Buffer
	sc := bufio.NewScanner(openShipped(t, path))
	for i := 0; i < n && sc.Scan(); i++ {
		out.Write(sc.Bytes())
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// FuzzParse: any input gives records or an error that names the file, never
// a panic, and the records hold one row per line with every index in range.
func FuzzParse(f *testing.F) {
	nsl := shippedLines(f, "data/nsl-kdd/KDDTrain+.txt.gz", 3)
	kdd := shippedLines(f, "data/kddcup99/corrected.gz", 3)
	f.Add(nsl, false)
	f.Add(kdd, true)
	f.Add(bytes.ReplaceAll(nsl, []byte("\n"), []byte("\r\n")), false)
	f.Add(bytes.Replace(nsl, []byte(",tcp,"), []byte(",,"), 1), false)
	f.Add(bytes.Replace(kdd, []byte("0.00"), []byte("1e400"), 1), true)
	f.Add(bytes.Replace(kdd, []byte("0.00"), []byte("Inf"), 1), true)
	f.Add(bytes.Replace(nsl, []byte(",0,"), []byte(",NaN,"), 1), false)
	f.Add(bytes.Replace(kdd, []byte("normal."), []byte("."), 1), true)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(kdd)
	zw.Close()
	f.Add(gz.Bytes(), true)
	f.Add(gz.Bytes()[:gz.Len()/2], true)
	f.Add([]byte(""), false)
	f.Add([]byte("\n\n"), true)

	f.Fuzz(func(t *testing.T, data []byte, kddFormat bool) {
		format := FormatNSL
		if kddFormat {
			format = FormatKDD99
		}
		r, err := Parse(bytes.NewReader(data), "fuzz.csv", format)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			var pe *ParseError
			if errors.As(err, &pe) && (pe.File != "fuzz.csv" || pe.Line < 1) {
				t.Fatalf("parse error without file and line: %+v", pe)
			}
			return
		}
		if r.N < 1 || len(r.Label) != r.N || len(r.Num) != r.N*NumNumeric {
			t.Fatalf("%d records, %d labels, %d numbers", r.N, len(r.Label), len(r.Num))
		}
		if data[0] != 0x1f { // plain text: one record per line
			if lines := bytes.Count(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) + 1; lines != r.N {
				t.Fatalf("%d records from %d lines", r.N, lines)
			}
		}
		for _, l := range r.Label {
			if int(l) >= len(r.LabelNames) {
				t.Fatalf("label index %d of %d names", l, len(r.LabelNames))
			}
		}
		for k := range r.Cat {
			if len(r.Cat[k]) != r.N {
				t.Fatalf("categorical %d: %d values", k, len(r.Cat[k]))
			}
			for _, c := range r.Cat[k] {
				if int(c) >= len(r.CatValues[k]) {
					t.Fatalf("categorical %d: index %d of %d values", k, c, len(r.CatValues[k]))
				}
			}
		}
		for _, v := range r.Num {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("non-finite feature %v", v)
			}
		}
		if (format == FormatNSL) != (len(r.Difficulty) == r.N) {
			t.Fatalf("%s: %d difficulties for %d records", format, len(r.Difficulty), r.N)
		}
	})
}

// FuzzParseNumber: the fast path agrees with strconv.ParseFloat bit for
// bit on every input either accepts, but for Go's literal forms that are not
// data (digit separators, hexadecimal floats, NaN and infinities), which it
// refuses; a decimal beyond float64 reads, as there, as an infinity (for
// the range check to name).
func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"0", "491", "0.17", "12.", ".5", "1e3", "999999999999999", "1234567890.12345",
		"0.000000000000001", "-1", "+2", "NaN", "Inf", "0x10", "1_000", "00012.50", "0x1p3", "1e400", "-1e400", "1e-400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseNumber([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		finite := err == nil && !math.IsNaN(want) && !math.IsInf(want, 0)
		wantOK := (finite || errors.Is(err, strconv.ErrRange)) && !strings.ContainsAny(s, "_xX")
		if ok != wantOK || (ok && math.Float64bits(got) != math.Float64bits(want)) {
			t.Fatalf("parseNumber(%q) = %v, %v; strconv gives %v, %v", s, got, ok, want, err)
		}
	})
}

// FuzzParseCategories: a mapping or an error naming the file, never a panic,
// an empty name or an upper-case category.
func FuzzParseCategories(f *testing.F) {
	data, err := fs.ReadFile(ShippedFS(), "data/attack_categories.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("attack,category\nsmurf.,DoS\n"))
	f.Add([]byte("a,\"b\nc\",d\n"))
	f.Add([]byte("# only a comment\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCategories(bytes.NewReader(data), "fuzz.csv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for attack, cat := range c {
			if attack == "" || cat == "" || cat != strings.ToLower(cat) {
				t.Fatalf("mapping %q -> %q", attack, cat)
			}
		}
	})
}
