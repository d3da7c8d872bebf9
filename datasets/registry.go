package datasets

import (
	"fmt"
	"sort"
	"strings"
)

// FileInfo describes one known record file and its published figures.
type FileInfo struct {
	Name      string // short name used on the command line and in specs
	DiskName  string // file name without .gz, as distributed
	Records   int    // published record count
	GzSHA256  string // sha256 of the distributed .gz file, when known
	RawSHA256 string // sha256 of the uncompressed content, when known
	Shipped   bool   // embedded in the binary
	Role      string // what the file is for
	SubsetOf  string // the file whose records this one is a subset of, if any
}

// Dataset is one of the known data sets.
type Dataset struct {
	Name   string
	Format Format
	Files  []FileInfo
	// Train and Test are the default meta-train and meta-test files.
	Train, Test string
	Citation    string
}

// SharesRecords reports whether files a and b (short names) hold the same
// records: they are one file, or one is a subset of the other.
func (d *Dataset) SharesRecords(a, b string) bool {
	fa, errA := d.File(a)
	fb, errB := d.File(b)
	if errA != nil || errB != nil {
		return false
	}
	return fa == fb || fa.SubsetOf == fb.Name || fb.SubsetOf == fa.Name
}

// File returns the named file of the data set.
func (d *Dataset) File(name string) (*FileInfo, error) {
	for i := range d.Files {
		f := &d.Files[i]
		if f.Name == name || f.DiskName == name || f.DiskName+".gz" == name {
			return f, nil
		}
	}
	names := make([]string, len(d.Files))
	for i, f := range d.Files {
		names[i] = f.Name
	}
	return nil, fmt.Errorf("data set %s has no file %q (known: %s)", d.Name, name, strings.Join(names, ", "))
}

var known = []*Dataset{
	{
		Name:   "nsl-kdd",
		Format: FormatNSL,
		Train:  "KDDTrain+",
		Test:   "KDDTest+",
		Citation: "M. Tavallaee, E. Bagheri, W. Lu, A. A. Ghorbani, \"A Detailed Analysis of the KDD CUP 99 Data Set\", " +
			"IEEE CISDA 2009. Data set by the Canadian Institute for Cybersecurity, University of New Brunswick.",
		Files: []FileInfo{
			{Name: "KDDTrain+", DiskName: "KDDTrain+.txt", Records: 125973, Shipped: true, Role: "training set",
				GzSHA256:  "39e78eaceffb1a183af002b4994b100b69795895bfbf67cfc62dabd4c9b76d4e",
				RawSHA256: "1b86d2f957b33082081bba410fe129b475efebcc13c9014c3f447c8271aadf95"},
			{Name: "KDDTrain+_20Percent", DiskName: "KDDTrain+_20Percent.txt", Records: 25192, Shipped: true, Role: "20% subset of the training set", SubsetOf: "KDDTrain+",
				GzSHA256:  "fc113da7acc7e3006f0c3bf00c9ba5c052be44b00af3b1951beff90694bf66ff",
				RawSHA256: "7ea86479faab5ca2190b7f18b4982fb058ce5bf2b46e0e1017d0d9ef90f9c16e"},
			{Name: "KDDTest+", DiskName: "KDDTest+.txt", Records: 22544, Shipped: true, Role: "test set",
				GzSHA256:  "1ebe1079af669e3c35ef7be25b5bafde1e47951244d1b4834682b14a22238da1",
				RawSHA256: "fa46b0935342616aa83b7c2578db355b6a7aaabbc492248172c7a1e8b7ab8f84"},
			{Name: "KDDTest-21", DiskName: "KDDTest-21.txt", Records: 11850, Shipped: true, Role: "test records of difficulty below 21", SubsetOf: "KDDTest+",
				GzSHA256:  "cf79d2eab7d8cc749e7c088260c0297cbb26d95062d27d1f8c761f4eeac3327a",
				RawSHA256: "746993ac9e25868827cacf09eab450050a2a1056e1ce48a1ad39f5dc801d531d"},
		},
	},
	{
		Name:   "kddcup99",
		Format: FormatKDD99,
		Train:  "kddcup.data_10_percent",
		Test:   "corrected",
		Citation: "\"KDD Cup 1999 Data\", The UCI KDD Archive, University of California, Irvine, 1999 " +
			"(S. Stolfo, W. Fan, W. Lee, A. Prodromidis, P. Chan; DOI 10.24432/C51C7N; CC BY 4.0).",
		Files: []FileInfo{
			{Name: "kddcup.data_10_percent", DiskName: "kddcup.data_10_percent", Records: 494021, Shipped: true, Role: "10% training set", SubsetOf: "kddcup.data",
				GzSHA256:  "8045aca0d84e70e622d1148d7df782496f6333bf6eb979a1b0837c42a9fd9561",
				RawSHA256: "f8c8267ebcd9c0ed1fd7d6277fe5bfff8732e9b7db8e61b873542b2a534b6f9a"},
			{Name: "corrected", DiskName: "corrected", Records: 311029, Shipped: true, Role: "labelled test set",
				GzSHA256:  "74f0daef49b242badc09f2adbd457dea6a45b4f77177efbd11216d333651044b",
				RawSHA256: "547dfb9c0f0dc1d9944219ec79e851191faebaeb8acbfa1cd171c418397052a4"},
			{Name: "kddcup.data", DiskName: "kddcup.data", Records: 4898431, Shipped: false, Role: "full training set (from --data-dir)",
				GzSHA256: "3b6c942aa0356c0ca35b7b595a26c89d343652c9db428893e7494f837b274292"},
		},
	},
}

// Lookup returns the named data set ("nsl-kdd" or "kddcup99"; a few common
// spellings are accepted).
func Lookup(name string) (*Dataset, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	switch n {
	case "nslkdd", "nsl_kdd":
		n = "nsl-kdd"
	case "kdd99", "kddcup", "kdd-cup-99", "kddcup-99":
		n = "kddcup99"
	}
	for _, d := range known {
		if d.Name == n {
			return d, nil
		}
	}
	return nil, fmt.Errorf("unknown data set %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Names lists the known data sets.
func Names() []string {
	var names []string
	for _, d := range known {
		names = append(names, d.Name)
	}
	sort.Strings(names)
	return names
}

// All returns the known data sets in a fixed order.
func All() []*Dataset { return known }
