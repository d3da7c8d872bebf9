package datasets

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed data/nsl-kdd/*.gz data/kddcup99/*.gz data/attack_categories.csv
var shipped embed.FS

// LoadOptions say where record files come from.
type LoadOptions struct {
	// DataDir, when set, is searched first for the file (DiskName, then
	// DiskName.gz, also under a sub-directory named after the data set);
	// shipped files are used when it lacks them.
	DataDir string
	// SkipChecksum turns off the check of a user file against the
	// published checksum and record count.
	SkipChecksum bool
	// Distinct leaves out every record that repeats an earlier one of its
	// file (Records.Distinct), after the checks of the whole file.
	Distinct bool
}

// ErrMissing is matched (errors.Is) by the error of Locate for a file that
// is neither under DataDir nor shipped.
var ErrMissing = errors.New("file not found")

// missingError is an error that matches ErrMissing with a message of its own.
type missingError struct{ msg string }

func (e *missingError) Error() string        { return e.msg }
func (e *missingError) Is(target error) bool { return target == ErrMissing }

// CheckDataDir reports a DataDir that cannot be searched: one that does not
// exist or is not a folder ("" is fine: no DataDir). The error is worded to
// follow the folder's name, as in "--data-dir DIR: not a folder".
func CheckDataDir(dir string) error {
	if dir == "" {
		return nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return errors.New("not a folder")
	}
	return nil
}

// Locate says where a known file would be read from: a path under DataDir,
// or "" for the shipped copy. It fails when DataDir cannot be searched
// (CheckDataDir), when something other than a file, such as a folder, sits
// where the file would be, and (wrapping ErrMissing) when the file is
// neither there nor shipped.
func Locate(d *Dataset, f *FileInfo, opt LoadOptions) (string, error) {
	if opt.DataDir != "" {
		if err := CheckDataDir(opt.DataDir); err != nil {
			return "", fmt.Errorf("data dir %s: %w", opt.DataDir, err)
		}
		dirs := []string{opt.DataDir}
		if st, err := os.Stat(filepath.Join(opt.DataDir, d.Name)); err == nil && st.IsDir() {
			dirs = append(dirs, filepath.Join(opt.DataDir, d.Name))
		}
		for _, dir := range dirs {
			for _, name := range []string{f.DiskName, f.DiskName + ".gz"} {
				p := filepath.Join(dir, name)
				st, err := os.Stat(p)
				switch {
				case errors.Is(err, fs.ErrNotExist):
					continue
				case err != nil:
					return "", fmt.Errorf("%s/%s: %w", d.Name, f.Name, err)
				case st.IsDir():
					return "", fmt.Errorf("%s/%s: %s is a folder, not a record file", d.Name, f.Name, p)
				case !st.Mode().IsRegular():
					return "", fmt.Errorf("%s/%s: %s is not a regular file", d.Name, f.Name, p)
				}
				return p, nil
			}
		}
	}
	if f.Shipped {
		return "", nil
	}
	if opt.DataDir == "" {
		return "", &missingError{fmt.Sprintf("%s/%s is not shipped: put %s or %s.gz in a directory and pass it with --data-dir",
			d.Name, f.Name, f.DiskName, f.DiskName)}
	}
	return "", &missingError{fmt.Sprintf("%s/%s: neither %s nor %s.gz found in %s", d.Name, f.Name, f.DiskName, f.DiskName, opt.DataDir)}
}

// ShippedPath is the path of a shipped file in ShippedFS.
func ShippedPath(d *Dataset, f *FileInfo) string {
	return "data/" + d.Name + "/" + f.DiskName + ".gz"
}

// Load parses one known file of a data set, from DataDir or the shipped copy.
// A file from DataDir is checked against the published checksum (of its raw
// content where known, else of the .gz) and record count. With opt.Distinct
// the repeated records are then left out.
func Load(d *Dataset, file string, opt LoadOptions) (*Records, error) {
	r, err := load(d, file, opt)
	if err != nil || !opt.Distinct {
		return r, err
	}
	return r.Distinct(), nil
}

func load(d *Dataset, file string, opt LoadOptions) (*Records, error) {
	f, err := d.File(file)
	if err != nil {
		return nil, err
	}
	path, err := Locate(d, f, opt)
	if err != nil {
		return nil, err
	}
	if path == "" {
		rc, err := shipped.Open(ShippedPath(d, f))
		if err != nil {
			return nil, fmt.Errorf("shipped %s: %w", f.DiskName, err)
		}
		defer rc.Close()
		return parseHint(rc, f.DiskName+".gz", d.Format, f.Records)
	}
	return loadUserFile(d, f, path, opt)
}

func loadUserFile(d *Dataset, f *FileInfo, path string, opt LoadOptions) (*Records, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if opt.SkipChecksum {
		return parseHint(fh, path, d.Format, f.Records)
	}
	gzHash, rawHash := sha256.New(), sha256.New()
	tee := io.TeeReader(fh, gzHash)
	raw, isGzip, err := decompressed(tee, path)
	if err != nil {
		return nil, err
	}
	recs, err := parseText(io.TeeReader(raw, rawHash), isGzip, path, d.Format, f.Records, false)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil { // hash any gzip trailer bytes
		return nil, err
	}
	st := checkSums(f, isGzip, hex.EncodeToString(gzHash.Sum(nil)), hex.EncodeToString(rawHash.Sum(nil)), recs.N)
	if st.Err != nil {
		return nil, &ChecksumError{Path: path, Err: st.Err}
	}
	return recs, nil
}

// ChecksumError is the error of Load for a file from DataDir that is not the
// published one: its record count or content checksum differs. It names no
// remedy, since only the caller knows how its user sets
// LoadOptions.SkipChecksum (a flag, a spec key); match it with errors.As and
// add that.
type ChecksumError struct {
	Path string // the file read
	Err  error  // what differs
}

func (e *ChecksumError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *ChecksumError) Unwrap() error { return e.Err }

// decompressed returns a reader of the raw content of r, gunzipping when r
// starts with the gzip magic.
func decompressed(r io.Reader, name string) (io.Reader, bool, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("%s: %w", name, err)
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, false, fmt.Errorf("%s: gzip header: %w", name, err)
		}
		zr.Multistream(false)
		return &gzipMembers{br: br, zr: zr}, true, nil
	}
	return br, false, nil
}

// errNotGzip is the error of a gzip file with data after its last member
// that is not another member.
var errNotGzip = errors.New("data after the end of the gzip stream is not gzip")

// gzipMembers reads the members of a gzip file one after another, as
// gzip -d does. gzip.Reader does too, but reports data after the last
// member that is not gzip as a truncated or bad header, as if the stream
// were cut or damaged.
type gzipMembers struct {
	br  *bufio.Reader
	zr  *gzip.Reader
	err error
}

func (g *gzipMembers) Read(p []byte) (int, error) {
	for g.err == nil {
		n, err := g.zr.Read(p)
		if err != io.EOF {
			return n, err
		}
		magic, err := g.br.Peek(2)
		switch {
		case len(magic) == 0 && errors.Is(err, io.EOF):
			g.err = io.EOF
		case len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b:
			if err := g.zr.Reset(g.br); err != nil {
				g.err = err
				break
			}
			g.zr.Multistream(false)
			if n == 0 {
				continue
			}
			return n, nil
		case err != nil && !errors.Is(err, io.EOF):
			g.err = err
		default:
			g.err = errNotGzip
		}
		return n, g.err
	}
	return 0, g.err
}

// CheckStatus is the outcome of checking a file against published figures.
type CheckStatus struct {
	GzSHA256, RawSHA256 string // computed ("" when not computed)
	Gz, Raw, Count      string // "ok", "mismatch" or "unknown"
	Err                 error  // non-nil when the file is not the published one
}

// checkSums compares computed checksums and the record count with the
// published ones. The raw-content checksum decides when it is known, since a
// file may be recompressed. Without it only the published .gz itself can be
// verified: a file whose .gz checksum differs, or a plain copy, holds
// records nothing published can vouch for.
func checkSums(f *FileInfo, isGzip bool, gzSum, rawSum string, records int) CheckStatus {
	st := CheckStatus{RawSHA256: rawSum, Gz: "unknown", Raw: "unknown", Count: "unknown"}
	if isGzip {
		st.GzSHA256 = gzSum
		if f.GzSHA256 != "" {
			st.Gz = okIf(gzSum == f.GzSHA256)
		}
	}
	if f.RawSHA256 != "" {
		st.Raw = okIf(rawSum == f.RawSHA256)
	}
	if f.Records > 0 {
		st.Count = okIf(records == f.Records)
	}
	switch {
	case st.Count == "mismatch":
		st.Err = fmt.Errorf("%d records, the published %s has %d", records, f.DiskName, f.Records)
	case st.Raw == "mismatch":
		st.Err = fmt.Errorf("content sha256 %s differs from the published %s", rawSum, f.RawSHA256)
	case st.Raw == "unknown" && st.Gz == "mismatch":
		st.Err = fmt.Errorf("cannot be verified: its sha256 %s differs from the published %s.gz's %s, and no sha256 of the content is published to compare instead",
			gzSum, f.DiskName, f.GzSHA256)
	case st.Raw == "unknown" && f.GzSHA256 != "" && !isGzip:
		st.Err = fmt.Errorf("cannot be verified: only the sha256 of the published %s.gz is known, and this file is not gzip", f.DiskName)
	}
	return st
}

func okIf(b bool) string {
	if b {
		return "ok"
	}
	return "mismatch"
}

// Verify reads a known file (from DataDir or the shipped copy), checks and
// counts its records (a malformed one is an error) and compares its
// checksums with the published ones. It returns the path read
// ("shipped:..." for the embedded copy).
func Verify(d *Dataset, file string, opt LoadOptions) (string, CheckStatus, error) {
	f, err := d.File(file)
	if err != nil {
		return "", CheckStatus{}, err
	}
	path, err := Locate(d, f, opt)
	if err != nil {
		return "", CheckStatus{}, err
	}
	var src io.ReadCloser
	shown := path
	if path == "" {
		shown = "shipped:" + ShippedPath(d, f)
		src, err = shipped.Open(ShippedPath(d, f))
	} else {
		src, err = os.Open(path)
	}
	if err != nil {
		return shown, CheckStatus{}, err
	}
	defer src.Close()
	gzHash, rawHash := sha256.New(), sha256.New()
	tee := io.TeeReader(src, gzHash)
	raw, isGzip, err := decompressed(tee, shown)
	if err != nil {
		return shown, CheckStatus{}, err
	}
	n, err := countRecords(io.TeeReader(raw, rawHash), isGzip, shown, d.Format)
	if err != nil {
		return shown, CheckStatus{}, err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return shown, CheckStatus{}, err
	}
	st := checkSums(f, isGzip, hex.EncodeToString(gzHash.Sum(nil)), hex.EncodeToString(rawHash.Sum(nil)), n)
	return shown, st, nil
}

// ShippedFS exposes the embedded data (for tests and tools).
func ShippedFS() fs.FS { return shipped }
