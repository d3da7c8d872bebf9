package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Flags may follow positional arguments, and "--" ends the flags: what
// follows is positional even if it starts with "-", unless the "--" is a
// flag's value.
func TestParseFlagsTerminator(t *testing.T) {
	cases := []struct {
		args      []string
		pos       []string
		out       string
		verbose   bool
		wantError bool
	}{
		{[]string{"a", "--out", "o", "b"}, []string{"a", "b"}, "o", false, false},
		{[]string{"--", "-a.yaml"}, []string{"-a.yaml"}, "", false, false},
		{[]string{"a", "--", "--out", "o", "-v"}, []string{"a", "--out", "o", "-v"}, "", false, false},
		{[]string{"-v", "a", "--", "-"}, []string{"a", "-"}, "", true, false},
		{[]string{"--out", "--", "a", "-v"}, []string{"a"}, "--", true, false}, // "--" is --out's value
		{[]string{"--out=x", "--", "-v"}, []string{"-v"}, "x", false, false},
		{[]string{"-v=true", "--", "--", "b"}, []string{"--", "b"}, "", true, false},
		{[]string{"-a.yaml"}, nil, "", false, true},
	}
	for _, c := range cases {
		e := &env{stdout: io.Discard, stderr: io.Discard}
		fs := newFlags(e, "t", "t")
		out := fs.String("out", "", "")
		verbose := fs.Bool("v", false, "")
		pos, err := parseFlags(e, fs, c.args)
		if (err != nil) != c.wantError {
			t.Errorf("%q: error %v", c.args, err)
			continue
		}
		if err == nil && (!slices.Equal(pos, c.pos) || *out != c.out || *verbose != c.verbose) {
			t.Errorf("%q: positional %q, --out %q, -v %v; want %q, %q, %v", c.args, pos, *out, *verbose, c.pos, c.out, c.verbose)
		}
	}
}

// A spec file whose name starts with "-" is read after "--", and a flag
// after "--" is a file name, not a flag.
func TestCommandTerminator(t *testing.T) {
	dir := t.TempDir()
	spec, err := os.ReadFile("../../experiments/nsl-kdd/protonet-5way5shot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "-spec.yaml"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if code, stdout, stderr := run(t, "validate", "--format", "csv", "--", "-spec.yaml"); code != 0 || !strings.Contains(stdout, "-spec.yaml,nsl-protonet-5way5shot") {
		t.Errorf("validate -- -spec.yaml: exit %d, %s%s", code, stdout, stderr)
	}
	if code, _, stderr := run(t, "validate", "-spec.yaml"); code != 2 || !strings.Contains(stderr, "flag provided but not defined: -spec.yaml") {
		t.Errorf("validate -spec.yaml: exit %d, %s", code, stderr)
	}
	if code, stdout, stderr := run(t, "validate", "./-spec.yaml", "--", "--format", "csv"); code != 1 || !strings.Contains(stderr, "open --format: no such file") || strings.Contains(stdout, ",ok") {
		t.Errorf("validate ./-spec.yaml -- --format csv: exit %d, %s%s", code, stdout, stderr)
	}
}
