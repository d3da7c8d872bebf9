package datasets

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A data directory that is not there, or not a folder, is an error, not a
// silent fall-back on the shipped copy.
func TestLocateChecksDataDir(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	f, _ := d.File("KDDTest-21")
	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "nonexistent")
	for dir, want := range map[string]string{
		missing: "data dir " + missing + ": stat " + missing + ": no such file or directory",
		file:    "data dir " + file + ": not a folder",
	} {
		if p, err := Locate(d, f, LoadOptions{DataDir: dir}); err == nil || err.Error() != want {
			t.Errorf("Locate with DataDir %s: %q, %v; want %q", dir, p, err, want)
		}
		if _, err := Load(d, "KDDTest-21", LoadOptions{DataDir: dir}); err == nil || err.Error() != want {
			t.Errorf("Load with DataDir %s: %v; want %q", dir, err, want)
		}
		if err := CheckDataDir(dir); err == nil {
			t.Errorf("CheckDataDir(%s) passed", dir)
		}
	}
	if err := CheckDataDir(""); err != nil {
		t.Errorf("CheckDataDir(\"\"): %v", err)
	}
}

// A folder where the file should be is reported, not skipped for the
// shipped copy; a file in neither place matches ErrMissing.
func TestLocateFolderInPlaceOfFile(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	f, _ := d.File("KDDTest-21")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "nsl-kdd", "KDDTest-21.txt.gz"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := "nsl-kdd/KDDTest-21: " + filepath.Join(dir, "nsl-kdd", "KDDTest-21.txt.gz") + " is a folder, not a record file"
	if p, err := Locate(d, f, LoadOptions{DataDir: dir}); err == nil || err.Error() != want {
		t.Errorf("Locate: %q, %v; want %q", p, err, want)
	}
	if _, err := Load(d, "KDDTest-21", LoadOptions{DataDir: dir}); err == nil || err.Error() != want {
		t.Errorf("Load: %v; want %q", err, want)
	}
	if _, _, err := Verify(d, "KDDTest-21", LoadOptions{DataDir: dir}); err == nil || err.Error() != want {
		t.Errorf("Verify: %v; want %q", err, want)
	}
	// Only the file in place counts: KDDTest+ there is still the shipped one.
	plus, _ := d.File("KDDTest+")
	if p, err := Locate(d, plus, LoadOptions{DataDir: dir}); err != nil || p != "" {
		t.Errorf("Locate KDDTest+: %q, %v; want the shipped copy", p, err)
	}

	k, _ := Lookup("kddcup99")
	full, _ := k.File("kddcup.data")
	for _, opt := range []LoadOptions{{}, {DataDir: dir}} {
		if _, err := Locate(k, full, opt); !errors.Is(err, ErrMissing) {
			t.Errorf("Locate kddcup.data with %+v: %v, want ErrMissing", opt, err)
		}
	}
	if _, err := Locate(d, f, LoadOptions{DataDir: filepath.Join(dir, "none")}); errors.Is(err, ErrMissing) {
		t.Errorf("a missing data dir matches ErrMissing: %v", err)
	}
}

// A file that is not the published one is a *ChecksumError that names the
// file and says what differs, and no remedy: the caller knows how its user
// turns the check off.
func TestChecksumErrorNamesNoRemedy(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	f, _ := d.File("KDDTest-21")
	short := userCopy(t, d, f, false, func(b []byte) []byte { return b[:bytes.LastIndexByte(b[:len(b)/2], '\n')+1] })
	_, err := Load(d, "KDDTest-21", LoadOptions{DataDir: short})
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Path != filepath.Join(short, "KDDTest-21.txt") {
		t.Fatalf("error %#v, want a *ChecksumError for the file", err)
	}
	if !strings.HasPrefix(err.Error(), ce.Path+": ") || !strings.Contains(err.Error(), "the published KDDTest-21.txt has 11850") {
		t.Errorf("error %q", err)
	}
	if strings.Contains(err.Error(), "checksum to use it") {
		t.Errorf("error %q names a remedy", err)
	}
}

// fakeFull is a data set whose one file, like kddcup.data, has only the
// sha256 of its .gz published: that of gzipped.
func fakeFull(t *testing.T, gzipped []byte, records int) *Dataset {
	t.Helper()
	sum := sha256.Sum256(gzipped)
	return &Dataset{Name: "fake", Format: FormatKDD99, Files: []FileInfo{
		{Name: "full", DiskName: "full.data", Records: records, GzSHA256: hex.EncodeToString(sum[:])}}}
}

// Without a published content sha256, only the published .gz itself
// verifies: a recompressed or plain copy with the right record count is
// not taken for it.
func TestGzipOnlyChecksumVerifiesOnlyThatGzip(t *testing.T) {
	text := strings.Repeat(kddLine+"\n", 3)
	published := gz(t, text)
	d := fakeFull(t, published, 3)
	write := func(name string, b []byte) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	good := write("full.data.gz", published)
	if r, err := Load(d, "full", LoadOptions{DataDir: good}); err != nil || r.N != 3 {
		t.Fatalf("the published file: %v", err)
	}
	if _, st, err := Verify(d, "full", LoadOptions{DataDir: good}); err != nil || st.Err != nil || st.Gz != "ok" || st.Count != "ok" {
		t.Errorf("verify the published file: %+v, %v", st, err)
	}

	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
	w.Write([]byte(text))
	w.Close()
	for name, c := range map[string]struct {
		file, want string
		data       []byte
	}{
		"recompressed": {"full.data.gz", "differs from the published full.data.gz's", b.Bytes()},
		"plain":        {"full.data", "only the sha256 of the published full.data.gz is known, and this file is not gzip", []byte(text)},
	} {
		dir := write(c.file, c.data)
		_, err := Load(d, "full", LoadOptions{DataDir: dir})
		var ce *ChecksumError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), ": cannot be verified: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want a *ChecksumError saying it cannot be verified", name, err)
		}
		if _, st, err := Verify(d, "full", LoadOptions{DataDir: dir}); err != nil || st.Err == nil || st.Err.Error() != ce.Err.Error() {
			t.Errorf("%s: verify %+v, %v; want the error of Load", name, st, err)
		}
		if r, err := Load(d, "full", LoadOptions{DataDir: dir, SkipChecksum: true}); err != nil || r.N != 3 {
			t.Errorf("%s with SkipChecksum: %v", name, err)
		}
	}
}

// Verify counts records, not lines: lines that are no records are an
// error naming the file and line.
func TestVerifyChecksRecords(t *testing.T) {
	lines := gz(t, strings.Repeat("x\n", 3))
	d := fakeFull(t, lines, 3)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "full.data.gz"), lines, 0o644); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "full.data.gz") + " line 1: 1 fields, want 42"
	if _, st, err := Verify(d, "full", LoadOptions{DataDir: dir}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("verify: %+v, %v; want %q", st, err, want)
	}
}
