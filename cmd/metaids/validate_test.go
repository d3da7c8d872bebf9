package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSpecs writes name -> text spec files into a temporary folder.
func writeSpecs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func validateRows(t *testing.T, out string) []map[string]any {
	t.Helper()
	var doc struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	return doc.Rows
}

func TestValidateShippedSpecs(t *testing.T) {
	code, out, stderr := run(t, "validate", "../../experiments", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rows := validateRows(t, out)
	// 10 example runs, and the reproduce suite's 8 learners x 3 shot counts
	// on each of the two data sets and on KDD Cup 99's distinct records (of
	// both files, of the training file, of the test file), 4 x 3 pre-trained
	// runs, 4 x 3 adversarially trained runs, 4 x 3 multi-task runs with
	// 2 x 2 single-head ablations and 2 supervised runs.
	if want := 10 + 24*5 + 2 + 12 + 12 + 12 + 4; len(rows) != want {
		t.Fatalf("%d rows, want %d runs:\n%s", len(rows), want, out)
	}
	data := map[string]int{}
	for _, r := range rows {
		if r["status"] != "ok" {
			t.Errorf("%v", r)
		}
		data[r["dataset"].(string)]++
	}
	for _, name := range []string{"kddcup99 (distinct)", "kddcup99 (distinct train)", "kddcup99 (distinct test)"} {
		if data[name] != 24 {
			t.Errorf("%d runs on %s, want the 24 of its reproduce spec", data[name], name)
		}
	}

	// Overrides apply to every spec; a list makes a grid.
	runHas(t, []string{"validate", "../../experiments/nsl-kdd/maml-5way.yaml", "../../experiments/nsl-kdd/protonet-5way5shot.yaml",
		"--set", "episodes.shots=1", "--set", "learner.algo=[maml,fomaml]", "--set", "seeds=[4,5]", "--format", "csv"},
		"nsl-maml-5way-maml,nsl-kdd,maml,5,1,15,1000,\"4,5\",ok", "nsl-maml-5way-fomaml,", "nsl-protonet-5way5shot-fomaml,")
}

func TestValidateErrors(t *testing.T) {
	dir := writeSpecs(t, map[string]string{
		"good.yaml": "dataset: {name: nsl-kdd}\n",
		"bad.yaml":  "dataset:\n  name: nsl-kdd\nepisodes:\n  shot: 1\n  ways: 1\n",
		"twin.yaml": "name: good\ndataset: {name: kddcup99}\n",
	})
	good, bad, twin := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml"), filepath.Join(dir, "twin.yaml")
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr []string
		stdout []string
	}{
		{"no specs", []string{"validate"}, 2, []string{"validate takes one or more spec files"}, nil},
		{"bad format", []string{"validate", good, "--format", "xml"}, 2, []string{`unknown format "xml"`}, nil},
		{"bad --set syntax", []string{"validate", good, "--set", "episodes.shots"}, 2, []string{"--set episodes.shots: want key=value"}, nil},
		{"missing file", []string{"validate", filepath.Join(dir, "nope.yaml")}, 1, []string{"nope.yaml: no such file", "1 of 1 spec files have errors"}, nil},
		{"bad spec", []string{"validate", good, bad}, 1,
			[]string{bad + ":4: episodes.shot: unknown key (did you mean shots?)\n" + bad + ":5: episodes.ways: 1, want at least 2\n",
				"metaids validate: 1 of 2 spec files have errors"},
			[]string{"line 4: episodes.shot: unknown key", "│ ok "}},
		{"bad override", []string{"validate", good, "--set", "episodes.shot=1"}, 1,
			[]string{good + ": --set episodes.shot=1: unknown key (did you mean shots?)"}, nil},
		{"same run name twice", []string{"validate", good, twin}, 1,
			[]string{twin + ": name: run good is also defined by " + good + ": both would write results/good"}, nil},
		{"folder", []string{"validate", dir}, 1, []string{"2 of 3 spec files have errors", "bad.yaml:5: episodes.ways"}, []string{"line 5: episodes.ways"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, stderr := run(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			for _, w := range c.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			for _, w := range c.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// A spec file named twice, or by itself and by its folder, is one spec:
// its runs do not collide with themselves.
func TestSpecNamedTwice(t *testing.T) {
	dir := writeSpecs(t, map[string]string{"a.yaml": "dataset: {name: nsl-kdd}\n"})
	a := filepath.Join(dir, "a.yaml")
	for _, args := range [][]string{{a, a}, {dir, a}, {a, filepath.Join(dir, ".", "a.yaml")}} {
		code, out, stderr := run(t, append([]string{"validate", "--format", "json"}, args...)...)
		if code != 0 {
			t.Errorf("validate %v: exit %d: %s", args, code, stderr)
			continue
		}
		if rows := validateRows(t, out); len(rows) != 1 {
			t.Errorf("validate %v: %d rows, want 1:\n%s", args, len(rows), out)
		}
	}
	// run loads its specs the same way: the only error is the one the
	// override makes (so that nothing runs), not a name collision.
	code, _, stderr := run(t, "run", a, dir, "--out", t.TempDir(), "--set", "episodes.test_episodes=0")
	if code != 1 || !strings.Contains(stderr, "episodes.test_episodes") || strings.Contains(stderr, "collide") {
		t.Errorf("run: exit %d: %s", code, stderr)
	}
}

func TestValidateDeep(t *testing.T) {
	if testing.Short() {
		t.Skip("loads NSL-KDD")
	}
	// With val_fraction 0.25 NSL-KDD's meta-val pool has 3 attack types and
	// normal: enough for 4-way episodes, not for 5-way ones.
	dir, rows, stderr := validateDeep(t, 1, map[string]string{
		"four.yaml": "dataset: {name: nsl-kdd}\nepisodes: {ways: 4, train_steps: 500}\n",
		"five.yaml": "dataset: {name: nsl-kdd}\nepisodes: {ways: 5, train_steps: 500}\n",
	})
	if len(rows) != 2 || rows[0]["run"] != "five" || rows[1]["run"] != "four" {
		t.Fatalf("rows %v", rows)
	}
	if rows[1]["status"] != "ok" || rows[1]["classes train/val/test"] != "11/4/9" {
		t.Errorf("four-way run: %v", rows[1])
	}
	want := "meta-val pool: sampler: 5-way episodes need at least 5 classes; the pool has 4: back, normal, satan, warezmaster" +
		" (classes with fewer than 20 records are left out: split.min_records, or episodes.shots + episodes.queries when it is 0;" +
		" episodes.replacement: true keeps them and samples with replacement)"
	if !strings.Contains(stderr, filepath.Join(dir, "five.yaml")+": run five: "+want) || rows[0]["status"] != "error: "+want {
		t.Errorf("five-way run: %v\nstderr:\n%s", rows[0], stderr)
	}

	// A category head over meta-train classes of one category: every
	// training attack mapped to dos, and no normal traffic.
	var cats strings.Builder
	for _, a := range []string{"back", "land", "neptune", "pod", "smurf", "teardrop", "ipsweep", "nmap", "portsweep", "satan",
		"ftp_write", "guess_passwd", "imap", "multihop", "phf", "spy", "warezclient", "warezmaster",
		"buffer_overflow", "loadmodule", "perl", "rootkit"} {
		cats.WriteString(a + ",dos\n")
	}
	catFile := filepath.Join(t.TempDir(), "cats.csv")
	if err := os.WriteFile(catFile, []byte(cats.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	_, rows, stderr = validateDeep(t, 1, map[string]string{
		"onecat.yaml": "dataset: {name: nsl-kdd, categories: " + catFile + "}\nsplit: {normal: false}\nepisodes: {ways: 3}\nmultitask: {category_weight: 1}\n",
	})
	want = "multitask.category_weight: the meta-train classes span 1 category (dos); the category head needs at least 2"
	if len(rows) != 1 || rows[0]["status"] != "error: "+want {
		t.Errorf("rows %v\nstderr:\n%s", rows, stderr)
	}
}

// A spec error that only the data shows names its key and the reason:
// a class to leave out of meta-test that is not one, a meta-val class too
// small for the pools (not one the training file lacks), and fine-tuning
// over a meta-train pool of one class, which it pre-trains a head on even
// when it draws no meta-train episode.
func TestValidateDeepNamesTheKey(t *testing.T) {
	if testing.Short() {
		t.Skip("loads NSL-KDD")
	}
	for _, c := range []struct{ spec, want string }{
		{"dataset: {name: nsl-kdd}\nsplit: {test_exclude: [warezmaster]}\nepisodes: {ways: 3}\n",
			`error: split.test_exclude: class "warezmaster" to leave out of meta-test is not a meta-test class of KDDTest+ (they are: apache2, httptunnel, mailbomb, mscan, `},
		{"dataset: {name: nsl-kdd}\nsplit: {val_classes: [back, neptune, spy]}\nepisodes: {ways: 2}\n",
			`error: split.val_classes: meta-val class "spy" has 2 records, too few for a pool (classes with fewer than 20 records are left out: split.min_records, `},
		{"dataset: {name: nsl-kdd}\nsplit: {val_fraction: 0.9, normal: false, min_records: 500}\n" +
			"episodes: {ways: 2, train_steps: 0, val_every: 0}\nlearner: {algo: finetune}\n",
			"error: learner.algo: finetune pre-trains a head over the meta-train classes and needs at least 2; the meta-train pool has 1: satan " +
				"(classes with fewer than 500 records are left out: split.min_records, "},
	} {
		_, rows, _ := validateDeep(t, 1, map[string]string{"spec.yaml": c.spec})
		if len(rows) != 1 || !strings.HasPrefix(rows[0]["status"].(string), c.want) {
			t.Errorf("%q: rows %v, want a status beginning %q", c.spec, rows, c.want)
		}
	}
}

// A supervised spec draws no episodes: --deep loads and labels its files
// instead of checking episode pools it does not use.
func TestValidateDeepSupervised(t *testing.T) {
	if testing.Short() {
		t.Skip("loads NSL-KDD")
	}
	_, rows, _ := validateDeep(t, 0, map[string]string{
		"sup.yaml": "dataset: {name: nsl-kdd}\nsplit: {protocol: supervised}\nsupervised: {labels: category, test_files: [KDDTest-21]}\n",
	})
	if len(rows) != 1 || rows[0]["status"] != "ok" || rows[0]["classes train/val/test"] != "5/-/-" {
		t.Errorf("rows %v", rows)
	}
}

// validateDeep writes specs into a folder, runs validate --deep on it and
// checks the exit code; it returns the folder, the table rows and stderr.
func validateDeep(t *testing.T, wantCode int, specs map[string]string) (string, []map[string]any, string) {
	t.Helper()
	dir := writeSpecs(t, specs)
	code, out, stderr := run(t, "validate", dir, "--deep", "--format", "json")
	if code != wantCode {
		t.Fatalf("exit %d, want %d: %s", code, wantCode, stderr)
	}
	return dir, validateRows(t, out), stderr
}

// A data file that is not the published one names the spec key that takes
// it anyway (the commands' --no-checksum flag is not a spec's).
func TestValidateDeepChecksumNamesTheSpecKey(t *testing.T) {
	if testing.Short() {
		t.Skip("loads NSL-KDD")
	}
	data := t.TempDir()
	for _, f := range []string{"KDDTrain+_20Percent.txt", "KDDTest-21.txt"} {
		b := shippedRecords(t, "nsl-kdd/"+f+".gz")
		if f == "KDDTest-21.txt" { // one record short of the published file
			b = b[:bytes.LastIndexByte(b[:len(b)-1], '\n')+1]
		}
		if err := os.WriteFile(filepath.Join(data, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, rows, _ := validateDeep(t, 1, map[string]string{
		"ck.yaml": "dataset: {name: nsl-kdd, train_file: KDDTrain+_20Percent, test_file: KDDTest-21, data_dir: " + data + "}\n",
	})
	want := "KDDTest-21.txt: 11849 records, the published KDDTest-21.txt has 11850 (set dataset.no_checksum: true to use it anyway)"
	if len(rows) != 1 || !strings.HasSuffix(rows[0]["status"].(string), want) {
		t.Errorf("rows %v, want a status ending %q", rows, want)
	}
}
