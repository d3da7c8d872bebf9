package datasets

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The distinct records of the shipped KDD Cup 99 files against the counts
// of sort -u over their lines (145,586 for the 10% training file, as often
// quoted; 77,291 for corrected, whose 29,378 distinct attack records
// Tavallaee et al. 2009 also count, see data/README.md), and a few classes;
// NSL-KDD has no repeats at all.
func TestDistinctMatchesPublishedCounts(t *testing.T) {
	d, _ := Lookup("kddcup99")
	for _, c := range []struct {
		file    string
		records int
		classes map[string]int
	}{
		{"kddcup.data_10_percent", 145586, map[string]int{"smurf": 641, "neptune": 51820, "normal": 87832}},
		{"corrected", 77291, map[string]int{"mailbomb": 308, "snmpgetattack": 179, "neptune": 20332, "smurf": 936, "normal": 47913}},
	} {
		all, err := Load(d, c.file, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := Load(d, c.file, LoadOptions{Distinct: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.N != c.records || r.Repeats != all.N-c.records || len(r.Label) != r.N || len(r.Num) != r.N*NumNumeric {
			t.Errorf("%s: %d distinct records (%d repeats), want %d of %d", c.file, r.N, r.Repeats, c.records, all.N)
		}
		counts := r.LabelCounts()
		for name, want := range c.classes {
			if counts[name] != want {
				t.Errorf("%s: %s has %d distinct records, want %d", c.file, name, counts[name], want)
			}
		}
		if !slices.Equal(r.LabelNames, all.LabelNames) {
			t.Errorf("%s: labels %v, want those of the whole file %v", c.file, r.LabelNames, all.LabelNames)
		}
	}
	n, _ := Lookup("nsl-kdd")
	for _, file := range []string{"KDDTrain+", "KDDTest+"} {
		all, err := Load(n, file, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r := all.Distinct(); r != all || r.Repeats != 0 {
			t.Errorf("%s: %d repeats, want none", file, r.Repeats)
		}
	}
}

// Distinct against a plain reference (the first of each set of equal lines,
// in file order) on random files with many repeats, with the real hash and
// with hashes that collide for unequal rows, so the rows beyond the first of
// a hash are checked too.
func TestDistinctAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var lines []string
	for i := 0; i < 400; i++ {
		if i > 0 && rng.IntN(3) == 0 {
			lines = append(lines, lines[rng.IntN(len(lines))])
			continue
		}
		f := make([]string, 0, NumFeatures+2)
		f = append(f, fmt.Sprint(rng.IntN(3)), []string{"tcp", "udp"}[rng.IntN(2)], []string{"http", "smtp"}[rng.IntN(2)], "SF")
		for j := 4; j < NumFeatures; j++ {
			f = append(f, fmt.Sprint(rng.IntN(2)))
		}
		f = append(f, []string{"normal", "neptune", "smurf"}[rng.IntN(3)], fmt.Sprint(rng.IntN(22)))
		lines = append(lines, strings.Join(f, ","))
	}
	// A repeat with another difficulty is the same record.
	cut := strings.LastIndexByte(lines[5], ',')
	other := ",0"
	if lines[5][cut:] == other {
		other = ",1"
	}
	lines = append(lines, lines[5][:cut]+other)
	var want []string
	for _, l := range lines {
		core := l[:strings.LastIndexByte(l, ',')]
		if !slices.ContainsFunc(want, func(w string) bool { return w[:strings.LastIndexByte(w, ',')] == core }) {
			want = append(want, l)
		}
	}
	r, err := Parse(strings.NewReader(strings.Join(lines, "\n")+"\n"), "random.txt", FormatNSL)
	if err != nil {
		t.Fatal(err)
	}
	for name, hash := range map[string]func(rowKey) uint64{
		"maphash":     nil,
		"one hash":    func(rowKey) uint64 { return 0 },
		"label alone": func(k rowKey) uint64 { return uint64(k.label) },
	} {
		var got *Records
		if hash == nil {
			got = r.Distinct()
		} else {
			got = r.distinct(hash)
		}
		if got.N != len(want) || got.Repeats != len(lines)-len(want) {
			t.Errorf("%s: %d records, %d repeats; want %d, %d", name, got.N, got.Repeats, len(want), len(lines)-len(want))
			continue
		}
		for i, w := range want {
			if g := recordLine(got, i); g != w {
				t.Errorf("%s: record %d is %q, want %q", name, i, g, w)
				break
			}
		}
	}
}

// recordLine writes record i of r back as an NSL-KDD line of whole numbers.
func recordLine(r *Records, i int) string {
	f := make([]string, NumFeatures)
	for j, pos := range NumericFields {
		f[pos] = fmt.Sprint(r.Num[i*NumNumeric+j])
	}
	for j, pos := range CategoricalFields {
		f[pos] = r.CatValues[j][r.Cat[j][i]]
	}
	return strings.Join(f, ",") + "," + r.LabelNames[r.Label[i]] + "," + fmt.Sprint(r.Difficulty[i])
}

func BenchmarkDistinct(b *testing.B) {
	r := loadShipped(b, "kddcup99", "kddcup.data_10_percent")
	b.ReportAllocs()
	for b.Loop() {
		r.Distinct()
	}
	b.ReportMetric(float64(r.N)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
