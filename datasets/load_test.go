package datasets

import (
	"compress/gzip"
	"io"
	"strconv"
	"strings"
	"testing"
)

// Published per-label and per-category counts (shared data README, checked
// against the NSL-KDD paper and UCI's figures).
var published = map[string]struct {
	dataset, labels, categories string
	records                     int
}{
	"KDDTrain+": {"nsl-kdd", `normal 67343; neptune 41214; satan 3633; ipsweep 3599; portsweep 2931; smurf 2646;
		nmap 1493; back 956; teardrop 892; warezclient 890; pod 201; guess_passwd 53; buffer_overflow 30;
		warezmaster 20; land 18; imap 11; rootkit 10; loadmodule 9; ftp_write 8; multihop 7; phf 4; perl 3; spy 2`,
		"normal 67343; dos 45927; probe 11656; r2l 995; u2r 52", 125973},
	"KDDTrain+_20Percent": {"nsl-kdd", `normal 13449; neptune 8282; ipsweep 710; satan 691; portsweep 587;
		smurf 529; nmap 301; back 196; teardrop 188; warezclient 181; pod 38; guess_passwd 10; warezmaster 7;
		buffer_overflow 6; imap 5; rootkit 4; multihop 2; phf 2; ftp_write 1; land 1; loadmodule 1; spy 1`,
		"normal 13449; dos 9234; probe 2289; r2l 209; u2r 11", 25192},
	"KDDTest+": {"nsl-kdd", `normal 9711; neptune 4657; guess_passwd 1231; mscan 996; warezmaster 944; apache2 737;
		satan 735; processtable 685; smurf 665; back 359; snmpguess 331; saint 319; mailbomb 293; snmpgetattack 178;
		portsweep 157; ipsweep 141; httptunnel 133; nmap 73; pod 41; buffer_overflow 20; multihop 18; named 17; ps 15;
		sendmail 14; rootkit 13; xterm 13; teardrop 12; xlock 9; land 7; xsnoop 4; ftp_write 3; loadmodule 2; perl 2;
		phf 2; sqlattack 2; udpstorm 2; worm 2; imap 1`,
		"normal 9711; dos 7458; probe 2421; r2l 2887; u2r 67", 22544},
	"KDDTest-21": {"nsl-kdd", `normal 2152; neptune 1579; guess_passwd 1231; mscan 996; warezmaster 944; apache2 737;
		satan 727; processtable 685; smurf 627; back 359; snmpguess 331; saint 309; mailbomb 293; snmpgetattack 178;
		portsweep 156; ipsweep 141; httptunnel 133; nmap 73; pod 41; buffer_overflow 20; multihop 18; named 17; ps 15;
		sendmail 14; rootkit 13; xterm 13; teardrop 12; xlock 9; land 7; xsnoop 4; ftp_write 3; loadmodule 2; perl 2;
		phf 2; sqlattack 2; udpstorm 2; worm 2; imap 1`,
		"normal 2152; dos 4342; probe 2402; r2l 2887; u2r 67", 11850},
	"kddcup.data_10_percent": {"kddcup99", `smurf 280790; neptune 107201; normal 97278; back 2203; satan 1589;
		ipsweep 1247; portsweep 1040; warezclient 1020; teardrop 979; pod 264; nmap 231; guess_passwd 53;
		buffer_overflow 30; land 21; warezmaster 20; imap 12; rootkit 10; loadmodule 9; ftp_write 8;
		multihop 7; phf 4; perl 3; spy 2`,
		"normal 97278; dos 391458; probe 4107; r2l 1126; u2r 52", 494021},
	"corrected": {"kddcup99", `smurf 164091; normal 60593; neptune 58001; snmpgetattack 7741; mailbomb 5000;
		guess_passwd 4367; snmpguess 2406; satan 1633; warezmaster 1602; back 1098; mscan 1053;
		apache2 794; processtable 759; saint 736; portsweep 354; ipsweep 306; httptunnel 158; pod 87; nmap 84;
		buffer_overflow 22; multihop 18; named 17; sendmail 17; ps 16; rootkit 13; xterm 13; teardrop 12;
		land 9; xlock 9; xsnoop 4; ftp_write 3; loadmodule 2; perl 2; phf 2; sqlattack 2; udpstorm 2; worm 2;
		imap 1`,
		"normal 60593; dos 229853; probe 4166; r2l 16347; u2r 70", 311029},
}

