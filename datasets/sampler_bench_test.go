package datasets

import (
	"sync"
	"testing"
)

var (
	benchPoolOnce sync.Once
	benchPool     *Pool
)

// benchmarkPool is 20 classes with NSL-KDD-like sizes (two of 40,000 rows,
// several of a few thousand, a tail of 30-200), Dim 122, rows interleaved
// through a ~50 MB matrix as in an encoded file.
func benchmarkPool(b *testing.B) *Pool {
	benchPoolOnce.Do(func() {
		names := []string{
			"apache2", "back", "buffer_overflow", "guess_passwd", "httptunnel",
			"ipsweep", "mailbomb", "mscan", "neptune", "nmap",
			"normal", "pod", "portsweep", "processtable", "satan",
			"smurf", "snmpgetattack", "teardrop", "warezclient", "warezmaster",
		}
		sizes := []int{
			737, 956, 30, 53, 133,
			3599, 293, 996, 40000, 1493,
			40000, 201, 2931, 685, 3633,
			2646, 178, 892, 890, 30,
		}
		benchPool = testPool(b, 122, names, sizes)
	})
	return benchPool
}

func benchmarkSampler(b *testing.B, metaBatch int, rowsOnly bool) {
	p := benchmarkPool(b)
	s, err := NewSampler(p, SamplerConfig{Ways: 5, Shots: 5, Queries: 15, MetaBatch: metaBatch, NormalWay: true, Seed: 1, RowsOnly: rowsOnly})
	if err != nil {
		b.Fatal(err)
	}
	batch := s.NewBatch()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.NextBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*metaBatch)/b.Elapsed().Seconds(), "episodes/s")
}

func BenchmarkSampler5Way5Shot15Query(b *testing.B) {
	p := benchmarkPool(b)
	s, err := NewSampler(p, SamplerConfig{Ways: 5, Shots: 5, Queries: 15, MetaBatch: 1, NormalWay: true, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	ep := s.NewEpisode()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Next(ep); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "episodes/s")
}

func BenchmarkSampler5Way5Shot15QueryMetaBatch4(b *testing.B) { benchmarkSampler(b, 4, false) }

// BenchmarkSamplerRowsOnly draws meta-batches of 256 for a device learner,
// without copying features, against the same with them.
func BenchmarkSamplerRowsOnlyMetaBatch256(b *testing.B) { benchmarkSampler(b, 256, true) }
func BenchmarkSamplerMetaBatch256(b *testing.B)         { benchmarkSampler(b, 256, false) }
