package datasets

import (
	"runtime"
	"testing"
)

func benchmarkParseEncode(b *testing.B, dataset, file string) {
	d, err := Lookup(dataset)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var rows int
	for i := 0; i < b.N; i++ {
		r, err := Load(d, file, LoadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		e, err := FitEncoder(r, EncoderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		rows = e.Transform(r).Rows
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "records/s")
}

// Parse the shipped gzip file, fit the encoder and encode every record.
func BenchmarkParseEncodeKDDTrainPlus(b *testing.B) {
	benchmarkParseEncode(b, "nsl-kdd", "KDDTrain+")
}

func BenchmarkParseEncodeKDD10Percent(b *testing.B) {
	benchmarkParseEncode(b, "kddcup99", "kddcup.data_10_percent")
}

// TestEncodedNSLTrainingMatrixMemory checks that what stays live after
// loading and encoding KDDTrain+ (the encoded matrix, labels for the pools)
// fits the 80 MB budget.
func TestEncodedNSLTrainingMatrixMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement in -short mode")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := loadShipped(t, "nsl-kdd", "KDDTrain+")
	e, err := FitEncoder(r, EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := e.Transform(r)
	pool, _, err := NewPool(r, m, DefaultCategories(), PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Num = nil // the raw numeric columns are not needed once encoded
	runtime.GC()
	runtime.ReadMemStats(&after)
	live := float64(after.HeapAlloc-before.HeapAlloc) / 1e6
	t.Logf("encoded matrix %d x %d: %.1f MB live (matrix alone %.1f MB)", m.Rows, m.Dim, live, float64(len(m.X)*4)/1e6)
	if live > 80 {
		t.Errorf("%.1f MB live after encoding KDDTrain+, want under 80", live)
	}
	runtime.KeepAlive(pool)
	runtime.KeepAlive(r)
}
