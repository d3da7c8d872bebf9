package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run runs one command line and returns its exit status and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), &env{stdout: &out, stderr: &errOut}, args)
	return code, out.String(), errOut.String()
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
		{[]string{"data", "stats"}, 2, "takes one data set"},
		{[]string{"data", "stats", "cicids2017"}, 1, `unknown data set "cicids2017"`},
		{[]string{"data", "stats", "nsl-kdd", "--file", "KDDTrain"}, 1, `no file "KDDTrain"`},
		{[]string{"data", "list", "--format", "xml"}, 2, `unknown format "xml"`},
		{[]string{"data", "list", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"data", "stats", "kddcup99", "--file", "kddcup.data"}, 1, "--data-dir"},
		{[]string{"split", "nsl-kdd", "--episodes", "-1"}, 2, "--episodes must be at least 0 (got -1)"},
		{[]string{"split", "nsl-kdd", "--ways", "0"}, 2, "--ways must be at least 1 (got 0)"},
		{[]string{"split", "nsl-kdd", "--shots", "-1"}, 2, "--shots must be at least 1 (got -1)"},
		{[]string{"split", "nsl-kdd", "--queries", "-2"}, 2, "--queries must be at least 0 (got -2)"},
		{[]string{"split", "nsl-kdd", "--meta-batch", "0"}, 2, "--meta-batch must be at least 1 (got 0)"},
		{[]string{"split", "nsl-kdd", "--val-fraction", "1"}, 2, "--val-fraction must be in [0, 1) (got 1)"},
		{[]string{"split", "nsl-kdd", "--val-fraction", "NaN"}, 2, "--val-fraction must be in [0, 1) (got NaN)"},
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
	// Two CSV tables: labels, then categories.
	parts := strings.SplitN(out, "\ncategory,records,percent\n", 2)
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
	if !strings.Contains(parts[1], "r2l,2887,") {
		t.Errorf("category table lacks r2l 2887:\n%s", parts[1])
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
	code, out, stderr := run(t, "split", "nsl-kdd", "--episodes", "40", "--format", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"meta-test,KDDTest+,mscan,probe,996", "meta-train,11,", "meta-test,9,13383,40,"} {
		if !strings.Contains(out, want) {
			t.Errorf("split output lacks %q:\n%s", want, out)
		}
	}
}