func parseCounts(t *testing.T, s string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, item := range strings.Split(s, ";") {
		f := strings.Fields(item)
		n, err := strconv.Atoi(f[1])
		if err != nil || len(f) != 2 {
			t.Fatalf("bad expectation %q", item)
		}
		m[f[0]] = n
	}
	return m
}

func loadShipped(t testing.TB, dataset, file string) *Records {
	t.Helper()
	d, err := Lookup(dataset)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Load(d, file, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestShippedFilesMatchPublishedCounts(t *testing.T) {
	cats := DefaultCategories()
	for file, want := range published {
		t.Run(file, func(t *testing.T) {
			if testing.Short() && want.records > 100000 {
				t.Skip("large file in -short mode")
			}
			r := loadShipped(t, want.dataset, file)
			if r.N != want.records {
				t.Fatalf("%d records, want %d", r.N, want.records)
			}
			got := r.LabelCounts()
			wantLabels := parseCounts(t, want.labels)
			if len(got) != len(wantLabels) {
				t.Errorf("%d labels, want %d", len(got), len(wantLabels))
			}
			for l, n := range wantLabels {
				if got[l] != n {
					t.Errorf("label %s: %d records, want %d", l, got[l], n)
				}
			}
			byCat := map[string]int{}
			for l, n := range got {
				byCat[cats.Of(l)] += n
			}
			for c, n := range parseCounts(t, want.categories) {
				if byCat[c] != n {
					t.Errorf("category %s: %d records, want %d", c, byCat[c], n)
				}
			}
			if byCat[Unknown] != 0 {
				t.Errorf("%d records of unmapped labels", byCat[Unknown])
			}
			if (r.Format == FormatNSL) != (r.Difficulty != nil) {
				t.Errorf("difficulty column present=%v for format %s", r.Difficulty != nil, r.Format)
			}
		})
	}
}

func TestKDDTest21IsLowDifficultyKDDTestPlus(t *testing.T) {
	plus := loadShipped(t, "nsl-kdd", "KDDTest+")
	n := 0
	for _, d := range plus.Difficulty {
		if d < 21 {
			n++
		}
	}
	if n != 11850 {
		t.Errorf("KDDTest+ has %d records of difficulty < 21, want 11850 (KDDTest-21's size)", n)
	}
}

// SharesRecords (which keeps a test file's records out of training) knows
// every shipped NSL-KDD file whose records are all in another: the lines of
// KDDTrain+_20Percent are in KDDTrain+, and those of KDDTest-21 in KDDTest+.
func TestSharesRecordsKnowsEverySubset(t *testing.T) {
	d, err := Lookup("nsl-kdd")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]map[string]bool{}
	for _, f := range d.Files {
		gz, err := shipped.Open(ShippedPath(d, &f))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(gz)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		gz.Close()
		if err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			set[l] = true
		}
		lines[f.Name] = set
	}
	within := func(a, b string) bool {
		for l := range lines[a] {
			if !lines[b][l] {
				return false
			}
		}
		return true
	}
	for a := range lines {
		for b := range lines {
			if want := within(a, b) || within(b, a); d.SharesRecords(a, b) != want {
				t.Errorf("SharesRecords(%s, %s) = %v, but one holding the other's records is %v", a, b, !want, want)
			}
		}
	}
}

func TestNovelLabels(t *testing.T) {
	train := loadShipped(t, "nsl-kdd", "KDDTrain+")
	test := loadShipped(t, "nsl-kdd", "KDDTest+")
	want := "apache2 httptunnel mailbomb mscan named processtable ps saint sendmail snmpgetattack snmpguess sqlattack udpstorm worm xlock xsnoop xterm"
	if got := strings.Join(NovelLabels(train, test), " "); got != want {
		t.Errorf("novel labels:\n got %s\nwant %s", got, want)
	}
}

func TestEveryLabelHasACategory(t *testing.T) {
	cats := DefaultCategories()
	if len(cats) != 40 {
		t.Errorf("%d mappings, want 39 attacks + normal", len(cats))
	}
	if cats.Of("worm") != "r2l" || cats.Of("normal") != "normal" || cats.Of("smurf") != "dos" || cats.Of("nope") != Unknown {
		t.Error("unexpected default mapping")
	}
}
