package experiments

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// fieldKeys lists the dotted keys of every leaf field of t.
func fieldKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		key := joinKey(prefix, yamlKey(f))
		if f.Type.Kind() == reflect.Struct {
			out = append(out, fieldKeys(f.Type, key)...)
		} else {
			out = append(out, key)
		}
	}
	return out
}

// fieldByKey is the field of v at a dotted key.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	for _, seg := range strings.Split(key, ".") {
		t := v.Type()
		for i := range t.NumField() {
			if yamlKey(t.Field(i)) == seg {
				v = v.Field(i)
				break
			}
		}
	}
	return v
}

var (
	readmeRow  = regexp.MustCompile("^\\| `([a-z0-9_.]+)` \\| ([^|]*) \\|")
	codeOnlyRE = regexp.MustCompile("^`([^`]*)`$")
)

// TestREADMEDocumentsEveryField keeps README.md's field table and the Spec
// struct in step: the same keys, in the same order, with Default()'s values.
func TestREADMEDocumentsEveryField(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	defaults := map[string]string{}
	_, fields, ok := strings.Cut(string(b), "\n## Fields\n")
	if !ok {
		t.Fatal("README.md has no Fields section")
	}
	fields, _, _ = strings.Cut(fields, "\n## ")
	for _, line := range strings.Split(fields, "\n") {
		if m := readmeRow.FindStringSubmatch(line); m != nil {
			documented = append(documented, m[1])
			defaults[m[1]] = strings.TrimSpace(m[2])
		}
	}
	keys := fieldKeys(reflect.TypeOf(Spec{}), "")
	doc := map[string]bool{}
	for _, k := range documented {
		doc[k] = true
	}
	for _, k := range keys {
		if !doc[k] {
			t.Errorf("README.md does not document %s", k)
		}
	}
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
	}
	for _, k := range documented {
		if !known[k] {
			t.Errorf("README.md documents %s, which is not a field", k)
		}
	}
	if t.Failed() {
		return
	}
	if !reflect.DeepEqual(documented, keys) {
		t.Errorf("README.md lists the fields in another order than Spec:\n%v\n%v", documented, keys)
	}

	def := reflect.ValueOf(Default())
	for _, k := range keys {
		field := fieldByKey(def, k)
		m := codeOnlyRE.FindStringSubmatch(defaults[k])
		if m == nil {
			// Prose: a default that Default() cannot hold (it depends on the
			// file or the data set, or there is none).
			if !field.IsZero() {
				t.Errorf("%s: README says %q; Default() has %v", k, defaults[k], field)
			}
			continue
		}
		got := reflect.New(field.Type())
		if err := yaml.Unmarshal([]byte(m[1]), got.Interface()); err != nil {
			t.Errorf("%s: README default %q: %v", k, m[1], err)
			continue
		}
		if got.Elem().Kind() == reflect.Slice && got.Elem().Len() == 0 && field.Len() == 0 {
			continue // [] and nil
		}
		if !reflect.DeepEqual(got.Elem().Interface(), field.Interface()) {
			t.Errorf("%s: README default %s, Default() has %v", k, m[1], field)
		}
	}
}
