package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/eval"
	"github.com/metaids/metaids/experiments"
)

func init() {
	register(command{name: "data", summary: "list, describe and verify the data sets (list | stats | verify)", run: runData})
}

const dataSynopsis = `data list [--data-dir D] [--format F]
       metaids data stats DATASET [--file F] [--data-dir D [--no-checksum]] [--categories CSV] [--format F]
       metaids data verify [DATASET] [--data-dir D] [--format F]`

func runData(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageErrorf("metaids %s", dataSynopsis)
	}
	switch args[0] {
	case "list":
		return inSubcommand("list", dataList(e, args[1:]))
	case "stats":
		return inSubcommand("stats", dataStats(e, args[1:]))
	case "verify":
		return inSubcommand("verify", dataVerify(ctx, e, args[1:]))
	case "-h", "--help", "help":
		fmt.Fprintf(e.stdout, "usage: metaids %s\n", dataSynopsis)
		return nil
	}
	return usageErrorf("unknown subcommand %q; metaids %s", args[0], dataSynopsis)
}

// dataSource holds the flags that say where record files come from and how
// labels map to categories.
type dataSource struct {
	dir, categories string
	noChecksum      bool
}

func addDataSource(fs *flag.FlagSet) *dataSource {
	d := &dataSource{}
	fs.StringVar(&d.dir, "data-dir", "", "directory searched first for record files (plain or .gz)")
	fs.StringVar(&d.categories, "categories", "", "CSV of attack,category pairs laid over the shipped mapping")
	fs.BoolVar(&d.noChecksum, "no-checksum", false, "read --data-dir files even if they differ from the published ones")
	return d
}

func (d *dataSource) options() datasets.LoadOptions {
	return datasets.LoadOptions{DataDir: d.dir, SkipChecksum: d.noChecksum}
}

// loadCategories reads --categories over the shipped mapping; a file that
// is not there is a wrong command line.
func (d *dataSource) loadCategories() (datasets.Categories, *datasets.CategoryFile, error) {
	cats, file, err := datasets.LoadCategories(d.categories)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, nil, usageErrorf("--categories: %v", err)
	}
	return cats, file, err
}

// warnCategories writes the warnings about the --categories file to stderr.
func warnCategories(e *env, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintln(e.stderr, "warning: --categories: "+w)
	}
}

// emptyFlagHints say, for each flag that an empty value would leave as if
// not given, what leaving it out does.
var emptyFlagHints = map[string]string{
	"data-dir":   "leave it out to read the shipped files, or name a folder",
	"categories": "leave it out for the shipped mapping, or name a CSV of attack,category rows",
	"file":       "leave it out for the training file, or name a file of the data set",
}

// checkNotEmpty is a usage error for a flag of emptyFlagHints given an empty
// value (an unset shell variable, say): it is not taken for the flag left
// out.
func checkNotEmpty(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if hint, ok := emptyFlagHints[f.Name]; ok && err == nil && f.Value.String() == "" {
			err = usageErrorf("--%s is empty: %s", f.Name, hint)
		}
	})
	return err
}

// checkDataDir is a usage error for a --data-dir that is not there or not a
// folder: searched first, it would otherwise be passed over in silence for
// the shipped copies.
func checkDataDir(dir string) error {
	if err := datasets.CheckDataDir(dir); err != nil {
		return usageErrorf("--data-dir %s: %v", dir, err)
	}
	return nil
}

// lookupDataset is datasets.Lookup with an unknown name a usage error.
func lookupDataset(name string) (*datasets.Dataset, error) {
	d, err := datasets.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return d, nil
}

// checksumHint adds the command line's remedy to the error of a --data-dir
// file that is not the published one.
func checksumHint(err error) error {
	var ce *datasets.ChecksumError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w (pass --no-checksum to use it anyway)", err)
	}
	return err
}

// categoriesHint adds the command line's remedy to the error of a label
// that no categories mapping names.
func categoriesHint(err error) error { return experiments.CategoriesRemedy(err, "--categories") }

// formatFlag adds the --format flag every table-printing command takes.
func formatFlag(fs interface {
	StringVar(*string, string, string, string)
}, p *string) {
	fs.StringVar(p, "format", "table", "output format: table, json, csv, markdown or latex")
}

func render(e *env, t *eval.Table, format string) error {
	f, err := eval.ParseFormat(format)
	if err != nil {
		return usageErrorf("--format: %v", err)
	}
	return t.Render(e.stdout, f)
}

