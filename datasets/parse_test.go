package datasets

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const nslLine = "0,tcp,ftp_data,SF,491,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,1.00,0.00,0.00,150,25,0.17,0.03,0.17,0.00,0.00,0.00,0.05,0.00,normal,20"
const kddLine = "0,udp,private,SF,105,146,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,0.00,0.00,0.00,0.00,1.00,0.00,0.00,255,254,1.00,0.01,0.00,0.00,0.00,0.00,0.00,0.00,smurf."

func gz(t testing.TB, s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParseValues(t *testing.T) {
	r, err := Parse(strings.NewReader(nslLine+"\r\n"+nslLine), "x.txt", FormatNSL)
	if err != nil {
		t.Fatal(err)
	}
	if r.N != 2 || r.LabelNames[0] != "normal" || r.Difficulty[0] != 20 {
		t.Fatalf("got %d records, labels %v, difficulty %v", r.N, r.LabelNames, r.Difficulty)
	}
	if r.CatValues[0][0] != "tcp" || r.CatValues[1][0] != "ftp_data" || r.CatValues[2][0] != "SF" {
		t.Errorf("categorical values %v", r.CatValues)
	}
	// src_bytes is numeric column 1, dst_host_same_srv_rate is field 33.
	if r.Num[1] != 491 {
		t.Errorf("src_bytes = %v", r.Num[1])
	}
	for j, fi := range NumericFields {
		if FeatureNames[fi] == "dst_host_same_srv_rate" && r.Num[j] != 0.17 {
			t.Errorf("dst_host_same_srv_rate = %v, want 0.17", r.Num[j])
		}
	}
	k, err := Parse(bytes.NewReader(gz(t, kddLine+"\n")), "x.gz", FormatKDD99)
	if err != nil {
		t.Fatal(err)
	}
	if k.LabelNames[0] != "smurf" || k.Difficulty != nil {
		t.Errorf("kdd99 label %q (trailing period must go), difficulty %v", k.LabelNames[0], k.Difficulty)
	}
}

func TestParseNumberMatchesStrconv(t *testing.T) {
	for _, s := range []string{"0", "7", "491", "1379963888", "0.00", "0.17", "1.00", "0.99", "12.5", "0.333", "1e3", "-2", "3.14159", "123456789012345678"} {
		want, _ := strconv.ParseFloat(s, 64)
		got, ok := parseNumber([]byte(s))
		if !ok || got != want {
			t.Errorf("parseNumber(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "abc", "1.2.3", ".", "NaN", "Inf", "0x10", "--1",
		"1_0", "1_000.5", "0x1p3", "0X1P-2", "0x_1p3", "0x1.8p1", "Infinity"} {
		if v, ok := parseNumber([]byte(s)); ok {
			t.Errorf("parseNumber(%q) = %v, want an error", s, v)
		}
	}
}

func TestParseBadInput(t *testing.T) {
	replace := func(field int, v string) string {
		f := strings.Split(nslLine, ",")
		f[field] = v
		return strings.Join(f, ",")
	}
	cases := []struct {
		name, input, want string
	}{
		{"too few fields", nslLine + "\n" + "0,tcp,http", "x.txt line 2: 3 fields, want 43"},
		{"too many fields", nslLine + ",9", "x.txt line 1: 44 fields, want 43"},
		{"not a number", replace(4, "12x"), `line 1, field src_bytes: "12x" is not a number`},
		{"empty number", replace(0, ""), `line 1, field duration: "" is not a number`},
		{"negative count", replace(0, "-1"), `line 1, field duration: "-1" is outside [0, 3.4e38]`},
		{"beyond float32", replace(4, "1e50"), `line 1, field src_bytes: "1e50" is outside [0, 3.4e38]`},
		{"beyond float64", replace(4, "1e400"), `line 1, field src_bytes: "1e400" is outside [0, 3.4e38]`},
		{"negative beyond float64", replace(0, "-1e400"), `line 1, field duration: "-1e400" is outside [0, 3.4e38]`},
		{"rate beyond float64", replace(24, "1e400"), `line 1, field serror_rate: "1e400" is outside [0, 1], the range of a rate`},
		{"infinity", replace(4, "inf"), `line 1, field src_bytes: "inf" is not a number`},
		{"rate above 1", replace(24, "1.5"), `line 1, field serror_rate: "1.5" is outside [0, 1], the range of a rate`},
		{"negative rate", replace(40, "-0.01"), `line 1, field dst_host_srv_rerror_rate: "-0.01" is outside [0, 1]`},
		{"empty label", replace(41, ""), "line 1, field label: empty label"},
		{"empty categorical", replace(2, ""), "line 1, field service: empty value"},
		// Spaces would make another symbol or label ("normal " is no
		// category, so normal traffic would become an attack type).
		{"label with a trailing space", replace(41, "normal "), `line 1, field label: "normal " has spaces around it`},
		{"label with a leading tab", replace(41, "\tnormal"), `line 1, field label: "\tnormal" has spaces around it`},
		{"symbol with a space", replace(1, " tcp"), `line 1, field protocol_type: " tcp" has spaces around it`},
		// Quotes, inner spaces and control characters likewise: "\"tcp\""
		// would be a fourth protocol, "\"normal\"" a 39th label.
		{"quoted symbol", replace(1, `"tcp"`), `x.txt line 1, field protocol_type: "\"tcp\"": quotes are not part of a value`},
		{"quoted label", replace(41, `"normal"`), `x.txt line 1, field label: "\"normal\"": quotes are not part of a value`},
		{"single-quoted flag", replace(3, `'SF'`), `line 1, field flag: "'SF'": quotes are not part of a value`},
		{"typographic quotes", replace(2, "“http”"), `line 1, field service: "“http”": quotes are not part of a value`},
		{"space inside a label", replace(41, "guess passwd"), `line 1, field label: "guess passwd": spaces are not part of a value`},
		{"tab inside a symbol", replace(2, "ftp\tdata"), `line 1, field service: "ftp\tdata": control characters are not part of a value`},
		{"no-break space inside a label", replace(41, "guess\u00a0passwd"), `line 1, field label: "guess\u00a0passwd": spaces are not part of a value`},
		{"no-break space around a label", replace(41, "normal\u00a0"), `line 1, field label: "normal\u00a0" has spaces around it`},
		{"NUL in a symbol", replace(1, "tc\x00p"), `line 1, field protocol_type: "tc\x00p": control characters are not part of a value`},
		{"carriage return in a label", replace(41, "nor\rmal"), `line 1, field label: "nor\rmal": control characters are not part of a value`},
		{"escape in a label", replace(41, "normal\x1b[0m"), `line 1, field label: "normal\x1b[0m": control characters are not part of a value`},
		{"not UTF-8", replace(3, "S\xff"), `line 1, field flag: "S\xff" is not UTF-8 text`},
		{"bad difficulty", replace(42, "x"), `line 1, field difficulty: "x" is not an integer`},
		{"digit separator", nslLine + "\n" + replace(4, "1_0"), `x.txt line 2, field src_bytes: "1_0" is not a number`},
		{"hexadecimal float", replace(5, "0x1p3"), `x.txt line 1, field dst_bytes: "0x1p3" is not a number`},
		{"empty line", nslLine + "\n\n" + nslLine, "x.txt line 2: empty line"},
		{"empty file", "", "x.txt: no records (empty file)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.input), "x.txt", FormatNSL)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	k := strings.Replace(kddLine, "smurf.", "smurf. ", 1)
	if _, err := Parse(strings.NewReader(k), "k.txt", FormatKDD99); err == nil || !strings.Contains(err.Error(), `k.txt line 1, field label: "smurf. " has spaces around it`) {
		t.Errorf("KDD Cup 99 label with a trailing space: error %v", err)
	}
	// What the files hold otherwise is a value: digits, _ and - in
	// symbols and labels, letters beyond ASCII.
	ok := replace(41, "Z39_50-é")
	if r, err := Parse(strings.NewReader(ok), "x.txt", FormatNSL); err != nil || r.LabelNames[0] != "Z39_50-é" {
		t.Errorf("label Z39_50-é: %v", err)
	}
	var pe *ParseError
	_, err := Parse(strings.NewReader(replace(4, "x")), "x.txt", FormatNSL)
	if !errors.As(err, &pe) || pe.Line != 1 || pe.Field != "src_bytes" {
		t.Errorf("want a *ParseError for line 1, field src_bytes; got %#v", err)
	}
}

func TestParseTruncatedGzip(t *testing.T) {
	full := gz(t, strings.Repeat(kddLine+"\n", 2000))
	for _, cut := range []int{len(full) / 2, len(full) - 4} {
		_, err := Parse(bytes.NewReader(full[:cut]), "cut.gz", FormatKDD99)
		if err == nil || !strings.Contains(err.Error(), "cut.gz") || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d: error %v, want a truncated-stream error naming the file", cut, err)
		}
	}
	if _, err := Parse(bytes.NewReader([]byte{0x1f, 0x8b, 1}), "tiny.gz", FormatKDD99); err == nil {
		t.Error("a 3-byte gzip file parsed without error")
	}
}

// A damaged deflate stream decodes to garbage before the gzip checksum
// catches it: the error blames the stream, not the garbled record.
func TestParseCorruptGzip(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	f, _ := d.File("KDDTest+")
	b, err := fs.ReadFile(ShippedFS(), ShippedPath(d, f))
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Clone(b)
	b[50000] ^= 0xff
	dir := t.TempDir()
	path := filepath.Join(dir, "KDDTest+.txt.gz")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	want := path + ": corrupt gzip stream, read as far as line 2984: gzip: invalid checksum"
	_, err = Parse(bytes.NewReader(b), path, FormatNSL)
	if err == nil || err.Error() != want || !errors.Is(err, gzip.ErrChecksum) {
		t.Errorf("Parse: %v, want %q", err, want)
	}
	for _, skip := range []bool{false, true} {
		if _, err := Load(d, "KDDTest+", LoadOptions{DataDir: dir, SkipChecksum: skip}); err == nil || err.Error() != want {
			t.Errorf("Load (SkipChecksum %v): %v, want %q", skip, err, want)
		}
	}
	if _, _, err := Verify(d, "KDDTest+", LoadOptions{DataDir: dir}); err == nil || err.Error() != want {
		t.Errorf("Verify: %v, want %q", err, want)
	}
	// A malformed record in a sound stream is still that record's error.
	bad := gz(t, kddLine+"\n0,tcp\n"+kddLine+"\n")
	if _, err := Parse(bytes.NewReader(bad), "bad.gz", FormatKDD99); err == nil || !strings.Contains(err.Error(), "bad.gz line 2: 2 fields, want 42") {
		t.Errorf("bad record: %v", err)
	}
}

// Members of a gzip file follow one another, as gzip -d reads them; data
// after the last that is not gzip is named as such, not as a cut stream.
func TestParseGzipMembers(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	f, _ := d.File("KDDTest-21")
	raw, err := io.ReadAll(openShipped(t, ShippedPath(d, f)))
	if err != nil {
		t.Fatal(err)
	}
	half := bytes.IndexByte(raw[len(raw)/2:], '\n') + len(raw)/2 + 1
	two := append(gz(t, string(raw[:half])), gz(t, string(raw[half:]))...)
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"two members":       {two, ""},
		"an empty member":   {append(gz(t, ""), two...), ""},
		"garbage after it":  {append(bytes.Clone(two), "garbage"...), "the gzip stream ends after line 11850 and is followed by data that is not gzip"},
		"one byte after it": {append(bytes.Clone(two), 0), "the gzip stream ends after line 11850 and is followed by data that is not gzip"},
		"zeros after it":    {append(bytes.Clone(two), make([]byte, 512)...), "the gzip stream ends after line 11850 and is followed by data that is not gzip"},
		"a broken member":   {append(bytes.Clone(two), 0x1f, 0x8b, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9), "corrupt gzip stream after line 11850: gzip: invalid header"},
		"a cut member":      {append(bytes.Clone(two), 0x1f, 0x8b), "truncated gzip stream after line 11850"},
		"no final line end": {append(gz(t, string(raw[:len(raw)-1])), "x"...), "the gzip stream ends after line 11850 and is followed by data that is not gzip"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "KDDTest-21.txt.gz"), c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Load(d, "KDDTest-21", LoadOptions{DataDir: dir})
		if c.want == "" {
			if err != nil || r.N != 11850 {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Load: %v, want %q", name, err, c.want)
		}
		if _, err := Parse(bytes.NewReader(c.data), "x.gz", FormatNSL); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Parse: %v, want %q", name, err, c.want)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	if _, err := Lookup("cicids"); err == nil || !strings.Contains(err.Error(), "unknown data set \"cicids\"") {
		t.Errorf("Lookup(cicids) error %v", err)
	}
	d, _ := Lookup("NSL-KDD")
	if _, err := d.File("KDDTest"); err == nil || !strings.Contains(err.Error(), "KDDTest+") {
		t.Errorf("File(KDDTest) error %v, want it to list the known files", err)
	}
	k, _ := Lookup("kddcup99")
	if _, err := Load(k, "kddcup.data", LoadOptions{}); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("unshipped file without --data-dir: %v", err)
	}
}

// openShipped opens a shipped record file, decompressing it; the file is
// closed when the test ends.
func openShipped(t testing.TB, path string) io.Reader {
	t.Helper()
	f, err := ShippedFS().Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

// userCopy writes the shipped file's raw content, edited by edit, into a
// temporary data directory, gzipped or not.
func userCopy(t *testing.T, d *Dataset, f *FileInfo, zip bool, edit func([]byte) []byte) string {
	t.Helper()
	raw, err := io.ReadAll(openShipped(t, ShippedPath(d, f)))
	if err != nil {
		t.Fatal(err)
	}
	raw = edit(raw)
	dir := t.TempDir()
	name := f.DiskName
	if zip {
		raw, name = gz(t, string(raw)), name+".gz"
	}
	if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadFromDataDir(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	f, _ := d.File("KDDTest-21")
	same := func(b []byte) []byte { return b }
	for _, zip := range []bool{false, true} {
		dir := userCopy(t, d, f, zip, same)
		r, err := Load(d, "KDDTest-21", LoadOptions{DataDir: dir})
		if err != nil || r.N != 11850 {
			t.Fatalf("gzip=%v: %v records, error %v", zip, r, err)
		}
		_, st, err := Verify(d, "KDDTest-21", LoadOptions{DataDir: dir})
		if err != nil || st.Raw != "ok" || st.Count != "ok" || st.Err != nil {
			t.Errorf("gzip=%v: verify %+v, %v", zip, st, err)
		}
	}
	// One changed byte: the raw checksum catches it.
	edited := userCopy(t, d, f, true, func(b []byte) []byte { return bytes.Replace(b, []byte("tcp"), []byte("udp"), 1) })
	if _, err := Load(d, "KDDTest-21", LoadOptions{DataDir: edited}); err == nil || !strings.Contains(err.Error(), "differs from the published") {
		t.Errorf("edited file: error %v", err)
	}
	if _, err := Load(d, "KDDTest-21", LoadOptions{DataDir: edited, SkipChecksum: true}); err != nil {
		t.Errorf("edited file with SkipChecksum: %v", err)
	}
	// A dropped record: the count check names both counts.
	short := userCopy(t, d, f, false, func(b []byte) []byte { return b[bytes.IndexByte(b, '\n')+1:] })
	if _, err := Load(d, "KDDTest-21", LoadOptions{DataDir: short}); err == nil || !strings.Contains(err.Error(), "11849 records, the published KDDTest-21.txt has 11850") {
		t.Errorf("short file: error %v", err)
	}
	// CRLF line ends are accepted (the checksum then differs, so skip it).
	crlf := userCopy(t, d, f, false, func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) })
	if r, err := Load(d, "KDDTest-21", LoadOptions{DataDir: crlf, SkipChecksum: true}); err != nil || r.N != 11850 {
		t.Errorf("CRLF file: %v", err)
	}
}

func TestShippedChecksums(t *testing.T) {
	for _, d := range All() {
		for _, f := range d.Files {
			if !f.Shipped || (testing.Short() && f.Records > 100000) {
				continue
			}
			_, st, err := Verify(d, f.Name, LoadOptions{})
			if err != nil || st.Gz != "ok" || st.Raw != "ok" || st.Count != "ok" {
				t.Errorf("%s/%s: %+v %v", d.Name, f.Name, st, err)
			}
		}
	}
}

func TestEncoder(t *testing.T) {
	train := loadShipped(t, "nsl-kdd", "KDDTrain+")
	e, err := FitEncoder(train, EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// 38 numeric + protocol 3+1 + service 70+1 + flag 11+1.
	if e.Dim() != 125 || len(e.ColumnNames()) != 125 {
		t.Fatalf("dim %d, %d names; want 125", e.Dim(), len(e.ColumnNames()))
	}
	m := e.Transform(train)
	for j := 0; j < NumNumeric; j++ {
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for i := 0; i < m.Rows; i++ {
			v := m.X[i*m.Dim+j]
			if math.IsNaN(float64(v)) {
				t.Fatalf("NaN in column %d", j)
			}
			lo, hi = min(lo, v), max(hi, v)
		}
		constant := FeatureNames[NumericFields[j]] == "num_outbound_cmds"
		if constant && (lo != 0 || hi != 0) {
			t.Errorf("constant column encodes to [%v, %v], want 0", lo, hi)
		}
		if !constant && (lo != 0 || math.Abs(float64(hi)-1) > 1e-6) {
			t.Errorf("column %s spans [%v, %v] on the training data, want [0, 1]", FeatureNames[NumericFields[j]], lo, hi)
		}
	}
	for i := 0; i < m.Rows; i++ {
		for k, b := range e.OneHotBlocks() {
			var sum float32
			for _, v := range m.Row(i)[b[0]:b[1]] {
				sum += v
			}
			if sum != 1 {
				t.Fatalf("row %d block %d sums to %v", i, k, sum)
			}
		}
	}
	// Round trip through JSON gives the same encoding.
	blob, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Encoder
	if err := back.UnmarshalJSON(blob); err != nil {
		t.Fatal(err)
	}
	m2 := back.Transform(train)
	for i := range m.X {
		if m.X[i] != m2.X[i] {
			t.Fatalf("reloaded encoder differs at %d", i)
		}
	}
	if err := back.UnmarshalJSON([]byte(`{"version":99}`)); err == nil {
		t.Error("a future encoder version loaded without error")
	}
	// Damaged checkpoints: each edit of the saved form must be refused.
	var saved map[string]any
	if err := json.Unmarshal(blob, &saved); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"no parameters", func(m map[string]any) { delete(m, "offset"); delete(m, "scale") }, "0 offsets and 0 scales, want 38"},
		{"short scale", func(m map[string]any) { m["scale"] = []float64{1, 2, 3} }, "3 scales, want 38"},
		{"negative scale", func(m map[string]any) { m["scale"].([]any)[1] = -1.0 }, "src_bytes has a negative scale"},
		{"no values", func(m map[string]any) { delete(m, "values") }, "0 lists of categorical values, want 3"},
		{"empty values", func(m map[string]any) { m["values"].([]any)[0] = []string{} }, "protocol_type has no values"},
		{"unsorted values", func(m map[string]any) { m["values"].([]any)[0] = []string{"udp", "tcp"} }, `protocol_type are not sorted and distinct ("udp" before "tcp")`},
		{"duplicate values", func(m map[string]any) { m["values"].([]any)[0] = []string{"tcp", "tcp"} }, "not sorted and distinct"},
	} {
		m := map[string]any{}
		b, _ := json.Marshal(saved)
		json.Unmarshal(b, &m) // a deep copy
		c.edit(m)
		b, _ = json.Marshal(m)
		var got Encoder
		if err := got.UnmarshalJSON(b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestEncoderUnknownBucket(t *testing.T) {
	// corrected has the service "icmp", which kddcup.data_10_percent lacks.
	kdd, _ := Lookup("kddcup99")
	line := strings.Replace(kddLine, "private", "icmp", 1)
	train, err := Parse(strings.NewReader(kddLine+"\n"+strings.Replace(kddLine, "private", "http", 1)), "train", FormatKDD99)
	if err != nil {
		t.Fatal(err)
	}
	test, err := Parse(strings.NewReader(line+"\n"+kddLine), "test", FormatKDD99)
	if err != nil {
		t.Fatal(err)
	}
	_ = kdd
	for _, s := range []Scaling{MinMax, ZScore} {
		e, err := FitEncoder(train, EncoderOptions{Scaling: s})
		if err != nil {
			t.Fatal(err)
		}
		m := e.Transform(test)
		names := e.ColumnNames()
		svc := e.OneHotBlocks()[1]
		var hot []string
		for j := svc[0]; j < svc[1]; j++ {
			if m.Row(0)[j] == 1 {
				hot = append(hot, names[j])
			}
		}
		if len(hot) != 1 || hot[0] != "service=<unknown>" {
			t.Errorf("%s: icmp encodes to %v, want service=<unknown>", s, hot)
		}
		if m.Row(1)[svc[0]+1] != 1 || names[svc[0]+1] != "service=private" {
			t.Errorf("%s: private not in its own column", s)
		}
		for _, v := range m.X {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: non-finite value from constant training columns", s)
			}
		}
	}
	if _, err := FitEncoder(train, EncoderOptions{Scaling: "robust"}); err == nil || !strings.Contains(err.Error(), "robust") {
		t.Errorf("bad scaling: %v", err)
	}
}
