package experiments

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// FuzzParse: any spec text and --set argument give specs or an ErrorList
// naming the file, never a panic; specs are within the grid bound, have
// their own names, satisfy the documented minimums, and parse the same
// twice. go test runs the seeds (every shipped spec); go test
// -fuzz=FuzzParse ./experiments searches further.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("*/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no shipped specs: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "")
		f.Add(data, "episodes.shots=[1,5]")
	}
	f.Add([]byte("dataset: {name: nsl-kdd}\nepisodes: &e {ways: [2, 3]}\nlearner: {algo: *e}\n"), "model.hidden=[[8],[4,4]]")
	f.Add([]byte("dataset: {name: nsl-kdd}\nname: '{algo}-{nope}'\n"), "learner.algo=[maml,anil]")
	f.Add([]byte("a: &a [*a]\n"), "seeds=[1,2]")

	f.Fuzz(func(t *testing.T, data []byte, set string) {
		var overrides []Override
		if set != "" {
			o, err := ParseOverride(set)
			if err != nil {
				return
			}
			overrides = append(overrides, o)
		}
		specs, err := Parse(data, "fuzz.yaml", overrides...)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T is not an ErrorList: %v", err, err)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" {
					t.Fatalf("error names file %q: %v", e.File, e)
				}
			}
			return
		}
		if len(specs) < 1 || len(specs) > maxGridRuns {
			t.Fatalf("%d specs", len(specs))
		}
		names := map[string]bool{}
		for _, s := range specs {
			if names[s.Name] {
				t.Fatalf("two runs named %q", s.Name)
			}
			names[s.Name] = true
			if e := s.Episodes; e.Ways < 2 || e.Shots < 1 || e.Queries < 1 {
				t.Fatalf("%s: %d-way %d-shot %d-query episodes accepted", s.Name, e.Ways, e.Shots, e.Queries)
			}
			if !slices.Contains(scalings, s.Encoder.Scaling) {
				t.Fatalf("%s: scaling %q accepted", s.Name, s.Encoder.Scaling)
			}
			if len(s.Name) > maxRunName {
				t.Fatalf("%q: a name of %d characters accepted", s.Name, len(s.Name))
			}
		}
		again, err := Parse(data, "fuzz.yaml", overrides...)
		if err != nil || !reflect.DeepEqual(again, specs) {
			t.Fatalf("a second parse differs: %v", err)
		}
	})
}
