package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
)

// run runs one command line and returns its exit status and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), &env{stdout: &out, stderr: &errOut}, args)
	return code, out.String(), errOut.String()
}

// runHas runs a command line that must succeed and checks that its output
// holds every one of wants.
func runHas(t *testing.T, args []string, wants ...string) {
	t.Helper()
	code, out, stderr := run(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, stderr)
	}
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("%v: output lacks %q:\n%s", args, want, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"data"}, 2, "data list"},
		{[]string{"data", "shuffle"}, 2, `unknown subcommand "shuffle"`},
		{[]string{"data", "stats"}, 2, "takes one data set (kddcup99, nsl-kdd)"},
		{[]string{"data", "stats", "cicids2017"}, 2, `metaids data stats: invalid arguments: unknown data set "cicids2017"`},
		{[]string{"data", "stats", "unsw"}, 2, `unknown data set "unsw"`},
		{[]string{"data", "verify", "unsw"}, 2, `metaids data verify: invalid arguments: unknown data set "unsw"`},
		{[]string{"split", "unsw"}, 2, `unknown data set "unsw"`},
		{[]string{"data", "stats", "nsl-kdd", "--file", "KDDTrain"}, 2, `--file: data set nsl-kdd has no file "KDDTrain"`},
		{[]string{"data", "list", "--format", "xml"}, 2, `metaids data list: invalid arguments: --format: eval: unknown format "xml"`},
		{[]string{"data", "list", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"data", "stats", "kddcup99", "--file", "kddcup.data"}, 1, "--data-dir"},
		// An empty value (an unset shell variable) is not the flag left out.
		{[]string{"data", "stats", "nsl-kdd", "--file", ""}, 2, "metaids data stats: invalid arguments: --file is empty: leave it out for the training file"},
		{[]string{"data", "stats", "nsl-kdd", "--categories="}, 2, "--categories is empty: leave it out for the shipped mapping"},
		{[]string{"data", "stats", "nsl-kdd", "--data-dir", ""}, 2, "--data-dir is empty: leave it out to read the shipped files"},
		{[]string{"data", "list", "--data-dir", ""}, 2, "metaids data list: invalid arguments: --data-dir is empty"},
		{[]string{"data", "verify", "--data-dir="}, 2, "metaids data verify: invalid arguments: --data-dir is empty"},
		{[]string{"split", "nsl-kdd", "--data-dir", ""}, 2, "metaids split: invalid arguments: --data-dir is empty"},
		{[]string{"split", "nsl-kdd", "--categories", ""}, 2, "metaids split: invalid arguments: --categories is empty"},
		{[]string{"split", "nsl-kdd", "--episodes", "-1"}, 2, "--episodes must be at least 0 (got -1)"},
		{[]string{"split", "nsl-kdd", "--ways", "0"}, 2, "--ways must be at least 2 (got 0)"},
		{[]string{"split", "nsl-kdd", "--shots", "-1"}, 2, "--shots must be at least 1 (got -1)"},
		{[]string{"split", "nsl-kdd", "--queries", "-2"}, 2, "--queries must be at least 1 (got -2)"},
		{[]string{"split", "nsl-kdd", "--meta-batch", "0"}, 2, "--meta-batch must be at least 1 (got 0)"},
		{[]string{"split", "nsl-kdd", "--val-fraction", "1"}, 2, "--val-fraction must be in [0, 1) (got 1)"},
		{[]string{"split", "nsl-kdd", "--val-fraction", "NaN"}, 2, "--val-fraction must be in [0, 1) (got NaN)"},
		// Sizes whose product overflows an int or passes the sampler's
		// limit (or the machine's memory) name the flags; they neither
		// panic nor run out of memory.
		{[]string{"split", "nsl-kdd", "--shots", "9223372036854775807", "--queries", "1"}, 2,
			"--ways 5 × (--shots 9223372036854775807 + --queries 1) rows of at least 44 features take"},
		{[]string{"split", "nsl-kdd", "--ways", "9223372036854775807"}, 2, "lower --ways, --shots or --queries"},
		{[]string{"split", "nsl-kdd", "--meta-batch", "1000000000"}, 2, "--meta-batch 1000000000: 1000000000 episodes of 5×20 rows of at least 44 features take"},
		{[]string{"split", "nsl-kdd", "--replacement", "--shots", "100000000"}, 2, "--ways 5 × (--shots 100000000 + --queries 15) rows"},
	}
	for _, c := range cases {
		code, _, stderr := run(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}

func TestDataStatsFormats(t *testing.T) {
	code, out, stderr := run(t, "data", "stats", "nsl-kdd", "--file", "KDDTest-21", "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// Two CSV tables, a blank line apart: labels, then categories.
	parts := strings.SplitN(out, "\n\ncategory,records,percent,distinct\n", 2)
	if len(parts) != 2 {
		t.Fatalf("no category table in:\n%s", out)
	}
	rows, err := csv.NewReader(strings.NewReader(parts[0])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 39 || rows[1][0] != "normal" || rows[1][2] != "2152" {
		t.Errorf("%d label rows (want header + 38), first %v", len(rows), rows[1])
	}
	if !strings.Contains(parts[1], "r2l,2887,24.36,2887\n") {
		t.Errorf("category table lacks r2l 2887:\n%s", parts[1])
	}

	// One JSON document: an array of the two tables.
	code, out, stderr = run(t, "data", "stats", "nsl-kdd", "--file", "KDDTest-21", "--format", "json")
	var tables []struct {
		Title   string           `json:"title"`
		Columns []string         `json:"columns"`
		Rows    []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &tables); code != 0 || err != nil {
		t.Fatalf("data stats json: exit %d, %v, stderr %q:\n%s", code, err, stderr, out)
	}
	if len(tables) != 2 || len(tables[0].Rows) != 38 || tables[1].Title != "By category" || len(tables[1].Rows) != 5 {
		t.Errorf("data stats json: %d tables %+v", len(tables), tables)
	}

	code, out, _ = run(t, "data", "list", "--format", "json")
	var doc struct {
		Rows []map[string]any `json:"rows"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Rows) != 7 {
		t.Fatalf("data list json: exit %d, %d rows:\n%s", code, len(doc.Rows), out)
	}
	for _, r := range doc.Rows {
		if r["source"] == "shipped" && r["checksum"] != "ok" {
			t.Errorf("shipped file %v checksum %v", r["file"], r["checksum"])
		}
	}
}

func TestDataVerifyBadFiles(t *testing.T) {
	dir := t.TempDir()
	// An empty KDDTest+ and a truncated gzip KDDTest-21 in the user directory.
	if err := os.WriteFile(filepath.Join(dir, "KDDTest+.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "KDDTest-21.txt.gz"), []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2}, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "data", "verify", "nsl-kdd", "--data-dir", dir, "--format", "csv")
	if code != 1 || !strings.Contains(stderr, "2 file(s) failed verification") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(out, "0 records, the published KDDTest+.txt has 22544") || !strings.Contains(out, "KDDTest-21.txt.gz") {
		t.Errorf("verify output does not explain the failures:\n%s", out)
	}
	code, _, stderr = run(t, "data", "stats", "nsl-kdd", "--file", "KDDTest+", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "KDDTest+.txt: no records (empty file)") {
		t.Errorf("stats on an empty file: exit %d, %q", code, stderr)
	}
	code, _, stderr = run(t, "data", "stats", "nsl-kdd", "--file", "KDDTest-21", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "KDDTest-21.txt.gz") {
		t.Errorf("stats on a truncated file: exit %d, %q", code, stderr)
	}
}

func TestSplitCommand(t *testing.T) {
	runHas(t, []string{"split", "nsl-kdd", "--episodes", "40", "--format", "csv"},
		"meta-test,KDDTest+,mscan,probe,996", "meta-train,11,", "meta-test,9,13383,40,")
}

// A --data-dir that is not there, or not a folder, is a wrong command line,
// not a silent fall-back on the shipped copies.
func TestDataDirChecked(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent")
	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{
		missing: "--data-dir " + missing + ": stat " + missing + ": no such file or directory",
		file:    "--data-dir " + file + ": not a folder",
	} {
		for _, args := range [][]string{
			{"data", "list"},
			{"data", "stats", "nsl-kdd", "--file", "KDDTest-21"},
			{"data", "verify", "nsl-kdd"},
			{"split", "nsl-kdd", "--episodes", "0"},
		} {
			code, out, stderr := run(t, append(args, "--data-dir", dir)...)
			if code != 2 || !strings.Contains(stderr, want) || out != "" {
				t.Errorf("%v --data-dir %s: exit %d, stderr %q, stdout %d bytes; want exit 2 and %q", args, dir, code, stderr, len(out), want)
			}
		}
	}
}

// A folder where a data file should be is reported, not passed over for
// the shipped copy.
func TestDataDirFolderInPlaceOfFile(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "KDDTest-21.txt")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	want := folder + " is a folder, not a record file"
	code, _, stderr := run(t, "data", "stats", "nsl-kdd", "--file", "KDDTest-21", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("data stats: exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
	}
	code, out, stderr := run(t, "data", "verify", "nsl-kdd", "--data-dir", dir, "--format", "csv")
	if code != 1 || !strings.Contains(out, want) || !strings.Contains(stderr, "1 file(s) failed verification") {
		t.Errorf("data verify: exit %d, stderr %q, output:\n%s", code, stderr, out)
	}
	code, out, stderr = run(t, "data", "list", "--data-dir", dir, "--format", "csv")
	if code != 0 || !strings.Contains(out, "nsl-kdd,KDDTest-21,11850,test records of difficulty below 21,-,\"unreadable: ") ||
		!strings.Contains(out, "nsl-kdd,KDDTest+,22544,test set,shipped,ok") {
		t.Errorf("data list: exit %d, stderr %q, output:\n%s", code, stderr, out)
	}
}

// The remedy for a --data-dir file that is not the published one is this
// command line's flag.
func TestChecksumMismatchNamesFlag(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "KDDTest-21.txt"), shippedHead(t, "nsl-kdd/KDDTest-21.txt.gz", 100), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "data", "stats", "nsl-kdd", "--file", "KDDTest-21", "--data-dir", dir)
	want := "KDDTest-21.txt: 100 records, the published KDDTest-21.txt has 11850 (pass --no-checksum to use it anyway)"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
	}
	code, out, stderr := run(t, "data", "stats", "nsl-kdd", "--file", "KDDTest-21", "--data-dir", dir, "--no-checksum", "--format", "csv")
	if code != 0 || !strings.Contains(out, "normal,normal,") {
		t.Errorf("--no-checksum: exit %d, stderr %q", code, stderr)
	}
	code, out, _ = run(t, "data", "verify", "nsl-kdd", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "FAILED: 100 records") || !strings.Contains(out, "with --no-checksum, and by a spec with dataset.no_checksum: true") {
		t.Errorf("data verify: exit %d, output:\n%s", code, out)
	}
}

// shippedRecords returns the records of a shipped file (path under data/,
// gzipped), decompressed.
func shippedRecords(t *testing.T, path string) []byte {
	t.Helper()
	b, err := fs.ReadFile(datasets.ShippedFS(), "data/"+path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// shippedHead returns the first n lines of a shipped record file.
func shippedHead(t *testing.T, path string, n int) []byte {
	t.Helper()
	raw := shippedRecords(t, path)
	end := 0
	for range n {
		end += bytes.IndexByte(raw[end:], '\n') + 1
	}
	return raw[:end]
}

func TestCategoriesFlagChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cats.csv")
	for body, want := range map[string]string{
		"neptune,weird\n":              path + ` line 1: neptune: unknown category "weird"`,
		"neptune,dos\nneptune,probe\n": path + " line 2: neptune is mapped to probe here and to dos on line 1",
		"normal,dos\n":                 path + " line 1: normal traffic is category normal, not dos",
	} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := run(t, "data", "stats", "nsl-kdd", "--file", "KDDTest-21", "--categories", path)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 1 and %q", body, code, stderr, want)
		}
	}
}

func TestSplitJSON(t *testing.T) {
	code, out, stderr := run(t, "split", "nsl-kdd", "--episodes", "5", "--meta-batch", "4", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var tables []struct {
		Title string           `json:"title"`
		Rows  []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &tables); err != nil || len(tables) != 2 {
		t.Fatalf("%d tables, %v:\n%s", len(tables), err, out)
	}
	// 5 episodes in meta-batches of 4: the last batch is trimmed to 1.
	for _, r := range tables[1].Rows {
		if r["status"] == "ok" && r["episodes drawn"] != 5.0 {
			t.Errorf("%v: %v episodes drawn, want 5", r["pool"], r["episodes drawn"])
		}
	}
	if tables[1].Rows[0]["pool"] != "meta-train" || tables[1].Rows[0]["status"] != "ok" {
		t.Errorf("summary rows %v", tables[1].Rows)
	}

	code, out, _ = run(t, "split", "nsl-kdd", "--episodes", "5", "--meta-batch", "4", "--format", "csv")
	if code != 0 || !strings.Contains(out, "\n\npool,classes,records,episodes drawn,episodes/s,status\nmeta-train,11,121292,5,") {
		t.Errorf("csv: exit %d:\n%s", code, out)
	}
}

// Fewer than two ways or no query is a wrong command line, as in a spec and
// in bench.
func TestSplitOneWay(t *testing.T) {
	if code, _, stderr := run(t, "split", "nsl-kdd", "--ways", "1"); code != 2 || !strings.Contains(stderr, "--ways must be at least 2 (got 1)") {
		t.Errorf("--ways 1: exit %d, stderr %q; want exit 2 naming --ways", code, stderr)
	}
	if code, _, stderr := run(t, "split", "nsl-kdd", "--queries", "0"); code != 2 || !strings.Contains(stderr, "--queries must be at least 1 (got 0)") {
		t.Errorf("--queries 0: exit %d, stderr %q; want exit 2 naming --queries", code, stderr)
	}
}

// Too few classes after the classes smaller than --shots + --queries are
// left out: the error names the flags that decide it.
func TestSplitShortageNamesFlags(t *testing.T) {
	code, _, stderr := run(t, "split", "nsl-kdd", "--shots", "100000")
	for _, want := range []string{"a meta-val fraction of 0.25 needs at least 2 meta-train classes to keep one; meta-train has 0",
		"classes with fewer than --shots + --queries = 100015 records are left out", "--replacement", "--val-fraction 0"} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
		}
	}
	if strings.Contains(stderr, "ValFraction") {
		t.Errorf("stderr %q names a Go field", stderr)
	}
}

// A training file of normal traffic alone has no meta-train classes: the
// error says so rather than suggest lower --shots or --queries.
func TestSplitTrainingFileWithoutAttacks(t *testing.T) {
	var normal bytes.Buffer
	for _, line := range bytes.SplitAfter(shippedRecords(t, "nsl-kdd/KDDTrain+_20Percent.txt.gz"), []byte("\n")) {
		if bytes.Contains(line, []byte(",normal,")) {
			normal.Write(line)
		}
	}
	dir := writeSpecs(t, map[string]string{"KDDTrain+.txt": normal.String()})
	code, _, stderr := run(t, "split", "nsl-kdd", "--episodes", "0", "--data-dir", dir, "--no-checksum")
	want := "metaids split: meta-train pool: " + filepath.Join(dir, "KDDTrain+.txt") + " holds no attack records, only normal traffic: there are no meta-train classes\n"
	if code != 1 || stderr != want {
		t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
	}
}

// Interrupted, split says so and exits non-zero; no partial count is "ok".
func TestSplitInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	code := runMain(ctx, &env{stdout: &out, stderr: &errOut}, []string{"split", "nsl-kdd", "--episodes", "100", "--format", "csv"})
	if code != 1 || !strings.Contains(errOut.String(), "interrupted") {
		t.Errorf("exit %d, stderr %q; want exit 1 and interrupted", code, errOut.String())
	}
	if strings.Contains(out.String(), ",ok\n") || !strings.Contains(out.String(), "not drawn (interrupted)") {
		t.Errorf("output:\n%s", out.String())
	}
}

// Interrupted, data verify reads no further file (one may be a large
// kddcup.data), says so and exits non-zero; no file it skipped is "ok".
func TestDataVerifyInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	code := runMain(ctx, &env{stdout: &out, stderr: &errOut}, []string{"data", "verify", "nsl-kdd", "--format", "csv"})
	if want := "metaids data verify: interrupted: 4 file(s) not verified\n"; code != 1 || errOut.String() != want {
		t.Errorf("exit %d, stderr %q; want exit 1 and %q", code, errOut.String(), want)
	}
	if strings.Contains(out.String(), ",ok\n") || !strings.Contains(out.String(), "shipped:data/nsl-kdd/KDDTest+.txt.gz,-,-,-,not verified (interrupted)\n") {
		t.Errorf("output:\n%s", out.String())
	}
}

// drawEpisodes stopped part way marks its count interrupted, not ok.
func TestDrawEpisodesInterrupted(t *testing.T) {
	pool := &datasets.Pool{Dim: 1, X: make([]float32, 40)}
	for i, name := range []string{"a", "b"} {
		rows := make([]int32, 20)
		for j := range rows {
			rows[j] = int32(20*i + j)
		}
		pool.Classes = append(pool.Classes, datasets.Class{Name: name, Rows: rows})
	}
	cfg := datasets.SamplerConfig{Ways: 2, Shots: 1, Queries: 1, MetaBatch: 3}
	if n, _, status := drawEpisodes(context.Background(), pool, cfg, 7); n != 7 || status != "ok" {
		t.Errorf("7 episodes in batches of 3: %d drawn, %s", n, status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, _, status := drawEpisodes(ctx, pool, cfg, 7); n != 0 || status != "interrupted" {
		t.Errorf("cancelled: %d drawn, %s", n, status)
	}
}

// A --categories file that is not there is a wrong command line.
func TestCategoriesFlagNamesAMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.csv")
	for _, args := range [][]string{{"data", "stats", "nsl-kdd", "--categories", missing}, {"split", "nsl-kdd", "--categories", missing}} {
		if code, _, stderr := runCmd(args...); code != 2 || !strings.Contains(stderr, "--categories: open "+missing) {
			t.Errorf("%v: exit %d, %q; want exit 2 naming --categories", args, code, stderr)
		}
	}
}

// Asked for (-h, or metaids help COMMAND), a command's usage goes to stdout
// with exit 0; after a wrong flag it goes to stderr with exit 2.
func TestHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"run", "-h"}, {"validate", "--help"}, {"split", "-h"}, {"bench", "-h"},
		{"report", "-h"}, {"compare", "-h"}, {"data", "stats", "-h"}, {"help", "run"}, {"help", "data", "stats"}} {
		code, out, stderr := run(t, args...)
		want := "usage: metaids " + args[0]
		if args[0] == "help" {
			want = "usage: metaids " + args[1]
		}
		if code != 0 || !strings.HasPrefix(out, want) || stderr != "" {
			t.Errorf("%v: exit %d, stdout %.60q, stderr %.60q; want exit 0 and the usage on stdout alone", args, code, out, stderr)
		}
	}
	code, out, stderr := run(t, "run", "--bogus")
	if code != 2 || out != "" || !strings.Contains(stderr, "-bogus") || !strings.Contains(stderr, "usage: metaids run") {
		t.Errorf("run --bogus: exit %d, stdout %q, stderr %.80q; want exit 2, the error and usage on stderr", code, out, stderr)
	}
	// A "-h" that is a flag's value asks for no help: the error about it
	// goes to stderr. "-help=1" does ask for it.
	code, out, stderr = run(t, "split", "--shots", "-h", "nsl-kdd")
	if code != 2 || out != "" || !strings.Contains(stderr, `invalid value "-h" for flag -shots`) {
		t.Errorf("split --shots -h: exit %d, stdout %.80q, stderr %.80q; want exit 2, the error and usage on stderr", code, out, stderr)
	}
	code, out, stderr = run(t, "run", "-help=1")
	if code != 0 || !strings.HasPrefix(out, "usage: metaids run") || stderr != "" {
		t.Errorf("run -help=1: exit %d, stdout %.60q, stderr %.60q; want exit 0 and the usage on stdout alone", code, out, stderr)
	}
}

// A command's synopsis (the first line of its -h) names every flag the
// command takes, but where it says [flags].
func TestSynopsisNamesEveryFlag(t *testing.T) {
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for _, args := range [][]string{{"run"}, {"validate"}, {"compare"}, {"report"}, {"split"},
		{"data", "list"}, {"data", "stats"}, {"data", "verify"}} {
		_, out, _ := run(t, append(args, "-h")...)
		synopsis, _, _ := strings.Cut(out, "\n")
		for _, m := range flagLine.FindAllStringSubmatch(out, -1) {
			if !strings.Contains(synopsis+" ", "--"+m[1]+" ") && !strings.Contains(synopsis, "--"+m[1]+"]") {
				t.Errorf("%v: the synopsis %q does not name --%s", args, synopsis, m[1])
			}
		}
	}
}

// A --categories name that labels nothing is a warning on stderr, naming
// file and line, from data stats, split and validate --deep; the command
// still succeeds.
func TestCategoriesTypoWarns(t *testing.T) {
	path := filepath.Join(writeSpecs(t, map[string]string{"cats.csv": "attack,category\nsmurf,dos\nsmurff,dos\n"}), "cats.csv")
	spec := filepath.Join(writeSpecs(t, map[string]string{"s.yaml": "dataset: {name: nsl-kdd, categories: " + path + "}\nepisodes: {ways: 3}\n"}), "s.yaml")
	for _, args := range [][]string{
		{"data", "stats", "nsl-kdd", "--file", "KDDTest-21", "--categories", path},
		{"split", "nsl-kdd", "--episodes", "2", "--categories", path},
		{"validate", "--deep", spec},
	} {
		code, _, stderr := run(t, args...)
		want := path + ` line 3: "smurff" is no shipped attack name and labels no record of `
		if code != 0 || strings.Count(stderr, "warning: ") != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 0 and one warning %q", args, code, stderr, want)
		}
	}
}

// data stats counts the distinct records of each label and category beside
// all of them: KDD Cup 99's corrected repeats most of its attacks.
func TestDataStatsCountsDistinctRecords(t *testing.T) {
	runHas(t, []string{"data", "stats", "kddcup99", "--file", "corrected", "--format", "csv"},
		"mailbomb,dos,5000,1.61,308\n", "snmpgetattack,r2l,7741,2.49,179\n", "\ndos,229853,73.90,23568\n")
}

// split --distinct builds the pools of the distinct records of the files it
// names and says how many repeats it left out.
func TestSplitDistinct(t *testing.T) {
	runHas(t, []string{"split", "kddcup99", "--distinct", "both", "--episodes", "0", "--format", "csv"},
		"meta-test,corrected,mailbomb,dos,308\n", "meta-train,kddcup.data_10_percent,smurf,dos,641\n")
	runHas(t, []string{"split", "kddcup99", "--distinct", "both", "--episodes", "0"},
		"repeated records left out: 348435 of kddcup.data_10_percent, 233738 of corrected)")
	runHas(t, []string{"split", "kddcup99", "--distinct", "test", "--episodes", "0", "--format", "csv"},
		"meta-test,corrected,mailbomb,dos,308\n", "meta-train,kddcup.data_10_percent,smurf,dos,280790\n")
	if code, _, stderr := run(t, "split", "kddcup99", "--distinct", "yes"); code != 2 || !strings.Contains(stderr, "--distinct must be none, train, test or both") {
		t.Errorf("--distinct yes: exit %d, %q", code, stderr)
	}
}

// A label the categories lack (a typo of normal in a --data-dir copy) is an
// error naming file, line and label and the flag or key that maps it, in
// data stats, split, validate --deep and run; mapped, it is a class.
func TestUnmappedLabelNamesTheFix(t *testing.T) {
	raw := shippedRecords(t, "nsl-kdd/KDDTest+.txt.gz")
	lines := bytes.SplitAfter(raw, []byte("\n"))
	first := 0
	for i, n := 0, 0; n < 30; i++ {
		if bytes.Contains(lines[i], []byte(",normal,")) {
			lines[i] = bytes.Replace(lines[i], []byte(",normal,"), []byte(",Normal,"), 1)
			if n++; first == 0 {
				first = i + 1
			}
		}
	}
	dir := writeSpecs(t, map[string]string{"KDDTest+.txt": string(bytes.Join(lines, nil)), "cats.csv": "Normal,normal\n"})
	path := filepath.Join(dir, "KDDTest+.txt")
	want := fmt.Sprintf(`%s line %d: label "Normal" has no category: the categories mapping lacks it (a typo in the file? else add a row "Normal,CATEGORY", CATEGORY one of normal, dos, probe, r2l, u2r, to a CSV given as `, path, first)
	for _, args := range [][]string{
		{"data", "stats", "nsl-kdd", "--file", "KDDTest+", "--data-dir", dir, "--no-checksum"},
		{"split", "nsl-kdd", "--episodes", "10", "--data-dir", dir, "--no-checksum"},
	} {
		code, out, stderr := run(t, args...)
		if code != 1 || !strings.Contains(stderr, want+"--categories)") || out != "" {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and %q", args, code, stderr, want)
		}
		runHas(t, append(args, "--categories", filepath.Join(dir, "cats.csv"), "--format", "csv"), "Normal,normal,30")
	}
	specs := writeSpecs(t, map[string]string{"s.yaml": "dataset: {name: nsl-kdd}\nepisodes: {ways: 3, train_steps: 1, val_every: 0, test_episodes: 1}\nseeds: [1]\n",
		// Binary labels too: Normal would be an attack.
		"sup.yaml": "dataset: {name: nsl-kdd}\nsplit: {protocol: supervised}\nsupervised: {labels: binary}\n"})
	spec := filepath.Join(specs, "s.yaml")
	set := []string{"--set", "dataset.data_dir=" + dir, "--set", "dataset.no_checksum=true"}
	for _, args := range [][]string{
		append([]string{"validate", "--deep", spec}, set...),
		append([]string{"validate", "--deep", filepath.Join(specs, "sup.yaml")}, set...),
		append([]string{"run", spec, "--out", filepath.Join(t.TempDir(), "out")}, set...),
	} {
		code, _, stderr := run(t, args...)
		if code != 1 || !strings.Contains(stderr, want+"dataset.categories)") {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 and %q", args, code, stderr, want)
		}
	}
}
