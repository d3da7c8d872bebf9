package argcheck

import (
	"strings"
	"testing"
)

func TestPairwiseChecks(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func()
		want string // "" for no panic
	}{
		{"fits", func() { Pairwise("f", 6, 4, 6, 1, 2, 3, 2) }, ""},
		{"dst", func() { Pairwise("f", 5, 4, 6, 1, 2, 3, 2) }, "f: len(dst)=5, want 1*2*3=6"},
		{"negative", func() { Pairwise("f", 0, 0, 0, 1, -2, 3, 2) }, "f: negative size"},
		{"grad fits, both absent", func() { PairwiseGrad("g", Absent, Absent, 6, 4, 6, 1, 2, 3, 2) }, ""},
		{"grad gx", func() { PairwiseGrad("g", 3, Absent, 6, 4, 6, 1, 2, 3, 2) }, "g: len(gx)=3, want 1*2*2=4"},
		{"grad gy", func() { PairwiseGrad("g", 4, 7, 6, 4, 6, 1, 2, 3, 2) }, "g: len(gy)=7, want 1*3*2=6"},
		{"grad gout", func() { PairwiseGrad("g", 4, 6, 1, 4, 6, 1, 2, 3, 2) }, "g: len(gout)=1"},
	} {
		got := func() (msg string) {
			defer func() {
				if r := recover(); r != nil {
					msg = r.(string)
				}
			}()
			c.f()
			return ""
		}()
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: panic %q, want %q", c.name, got, c.want)
		}
	}
}

func TestOptLen(t *testing.T) {
	if got := OptLen([]float32(nil)); got != Absent {
		t.Errorf("OptLen(nil) = %d, want Absent", got)
	}
	if got := OptLen([]float64{}); got != 0 {
		t.Errorf("OptLen(empty) = %d, want 0 (present, empty)", got)
	}
	if got := OptLen(make([]float32, 3)); got != 3 {
		t.Errorf("OptLen of 3 = %d", got)
	}
}