// renderTables writes several tables as one document: for json, an array of
// the table objects; for csv, each table's header and rows with a blank line
// before every table after the first; for the other formats, the tables one
// after another, a blank line apart.
func renderTables(e *env, format string, tables ...*eval.Table) error {
	f, err := eval.ParseFormat(format)
	if err != nil {
		return usageErrorf("--format: %v", err)
	}
	if f != eval.JSON {
		for i, t := range tables {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			if err := t.Render(e.stdout, f); err != nil {
				return err
			}
		}
		return nil
	}
	var doc bytes.Buffer
	doc.WriteByte('[')
	for i, t := range tables {
		if i > 0 {
			doc.WriteByte(',')
		}
		if err := t.Render(&doc, f); err != nil {
			return err
		}
	}
	doc.WriteByte(']')
	var out bytes.Buffer
	if err := json.Indent(&out, doc.Bytes(), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = e.stdout.Write(out.Bytes())
	return err
}

func dataList(e *env, args []string) error {
	fs := newFlags(e, "data list", "data list [--data-dir D] [--format F]")
	dir := fs.String("data-dir", "", "directory searched first for record files (plain or .gz)")
	var format string
	formatFlag(fs, &format)
	if pos, err := parseFlags(e, fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("data list takes no arguments")
	}
	if err := checkNotEmpty(fs); err != nil {
		return err
	}
	if _, err := eval.ParseFormat(format); err != nil {
		return usageErrorf("--format: %v", err)
	}
	if err := checkDataDir(*dir); err != nil {
		return err
	}
	t := &eval.Table{Title: "Data sets", Labels: 2, Header: []string{"dataset", "file", "records", "role", "source", "checksum"}}
	for _, d := range datasets.All() {
		for i := range d.Files {
			f := &d.Files[i]
			source, status := fileStatus(d, f, *dir)
			t.Rows = append(t.Rows, []string{d.Name, f.Name, strconv.Itoa(f.Records), f.Role, source, status})
		}
	}
	t.Notes = []string{"checksum: sha256 of the file as stored against the published one; 'metaids data verify' also checks the content and record count."}
	return render(e, t, format)
}

// fileStatus says where a file would be read from and whether its bytes
// match the published checksum of that form (.gz or raw).
func fileStatus(d *datasets.Dataset, f *datasets.FileInfo, dir string) (source, status string) {
	path, err := datasets.Locate(d, f, datasets.LoadOptions{DataDir: dir})
	if errors.Is(err, datasets.ErrMissing) {
		return "missing", "-"
	}
	if err != nil {
		return "-", "unreadable: " + err.Error()
	}
	var fh io.ReadSeeker
	if path == "" {
		b, err := iofs.ReadFile(datasets.ShippedFS(), datasets.ShippedPath(d, f))
		if err != nil {
			return "shipped", "unreadable: " + err.Error()
		}
		source, fh = "shipped", bytes.NewReader(b)
	} else {
		file, err := os.Open(path)
		if err != nil {
			return path, "unreadable: " + err.Error()
		}
		defer file.Close()
		source, fh = path, file
	}
	var magic [2]byte
	n, _ := io.ReadFull(fh, magic[:])
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return source, "unreadable: " + err.Error()
	}
	want := f.RawSHA256
	if n == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		want = f.GzSHA256
	}
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return source, "unreadable: " + err.Error()
	}
	switch {
	case want == "":
		return source, "no published checksum"
	case hex.EncodeToString(h.Sum(nil)) == want:
		return source, "ok"
	default:
		return source, "differs (run data verify)"
	}
}

func dataVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "data verify", "data verify [DATASET] [--data-dir D] [--format F]")
	dir := fs.String("data-dir", "", "directory searched first for record files (plain or .gz)")
	var format string
	formatFlag(fs, &format)
	pos, err := parseFlags(e, fs, args)
	if err != nil {
		return err
	}
	if err := checkNotEmpty(fs); err != nil {
		return err
	}
	if _, err := eval.ParseFormat(format); err != nil {
		return usageErrorf("--format: %v", err)
	}
	sets := datasets.All()
	if len(pos) > 1 {
		return usageErrorf("data verify takes at most one data set")
	}
	if len(pos) == 1 {
		d, err := lookupDataset(pos[0])
		if err != nil {
			return err
		}
		sets = []*datasets.Dataset{d}
	}
	if err := checkDataDir(*dir); err != nil {
		return err
	}
	t := &eval.Table{Title: "Verification", Labels: 3, Header: []string{"dataset", "file", "path", "records", "gz sha256", "content sha256", "result"}}
	failed, skipped, differ := 0, 0, false
	for _, d := range sets {
		for i := range d.Files {
			f := &d.Files[i]
			path, err := datasets.Locate(d, f, datasets.LoadOptions{DataDir: *dir})
			if errors.Is(err, datasets.ErrMissing) {
				t.Rows = append(t.Rows, []string{d.Name, f.Name, "-", "-", "-", "-", "not present"})
				continue
			}
			// Ctrl-C is seen between files (reading one is not stopped),
			// so that a large file still to come is not read first.
			if ctx.Err() != nil {
				if path == "" {
					path = "shipped:" + datasets.ShippedPath(d, f)
				}
				t.Rows = append(t.Rows, []string{d.Name, f.Name, path, "-", "-", "-", "not verified (interrupted)"})
				skipped++
				continue
			}
			path, st, err := datasets.Verify(d, f.Name, datasets.LoadOptions{DataDir: *dir})
			result := "ok"
			switch {
			case err != nil:
				result, failed = "error: "+err.Error(), failed+1
			case st.Err != nil:
				result, failed, differ = "FAILED: "+st.Err.Error(), failed+1, true
			case st.Raw == "unknown" && st.Gz == "unknown":
				result = "records ok; no published checksum to compare"
			}
			t.Rows = append(t.Rows, []string{d.Name, f.Name, path, st.Count, st.Gz, st.Raw, result})
		}
	}
	if differ {
		t.Notes = []string{"a file that FAILED is read anyway by data stats and split with --no-checksum, and by a spec with dataset.no_checksum: true."}
	}
	if err := render(e, t, format); err != nil {
		return err
	}
	if skipped > 0 && failed > 0 {
		return fmt.Errorf("interrupted: %d file(s) not verified, %d failed verification", skipped, failed)
	}
	if skipped > 0 {
		return fmt.Errorf("interrupted: %d file(s) not verified", skipped)
	}
	if failed > 0 {
		return fmt.Errorf("%d file(s) failed verification", failed)
	}
	return nil
}

func dataStats(e *env, args []string) error {
	fs := newFlags(e, "data stats", "data stats DATASET [--file F] [--data-dir D [--no-checksum]] [--categories CSV] [--format F]")
	file := fs.String("file", "", "file of the data set (default: its training file)")
	src := addDataSource(fs)
	var format string
	formatFlag(fs, &format)
	pos, err := parseFlags(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("data stats takes one data set (%s)", strings.Join(datasets.Names(), ", "))
	}
	if err := checkNotEmpty(fs); err != nil {
		return err
	}
	if _, err := eval.ParseFormat(format); err != nil {
		return usageErrorf("--format: %v", err)
	}
	d, err := lookupDataset(pos[0])
	if err != nil {
		return err
	}
	if *file == "" {
		*file = d.Train
	}
	if _, err := d.File(*file); err != nil {
		return usageErrorf("--file: %v", err)
	}
	if err := checkDataDir(src.dir); err != nil {
		return err
	}
	cats, catFile, err := src.loadCategories()
	if err != nil {
		return err
	}
	r, err := datasets.Load(d, *file, src.options())
	if err != nil {
		return checksumHint(err)
	}
	if err := cats.Check(r); err != nil {
		return categoriesHint(err)
	}
	warnCategories(e, catFile.Unmatched([]string{*file}, r))
	counts := r.LabelCounts()
	distinct := r.Distinct()
	distinctCounts := distinct.LabelCounts()
	labels := make([]string, 0, len(counts))
	for l := range counts {
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool {
		if counts[labels[i]] != counts[labels[j]] {
			return counts[labels[i]] > counts[labels[j]]
		}
		return labels[i] < labels[j]
	})
	pct := func(n int) string { return strconv.FormatFloat(100*float64(n)/float64(r.N), 'f', 2, 64) }
	byLabel := &eval.Table{
		Title:  fmt.Sprintf("%s / %s: %d records (%d distinct), %d labels", d.Name, *file, r.N, distinct.N, len(labels)),
		Labels: 2,
		Header: []string{"label", "category", "records", "percent", "distinct"},
	}
	byCat, distinctByCat := map[string]int{}, map[string]int{}
	for _, l := range labels {
		byLabel.Rows = append(byLabel.Rows, []string{l, cats.Of(l), strconv.Itoa(counts[l]), pct(counts[l]), strconv.Itoa(distinctCounts[l])})
		byCat[cats.Of(l)] += counts[l]
		distinctByCat[cats.Of(l)] += distinctCounts[l]
	}
	catNames := make([]string, 0, len(byCat))
	for c := range byCat {
		catNames = append(catNames, c)
	}
	sort.Strings(catNames)
	byCategory := &eval.Table{Title: "By category", Labels: 1, Header: []string{"category", "records", "percent", "distinct"}}
	for _, c := range catNames {
		byCategory.Rows = append(byCategory.Rows, []string{c, strconv.Itoa(byCat[c]), pct(byCat[c]), strconv.Itoa(distinctByCat[c])})
	}
	return renderTables(e, format, byLabel, byCategory)
}
