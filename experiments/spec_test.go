package experiments

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/metaids/metaids/datasets"
	"github.com/metaids/metaids/train"
)

// parseSpec parses a spec named spec.yaml, failing the test on an error.
func parseSpec(t *testing.T, text string, sets ...string) []Spec {
	t.Helper()
	specs, err := Parse([]byte(text), "spec.yaml", parseOverrides(t, sets)...)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return specs
}

func parseOverrides(t *testing.T, sets []string) []Override {
	t.Helper()
	var out []Override
	for _, s := range sets {
		o, err := ParseOverride(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o)
	}
	return out
}

func TestDefaults(t *testing.T) {
	specs := parseSpec(t, "dataset:\n  name: nsl-kdd\n")
	if len(specs) != 1 {
		t.Fatalf("%d specs, want 1", len(specs))
	}
	want := Default()
	want.Name = "spec"
	want.Dataset = DatasetSpec{Name: "nsl-kdd", TrainFile: "KDDTrain+", TestFile: "KDDTest+", Distinct: "none"}
	if !reflect.DeepEqual(specs[0], want) {
		t.Errorf("got  %+v\nwant %+v", specs[0], want)
	}

	d := Default()
	if d.Episodes.Ways != 5 || d.Episodes.Shots != 5 || d.Episodes.Queries != 15 || d.Episodes.MetaBatch != 4 ||
		d.Episodes.TrainSteps != 2000 || d.Episodes.ValEvery != 250 || d.Episodes.ValEpisodes != 100 ||
		d.Episodes.TestEpisodes != 600 || d.Split.ValFraction != 0.25 || !d.Split.Normal || !d.Encoder.Log1p ||
		d.Learner.Algo != "protonet" || d.Optimizer.LR != 0.001 || !slices.Equal(d.Model.Hidden, []int{64}) ||
		!slices.Equal(d.Seeds, []uint64{1}) || d.Backend.Threads != 1 {
		t.Errorf("Default() = %+v", d)
	}

	// Aliases and file spellings resolve to the registry's names.
	s := parseSpec(t, "dataset: {name: KDD99, train_file: kddcup.data_10_percent.gz, test_file: corrected}\n")[0]
	if s.Dataset.Name != "kddcup99" || s.Dataset.TrainFile != "kddcup.data_10_percent" || s.Dataset.TestFile != "corrected" {
		t.Errorf("dataset resolved to %+v", s.Dataset)
	}
	// A list key takes one value; an empty string key is empty.
	s = parseSpec(t, "dataset:\n  name: nsl-kdd\n  categories:\nseeds: 7\nmodel: {hidden: 32}\nsplit: {val_classes: back}\nepisodes: {ways: 2}\n")[0]
	if !slices.Equal(s.Seeds, []uint64{7}) || !slices.Equal(s.Model.Hidden, []int{32}) ||
		!slices.Equal(s.Split.ValClasses, []string{"back"}) || s.Split.ValFraction != 0 {
		t.Errorf("single values: %+v", s)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	badCats := filepath.Join(dir, "cats.csv")
	if err := os.WriteFile(badCats, []byte("smurf,dos,extra\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, spec string
		sets       []string
		want       string // the whole error text
	}{
		{"empty file", "", nil, "spec.yaml:1: empty spec: want a mapping with keys such as dataset, episodes and learner"},
		{"comments only", "# nothing\n", nil, "spec.yaml:1: empty spec: want a mapping with keys such as dataset, episodes and learner"},
		{"top-level list", "- dataset\n", nil, "spec.yaml:1: the top level is a list; want a mapping with keys such as dataset, episodes and learner"},
		{"top-level scalar", "hello\n", nil, `spec.yaml:1: the top level is "hello"; want a mapping with keys such as dataset, episodes and learner`},
		{"long top-level scalar", strings.Repeat("ab", 50) + "\n", nil, `spec.yaml:1: the top level is "` + strings.Repeat("ab", 30) + `"... (100 characters); want a mapping with keys such as dataset, episodes and learner`},
		{"syntax", "dataset:\n  name: nsl-kdd\n episodes: 3\n", nil, "spec.yaml:2: YAML syntax: did not find expected key"},
		{"two documents", "dataset: {name: nsl-kdd}\n---\nseeds: [2]\n", nil, "spec.yaml:2: a second YAML document: a spec file holds one"},
		{"unknown key", "dataset:\n  name: nsl-kdd\nepisodes:\n  shot: 1\n", nil,
			"spec.yaml:4: episodes.shot: unknown key (did you mean shots?)"},
		{"unknown section", "dataset: {name: nsl-kdd}\nepisode:\n  shots: 1\n", nil,
			"spec.yaml:2: episode: unknown key (did you mean episodes?)"},
		{"unknown key, no suggestion", "dataset: {name: nsl-kdd}\nlearner: {temperature: 2}\n", nil,
			"spec.yaml:2: learner.temperature: unknown key"},
		{"duplicate key", "dataset: {name: nsl-kdd}\nepisodes:\n  ways: 5\n  ways: 3\n", nil,
			"spec.yaml:4: episodes.ways: duplicate key (first at line 3)"},
		// A value reached through an alias is reported where the alias is.
		{"alias of another section", "dataset: &d {name: nsl-kdd}\nsplit: *d\n", nil, "spec.yaml:2: split.name: unknown key"},
		{"alias in a list", "dataset: {name: nsl-kdd}\nepisodes: {ways: &w 3}\nseeds: [3, *w]\n", nil,
			"spec.yaml:3: seeds[1]: 3 is listed twice (also seeds[0])"},
		{"alias of a wrong value", "dataset: {name: nsl-kdd}\ndescription: &t text\nepisodes:\n  ways: *t\n", nil,
			`spec.yaml:4: episodes.ways: want an integer, got "text"`},
		{"merge key", "dataset: {name: nsl-kdd}\nepisodes:\n  <<: {ways: 3}\n", nil, "spec.yaml:3: episodes.<<: merge keys are not supported; write the keys out"},
		{"not an integer", "dataset: {name: nsl-kdd}\nepisodes:\n  ways: five\n", nil,
			`spec.yaml:3: episodes.ways: want an integer, got "five"`},
		{"float for integer", "dataset: {name: nsl-kdd}\nepisodes: {shots: 2.5}\n", nil,
			"spec.yaml:2: episodes.shots: want an integer, got 2.5"},
		{"yes is not a boolean", "dataset: {name: nsl-kdd}\nepisodes:\n  normal_way: yes\n", nil,
			`spec.yaml:3: episodes.normal_way: want true or false, got "yes"`},
		{"quoted number", "dataset: {name: nsl-kdd}\noptimizer:\n  lr: \"0.1\"\n", nil,
			`spec.yaml:3: optimizer.lr: want a number, got "0.1"`},
		{"list for number", "dataset: {name: nsl-kdd}\noptimizer:\n  lr: [0.1, 0.01]\n", nil,
			"spec.yaml:3: optimizer.lr: want a number, got a list"},
		{"integer out of range", "dataset: {name: nsl-kdd}\nepisodes:\n  ways: 99999999999999999999\n", nil,
			"spec.yaml:3: episodes.ways: want an integer, got 99999999999999999999, which is out of range"},
		{"seed out of range", "dataset: {name: nsl-kdd}\nseeds: [18446744073709551616]\n", nil,
			"spec.yaml:2: seeds[0]: want a non-negative integer, got 18446744073709551616, which is out of range"},
		{"float out of range", "dataset: {name: nsl-kdd}\noptimizer:\n  lr: 1e400\n", nil,
			"spec.yaml:3: optimizer.lr: want a number, got 1e400, which is out of range"},
		{"number for string", "dataset: {name: 99}\n", nil, "spec.yaml:1: dataset.name: want a string, got 99"},
		{"placeholder unquoted", "dataset: {name: nsl-kdd}\nname: {algo}\n", nil,
			`spec.yaml:2: name: want a string, got a mapping (a string that starts with { or [ needs quotes: name: "{algo}-5shot")`},
		{"section not a mapping", "dataset: {name: nsl-kdd}\nepisodes: 5\n", nil,
			"spec.yaml:2: episodes: want a mapping with keys ways, shots, queries, meta_batch, normal_way, replacement, train_steps, val_every, val_episodes, test_episodes; got 5"},
		{"not finite", "dataset: {name: nsl-kdd}\noptimizer: {lr: .inf}\n", nil,
			"spec.yaml:2: optimizer.lr: want a finite number, got .inf"},
		{"negative seed", "dataset: {name: nsl-kdd}\nseeds: [1, -2]\n", nil,
			"spec.yaml:2: seeds[1]: want a non-negative integer, got -2"},
		{"ways out of range", "dataset: {name: nsl-kdd}\nepisodes:\n  ways: 1\n", nil,
			"spec.yaml:3: episodes.ways: 1, want at least 2"},
		{"negative test inner steps", "dataset: {name: nsl-kdd}\nlearner:\n  algo: maml\n  test_inner_steps: -1\n", nil,
			"spec.yaml:4: learner.test_inner_steps: -1, want at least 0"},
		{"val fraction range", "dataset: {name: nsl-kdd}\nsplit: {val_fraction: 1}\n", nil,
			"spec.yaml:2: split.val_fraction: 1, want a value in [0, 1)"},
		{"lr zero", "dataset: {name: nsl-kdd}\noptimizer:\n  lr: 0\n", nil,
			"spec.yaml:3: optimizer.lr: 0, want more than 0"},
		// The learners compute in float32: 1e300 would be infinite there,
		// and an eps of 1e-300 zero (a division by zero in Adam).
		{"beyond float32", "dataset: {name: nsl-kdd}\nlearner: {distance: cosine, cosine_scale: 1e300}\n", nil,
			"spec.yaml:2: learner.cosine_scale: 1e+300, want at most 3.4e38: the learners compute in float32"},
		{"below float32", "dataset: {name: nsl-kdd}\noptimizer: {eps: 1e-300}\n", nil,
			"spec.yaml:2: optimizer.eps: 1e-300, below 1.2e-38, the least normal float32: the learners compute in float32"},
		{"beta that is 1 in float32", "dataset: {name: nsl-kdd}\noptimizer: {beta2: 0.99999999}\n", nil,
			"spec.yaml:2: optimizer.beta2: 0.99999999, which is 1 in float32, in which the learners compute (Adam's bias correction would divide by 0): want at most 0.9999999403953552"},
		{"weight beyond float32", "dataset: {name: nsl-kdd}\nmultitask: {binary_weight: 1e300}\n", nil,
			"spec.yaml:2: multitask.binary_weight: 1e+300, want at most 3.4e38: the learners compute in float32"},
		{"noise beyond float32", "dataset: {name: nsl-kdd}\npretrain: {objective: denoise, noise: 1e300}\n", nil,
			"spec.yaml:2: pretrain.noise: 1e+300, want at most 3.4e38: the learners compute in float32"},
		{"unknown algo", "dataset: {name: nsl-kdd}\nlearner:\n  algo: protonett\n", nil,
			`spec.yaml:3: learner.algo: "protonett"; want one of anil, finetune, fomaml, maml, metasgd, nearest-centroid, protonet, reptile; did you mean protonet?`},
		{"unknown engine", "dataset: {name: nsl-kdd}\nlearner: {engine: fast}\n", nil,
			`spec.yaml:2: learner.engine: "fast"; want one of fused, gorgonia`},
		{"engine without the learner", "dataset: {name: nsl-kdd}\nlearner:\n  algo: [maml, reptile]\n  engine: gorgonia\n", nil,
			"spec.yaml:4: learner.engine: gorgonia implements protonet, maml, fomaml, not reptile; use fused"},
		{"unknown activation", "dataset: {name: nsl-kdd}\nmodel: {activation: gelu}\n", nil,
			`spec.yaml:2: model.activation: "gelu"; want one of relu, leaky_relu, tanh, sigmoid; did you mean relu?`},
		{"unknown device", "dataset: {name: nsl-kdd}\nbackend: {device: gpu}\n", nil,
			`spec.yaml:2: backend.device: "gpu"; want one of auto, cpu, cuda; did you mean cuda?`},
		// GOMAXPROCS reads 2^31 as negative and dies past 10,000 threads.
		{"threads beyond the runtime", "dataset: {name: nsl-kdd}\nbackend: {threads: 2147483648}\n", nil,
			"spec.yaml:2: backend.threads: 2147483648, want at most 1024"},
		{"unknown distinct", "dataset: {name: kddcup99, distinct: yes}\n", nil,
			`spec.yaml:1: dataset.distinct: "yes"; want one of none, train, test, both`},
		{"distinct is no boolean", "dataset: {name: kddcup99, distinct: true}\n", nil,
			"spec.yaml:1: dataset.distinct: want a string, got true"},
		{"unknown scaling", "dataset: {name: nsl-kdd}\nencoder: {scaling: bogus}\n", nil,
			`spec.yaml:2: encoder.scaling: "bogus"; want one of minmax, zscore`},
		{"misspelt scaling", "dataset: {name: nsl-kdd}\nencoder:\n  scaling: z-score\n", nil,
			`spec.yaml:3: encoder.scaling: "z-score"; want one of minmax, zscore; did you mean zscore?`},
		{"empty scaling", "dataset: {name: nsl-kdd}\nencoder:\n  scaling:\n", nil,
			`spec.yaml:3: encoder.scaling: ""; want one of minmax, zscore`},
		{"pretrain batch too large", "dataset: {name: nsl-kdd}\npretrain:\n  objective: mask\n  batch_size: 1000000000\n", nil,
			"spec.yaml:4: pretrain.batch_size: 1000000000, want at most " + strconv.Itoa(train.MaxPretrainBatch)},
		{"pretrain batch too large, override", "dataset: {name: nsl-kdd}\n", []string{"pretrain.objective=mask", "pretrain.batch_size=1000000000"},
			"spec.yaml: --set pretrain.batch_size=1000000000: 1000000000, want at most " + strconv.Itoa(train.MaxPretrainBatch)},
		{"supervised batch too large", "dataset: {name: nsl-kdd}\nsplit: {protocol: supervised}\nsupervised:\n  batch_size: 1000000000\n", nil,
			"spec.yaml:4: supervised.batch_size: 1000000000, want at most " + strconv.Itoa(train.MaxClassifierBatch)},
		{"run name too long", "name: " + strings.Repeat("a", maxRunName+1) + "\ndataset: {name: nsl-kdd}\n", nil,
			`spec.yaml:1: name: "` + strings.Repeat("a", 60) + `"... (256 characters): want at most 255 characters (it names the results folder)`},
		{"grid suffix makes the run name too long", "name: " + strings.Repeat("b", 250) + "\ndataset: {name: nsl-kdd}\nlearner: {algo: [maml, protonet]}\n", nil,
			`spec.yaml:1: name: "` + strings.Repeat("b", 60) + `"... (259 characters): want at most 255 characters (it names the results folder)`},
		{"no data set", "episodes: {ways: 5}\n", nil, "spec.yaml:1: dataset.name: required: one of kddcup99, nsl-kdd"},
		{"unknown data set", "dataset:\n  name: nsl-kd\n", nil,
			`spec.yaml:2: dataset.name: unknown data set "nsl-kd"; want one of kddcup99, nsl-kdd; did you mean nsl-kdd?`},
		{"file the data set lacks", "dataset:\n  name: nsl-kdd\n  train_file: KDDTrain\n", nil,
			`spec.yaml:3: dataset.train_file: nsl-kdd has no file "KDDTrain"; want one of KDDTrain+, KDDTrain+_20Percent, KDDTest+, KDDTest-21; did you mean KDDTrain+?`},
		{"file not shipped", "dataset:\n  name: kddcup99\n  train_file: kddcup.data\n", nil,
			"spec.yaml:3: dataset.train_file: kddcup.data is not shipped: set dataset.data_dir to a folder holding kddcup.data or kddcup.data.gz"},
		{"file not in data_dir", "dataset:\n  name: kddcup99\n  train_file: kddcup.data\n  data_dir: " + dir + "\n", nil,
			"spec.yaml:3: dataset.train_file: kddcup99/kddcup.data: neither kddcup.data nor kddcup.data.gz found in " + dir},
		{"missing data_dir", "dataset:\n  name: nsl-kdd\n  data_dir: " + filepath.Join(dir, "nope") + "\n", nil,
			"spec.yaml:3: dataset.data_dir: stat " + filepath.Join(dir, "nope") + ": no such file or directory"},
		// Said once, not again for each file that would be read from it.
		{"missing data_dir for a file not shipped", "dataset:\n  name: kddcup99\n  train_file: kddcup.data\n  data_dir: " + filepath.Join(dir, "nope") + "\n", nil,
			"spec.yaml:4: dataset.data_dir: stat " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"bad categories", "dataset:\n  name: nsl-kdd\n  categories: " + badCats + "\n", nil,
			"spec.yaml:3: dataset.categories: " + badCats + " line 1: 3 fields, want 2 (attack,category)"},
		{"test file is train file", "dataset:\n  name: nsl-kdd\n  test_file: KDDTrain+\n", nil,
			"spec.yaml:3: dataset.test_file: KDDTrain+ is also the training file; the novel-attack protocol needs a test file with attack types the training file lacks"},
		{"test file a subset of the train file", "dataset:\n  name: nsl-kdd\n  test_file: KDDTrain+_20Percent\n", nil,
			"spec.yaml:3: dataset.test_file: KDDTrain+_20Percent and the training file KDDTrain+ share records (one is a subset of the other), so meta-test episodes would hold training records"},
		{"train file a subset of the test file", "dataset:\n  name: nsl-kdd\n  train_file: KDDTest-21\n", nil,
			"spec.yaml:3: dataset.test_file: KDDTest+ and the training file KDDTest-21 share records (one is a subset of the other), so meta-test episodes would hold training records"},
		{"supervised test file a subset of the train file", "dataset: {name: nsl-kdd, train_file: KDDTest+}\nsplit: {protocol: supervised}\nsupervised:\n  test_files: [KDDTest-21]\n", nil,
			"spec.yaml:4: supervised.test_files[0]: KDDTest-21 shares records with the training file KDDTest+ (the same file, or one a subset of the other): its score would not be a test score"},
		{"supervised test file is the train file", "dataset: {name: nsl-kdd}\nsplit: {protocol: supervised}\nsupervised:\n  test_files: [KDDTest+, KDDTrain+_20Percent]\n", nil,
			"spec.yaml:4: supervised.test_files[1]: KDDTrain+_20Percent shares records with the training file KDDTrain+ (the same file, or one a subset of the other): its score would not be a test score"},
		// KDDTest-21 is the records of KDDTest+ of difficulty below 21.
		{"supervised test file a subset of the test file trained on", "dataset: {name: nsl-kdd, train_file: KDDTest+}\nsplit: {protocol: supervised}\nsupervised:\n  test_files: [KDDTest-21]\n", nil,
			"spec.yaml:4: supervised.test_files[0]: KDDTest-21 shares records with the training file KDDTest+ (the same file, or one a subset of the other): its score would not be a test score"},
		{"shrinkage negative but not -1", "dataset: {name: nsl-kdd}\ndetection:\n  method: mahalanobis\n  shrinkage: -0.5\n", nil,
			"spec.yaml:4: detection.shrinkage: -0.5, want a value in [0, 1], or -1 for the Ledoit-Wolf estimate"},
		{"val_every beyond train_steps", "dataset: {name: nsl-kdd}\nepisodes:\n  train_steps: 100\n", nil,
			"spec.yaml:3: episodes.val_every: 250, more than train_steps = 100, so validation would never run (0 turns it off)"},
		{"validation without meta-val classes", "dataset: {name: nsl-kdd}\nsplit:\n  val_fraction: 0\n", nil,
			"spec.yaml:3: episodes.val_every: 250, but there are no meta-val classes: set split.val_fraction or split.val_classes, or val_every to 0"},
		{"f1 threshold without meta-val classes", "dataset: {name: nsl-kdd}\nsplit:\n  val_fraction: 0\nepisodes:\n  val_every: 0\ndetection:\n  method: euclidean\n  threshold: f1\n", nil,
			"spec.yaml:8: detection.threshold: f1, but there are no meta-val attack classes to tune it on: set split.val_fraction or split.val_classes, or use detection.threshold: far"},
		{"val_episodes zero", "dataset: {name: nsl-kdd}\nepisodes:\n  val_episodes: 0\n", nil,
			"spec.yaml:3: episodes.val_episodes: 0, but val_every is 250: want at least 1 (or val_every 0)"},
		{"normal way without normal", "dataset: {name: nsl-kdd}\nsplit:\n  normal: false\nepisodes:\n  normal_way: true\n", nil,
			"spec.yaml:5: episodes.normal_way: true, but split.normal is false: there is no normal traffic in the pools to make a way of"},
		{"too few meta-val classes", "dataset: {name: nsl-kdd}\nsplit:\n  val_classes: [back, satan]\n", nil,
			"spec.yaml:3: split.val_classes: 3 meta-val classes with normal, fewer than episodes.ways = 5"},
		{"val classes and fraction", "dataset: {name: nsl-kdd}\nsplit:\n  val_fraction: 0.3\n  val_classes: [back, satan, smurf, pod]\n", nil,
			"spec.yaml:3: split.val_fraction: 0.3, but split.val_classes lists the meta-val classes: give one or the other"},
		{"unknown class", "dataset: {name: nsl-kdd}\nsplit:\n  train_exclude:\n    - neptune\n    - smurff\n", nil,
			`spec.yaml:5: split.train_exclude[1]: unknown class "smurff" (did you mean smurf?)`},
		{"class twice", "dataset: {name: nsl-kdd}\nsplit:\n  test_exclude: [saint, saint]\n", nil,
			`spec.yaml:3: split.test_exclude[1]: "saint" is listed twice (also split.test_exclude[0])`},
		{"normal in a class list", "dataset: {name: nsl-kdd}\nsplit:\n  test_include: [normal, saint, mscan, apache2, snmpguess]\n", nil,
			"spec.yaml:3: split.test_include[0]: normal traffic is not listed here: split.normal puts it in every pool or none"},
		{"include and exclude", "dataset: {name: nsl-kdd}\nsplit:\n  test_include: [saint, mscan, apache2, snmpguess]\n  test_exclude: [saint]\n", nil,
			`spec.yaml:4: split.test_exclude[0]: "saint" is also in split.test_include`},
		{"min_records too small", "dataset: {name: nsl-kdd}\nsplit:\n  min_records: 10\n", nil,
			"spec.yaml:3: split.min_records: 10, below shots+queries = 20: classes that small cannot give an episode unless episodes.replacement is true"},
		{"no hidden layer", "dataset: {name: nsl-kdd}\nmodel:\n  hidden: []\n", nil,
			"spec.yaml:3: model.hidden: empty, but protonet needs at least one hidden layer (only nearest-centroid has none)"},
		{"zero width", "dataset: {name: nsl-kdd}\nmodel:\n  hidden: [64, 0]\n", nil,
			"spec.yaml:3: model.hidden[1]: 0, want at least 1"},
		{"decoupled sgd", "dataset: {name: nsl-kdd}\noptimizer:\n  name: sgd\n  decoupled: true\n", nil,
			"spec.yaml:4: optimizer.decoupled: true, but only adam has decoupled weight decay (sgd adds it to the gradient)"},
		{"no seeds", "dataset: {name: nsl-kdd}\nseeds: []\n", nil, "spec.yaml:2: seeds: empty: want at least one seed"},
		{"seed twice", "dataset: {name: nsl-kdd}\nseeds: [1, 2, 1]\n", nil, "spec.yaml:2: seeds[2]: 1 is listed twice (also seeds[0])"},
		{"budget twice", "dataset: {name: nsl-kdd}\nadversarial: {eval_budgets: [0.1, 0.05, 0.1]}\n", nil,
			"spec.yaml:2: adversarial.eval_budgets[2]: 0.1 is listed twice (also adversarial.eval_budgets[0])"},
		{"attack twice", "dataset: {name: nsl-kdd}\nadversarial: {eval_budgets: [0.1], eval_attacks: [pgd, pgd]}\n", nil,
			"spec.yaml:2: adversarial.eval_attacks[1]: pgd is listed twice (also adversarial.eval_attacks[0])"},
		// The attacks run in float32, where these budgets would be 0 (a clean
		// score labelled as an attack) or one budget twice.
		{"budget 0 in float32", "dataset: {name: nsl-kdd}\nadversarial: {eval_budgets: [1e-50]}\n", nil,
			"spec.yaml:2: adversarial.eval_budgets[0]: 1e-50, below 1.2e-38, the least normal float32: the learners compute in float32"},
		{"budget twice in float32", "dataset: {name: nsl-kdd}\nadversarial: {eval_budgets: [0.1, 0.1000000001]}\n", nil,
			"spec.yaml:2: adversarial.eval_budgets[1]: 0.1000000001 (0.1 in float32, in which the attacks compute) is listed twice (also adversarial.eval_budgets[0])"},
		{"train budget 0 in float32", "dataset: {name: nsl-kdd}\nadversarial: {train_eps: 1e-50}\n", nil,
			"spec.yaml:2: adversarial.train_eps: 1e-50, below 1.2e-38, the least normal float32: the learners compute in float32"},
		// round(0.005·5·15) = 0: no query row would be perturbed.
		{"train mix of no row", "dataset: {name: nsl-kdd}\nadversarial: {train_eps: 0.05, train_mix: 0.005}\n", nil,
			"spec.yaml:2: adversarial.train_mix: 0.005 of an episode's 75 query rows rounds to none, so adversarial training would perturb nothing: want at least half a row, 1/150"},
		{"bad run name", "name: my run\ndataset: {name: nsl-kdd}\n", nil,
			`spec.yaml:1: name: "my run": want letters, digits, '.', '_', '+' and '-' only, starting with a letter or digit (it names the results folder)`},
		{"unknown placeholder", "name: run-{shot}\ndataset: {name: nsl-kdd}\n", nil,
			"spec.yaml:1: name: unknown placeholder {shot} (known: {algo}, {binary_weight}, {category_weight}, {dataset}, {hidden}, {queries}, {shots}, {ways})"},
		{"empty grid", "dataset: {name: nsl-kdd}\nepisodes:\n  shots: []\n", nil,
			"spec.yaml:3: episodes.shots: empty list: want a value, or a list of values for a grid"},
		{"grid value twice", "dataset: {name: nsl-kdd}\nlearner:\n  algo:\n    - maml\n    - maml\n", nil,
			"spec.yaml:5: learner.algo[1]: maml is listed twice (also learner.algo[0])"},
		{"supervised grid over an episodic key", "dataset: {name: nsl-kdd}\nsplit: {protocol: supervised}\nepisodes:\n  shots: [1, 5]\n", nil,
			"spec.yaml:4: episodes.shots: a grid, but the supervised track trains one classifier on every record and does not read episodes.shots: every run of the grid would be the same"},
		{"grid value out of range", "dataset: {name: nsl-kdd}\nepisodes:\n  shots:\n    - 1\n    - 0\n", nil,
			"spec.yaml:5: episodes.shots: 0, want at least 1"},
		{"grid value of the wrong type", "dataset: {name: nsl-kdd}\nepisodes:\n  ways: [5, ten]\n", nil,
			`spec.yaml:3: episodes.ways: want an integer, got "ten"`},
		{"hidden grid mixed", "dataset: {name: nsl-kdd}\nmodel:\n  hidden: [[64], 32]\n", nil,
			"spec.yaml:3: model.hidden[1]: want a list of widths (a grid of hidden layers is a list of lists), got 32"},
		{"several errors in line order", "dataset: {name: nsl-kdd}\nepisodes:\n  ways: 1\n  shot: 1\noptimizer: {lr: -1}\n", nil,
			"spec.yaml:3: episodes.ways: 1, want at least 2\nspec.yaml:4: episodes.shot: unknown key (did you mean shots?)\nspec.yaml:5: optimizer.lr: -1, want more than 0"},
		{"override unknown key", "dataset: {name: nsl-kdd}\n", []string{"episodes.shot=1"},
			"spec.yaml: --set episodes.shot=1: unknown key (did you mean shots?)"},
		{"override unknown section", "dataset: {name: nsl-kdd}\n", []string{"episode.shots=1"},
			"spec.yaml: --set episode.shots=1: episode: unknown key (did you mean episodes?)"},
		{"override bad value", "dataset: {name: nsl-kdd}\nepisodes:\n  ways: 5\n", []string{"episodes.ways=1"},
			"spec.yaml: --set episodes.ways=1: 1, want at least 2"},
		{"override bad type", "dataset: {name: nsl-kdd}\n", []string{"episodes.ways=five"},
			`spec.yaml: --set episodes.ways=five: want an integer, got "five"`},
		{"override bad grid", "dataset: {name: nsl-kdd}\n", []string{"learner.algo=[maml,mamal]"},
			`spec.yaml: --set learner.algo=[maml,mamal]: "mamal"; want one of anil, finetune, fomaml, maml, metasgd, nearest-centroid, protonet, reptile; did you mean maml?`},
		{"override into a value", "dataset: {name: nsl-kdd}\nseeds: [1]\n", []string{"seeds.first=1"},
			"spec.yaml: --set seeds.first=1: seeds: is a list, not a section"},
		{"grid too large", "dataset: {name: nsl-kdd}\nepisodes: {ways: " + intList(2, 21) + ", shots: " + intList(1, 30) + "}\n",
			[]string{"episodes.queries=" + intList(1, 20)},
			"spec.yaml:2: episodes.ways: the grid has more than 10000 runs (episodes.ways 20 × episodes.shots 30 × episodes.queries 20): split it into several specs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			specs, err := Parse([]byte(c.spec), "spec.yaml", parseOverrides(t, c.sets)...)
			if err == nil {
				t.Fatalf("no error; got %d specs", len(specs))
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %T is not an ErrorList: %v", err, err)
			}
			if err.Error() != c.want {
				t.Errorf("got\n%s\nwant\n%s", err, c.want)
			}
			for _, e := range list {
				if e.File != "spec.yaml" || (e.Line == 0 && e.Override == "") {
					t.Errorf("%q: file %q line %d override %q", e, e.File, e.Line, e.Override)
				}
			}
		})
	}
}

// A model or meta-batch that cannot fit in memory is refused when the spec
// is checked, naming the key (the sizes are far beyond any machine's).
func TestTooLargeForMemory(t *testing.T) {
	if train.MachineMemory() == 0 {
		t.Skip("the machine's memory is unknown here: nothing is refused")
	}
	for _, c := range []struct {
		spec string
		sets []string
		want string
	}{
		{"dataset: {name: nsl-kdd}\n", []string{"model.hidden=[1000000000, 1000000000]"},
			"spec.yaml: --set model.hidden=[1000000000, 1000000000]: hidden layers [1000000000 1000000000] need at least "},
		{"dataset: {name: nsl-kdd}\n", []string{"episodes.meta_batch=2000000000"},
			"spec.yaml: --set episodes.meta_batch=2000000000: 2000000000 episodes of 5×20 rows need at least "},
		// The model fits: the episode keys are to blame, the largest one.
		{"dataset: {name: nsl-kdd}\nepisodes:\n  shots: 1000000000\n", nil,
			"spec.yaml:3: episodes.shots: 1000000000, but one episode of 5×1000000015 rows needs at least "},
		{"dataset: {name: nsl-kdd}\nepisodes:\n  ways: 3\n  queries: 1000000000\n", nil,
			"spec.yaml:4: episodes.queries: 1000000000, but one episode of 3×1000000005 rows needs at least "},
		{"dataset: {name: nsl-kdd}\nlearner: {algo: maml}\nepisodes:\n  ways: 1000000000\n", nil,
			"spec.yaml:4: episodes.ways: 1000000000, but one episode of 1000000000×20 rows needs at least "},
		// Shots and queries that add up past the largest int.
		{"dataset: {name: nsl-kdd}\nepisodes: {shots: 4611686018427387904, queries: 4611686018427387904}\n", nil,
			"spec.yaml:2: episodes.shots: 4611686018427387904, but one episode of 5×9223372036854775808 rows needs at least "},
		// The MAML family keeps a copy of the model per inner step.
		{"dataset: {name: nsl-kdd}\nlearner: {algo: maml, inner_steps: 1000000000}\n", nil,
			"spec.yaml:2: learner.inner_steps: 1000000000, but the inner loop keeps an adapted copy of the model per step: at least "},
		// A first-order learner keeps a record of each step, not a model.
		{"dataset: {name: nsl-kdd}\nlearner: {algo: fomaml, inner_steps: 3000000000}\n", nil,
			"spec.yaml:2: learner.inner_steps: 3000000000, but the inner loop keeps a record of every step: at least "},
		// ... and each task adapted at once keeps its own inner loop.
		{"dataset: {name: nsl-kdd}\nlearner: {algo: maml, inner_steps: 100}\nmodel: {hidden: [16384]}\nepisodes: {meta_batch: 1024}\nbackend: {threads: 1024}\n", nil,
			"spec.yaml:5: backend.threads: 1024, but each task adapted at once keeps its own inner-loop buffers: 1024 at once need at least "},
		// Episodes drawn before they are used, all kept at once.
		{"dataset: {name: nsl-kdd}\n", []string{"episodes.val_episodes=10000000"},
			"spec.yaml: --set episodes.val_episodes=10000000: 10000000 meta-val episodes of 5×20 rows need at least "},
		{"dataset: {name: nsl-kdd}\nadversarial:\n  eval_budgets: [0.1]\n  eval_episodes: 100000000\n", nil,
			"spec.yaml:4: adversarial.eval_episodes: 100000000 robustness episodes of 5×20 rows need at least "},
	} {
		_, err := Parse([]byte(c.spec), "spec.yaml", parseOverrides(t, c.sets)...)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || !strings.Contains(err.Error(), "; this machine has ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q %q: %v, want %q...", c.spec, c.sets, err, c.want)
		}
	}
	// A meta-batch within the machine's memory but above what a sampler
	// allocates is refused too, before any data is read (nearest-centroid
	// needs little beyond the episodes; a learner's activations would not
	// fit).
	if train.MachineMemory() > datasets.MaxBatchBytes*1.1 {
		_, err := Parse([]byte("dataset: {name: nsl-kdd}\nlearner: {algo: nearest-centroid}\n"), "spec.yaml", parseOverrides(t, []string{"episodes.meta_batch=1000000"})...)
		if want := "spec.yaml: --set episodes.meta_batch=1000000: 1000000 episodes of 5×20 rows take at least 17.1 GiB, more than a sampler's limit of 16.0 GiB"; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("meta-batch above the sampler's limit: %v, want %q", err, want)
		}
	}
	for _, spec := range []string{
		"dataset: {name: nsl-kdd}\nmodel: {hidden: [4096, 4096]}\nepisodes: {meta_batch: 64}\n",
		"dataset: {name: nsl-kdd}\nepisodes: {val_episodes: 10000}\nadversarial: {eval_budgets: [0.1], eval_episodes: 10000}\n",
		// Without validation or a robustness evaluation the episodes are never drawn.
		"dataset: {name: nsl-kdd}\nepisodes: {val_every: 0, val_episodes: 100000000}\nadversarial: {eval_episodes: 100000000}\n",
		// The supervised track draws no episodes.
		"dataset: {name: nsl-kdd}\nsplit: {protocol: supervised}\nepisodes: {val_episodes: 100000000}\n",
	} {
		if _, err := Parse([]byte(spec), "spec.yaml"); err != nil {
			t.Errorf("a large but feasible spec %q: %v", spec, err)
		}
	}
}

// backend.device: cuda is refused by a build without the cuda backend,
// whose run would fail opening it; auto falls back to the CPU there.
func TestCUDANotCompiled(t *testing.T) {
	defer func(was bool) { cudaCompiled = was }(cudaCompiled)
	cudaCompiled = false
	_, err := Parse([]byte("dataset: {name: nsl-kdd}\nbackend:\n  device: cuda\n"), "spec.yaml")
	want := "spec.yaml:3: backend.device: cuda, but this build has no cuda backend (build with -tags metaids_cuda); use cpu, or auto for cuda where it is compiled in and working"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	for _, dev := range []string{"auto", "cpu"} {
		if _, err := Parse([]byte("dataset: {name: nsl-kdd}\nbackend: {device: "+dev+"}\n"), "spec.yaml"); err != nil {
			t.Errorf("%s without cuda: %v", dev, err)
		}
	}
	cudaCompiled = true
	if specs, err := Parse([]byte("dataset: {name: nsl-kdd}\nbackend: {device: cuda}\n"), "spec.yaml"); err != nil || specs[0].Backend.Device != "cuda" {
		t.Errorf("cuda with cuda compiled in: %v", err)
	}
}

// A file past 1 MiB is no spec: it is refused before it is read whole (a
// path such as /dev/zero was read until the memory ran out).
func TestLoadRefusesAFileTooLargeForASpec(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte("dataset: {name: nsl-kdd}\n"+strings.Repeat("# a comment line\n", 70000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || err.Error() != path+": more than 1 MiB: not a spec" {
		t.Errorf("Load: %v", err)
	}
}

// A run named after its file says so when the file's name is no run name.
func TestFileNameThatIsNoRunName(t *testing.T) {
	_, err := Parse([]byte("dataset: {name: nsl-kdd}\n"), "my spec.yaml")
	want := `my spec.yaml:1: name: "my spec" (the file's name; a name key gives the run another): want letters, digits, '.', '_', '+' and '-' only, starting with a letter or digit (it names the results folder)`
	if err == nil || err.Error() != want {
		t.Errorf("%v, want %q", err, want)
	}
}

func TestParseOverrideSyntax(t *testing.T) {
	for s, want := range map[string]string{
		"episodes.shots":    "--set episodes.shots: want key=value, e.g. episodes.shots=1",
		"=1":                "--set =1: want key=value, e.g. episodes.shots=1",
		"episodes..shots=1": `--set episodes..shots=1: key "episodes..shots" has an empty part`,
		"seeds=[1,2":        "--set seeds=[1,2: value is not YAML: line 1: did not find expected ',' or ']'",
		"seeds=1\n---\n2":   "--set seeds=1\n---\n2: the value is more than one YAML document",
		"name={algo}x":      `--set name={algo}x: value is not YAML: did not find expected <document start>; quote text that YAML would read as more, as in --set "name='{algo}x'"`,
		"name=[a]b'c":       `--set name=[a]b'c: value is not YAML: did not find expected <document start>; quote text that YAML would read as more, as in --set "name='[a]b''c'"`,
	} {
		if _, err := ParseOverride(s); err == nil || err.Error() != want {
			t.Errorf("ParseOverride(%q) = %v, want %q", s, err, want)
		}
	}
}

// intList is the YAML flow list [lo, lo+1, ..., hi].
func intList(lo, hi int) string {
	var parts []string
	for v := lo; v <= hi; v++ {
		parts = append(parts, strconv.Itoa(v))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func runNames(specs []Spec) []string {
	var out []string
	for _, s := range specs {
		out = append(out, s.Name)
	}
	return out
}

func TestGrids(t *testing.T) {
	cases := []struct {
		name, spec string
		sets       []string
		want       []string
	}{
		{"placeholders", "name: nsl-{algo}-{shots}shot\ndataset: {name: nsl-kdd}\nepisodes: {shots: [1, 5, 10]}\nlearner: {algo: [protonet, fomaml]}\n", nil,
			[]string{"nsl-protonet-1shot", "nsl-protonet-5shot", "nsl-protonet-10shot", "nsl-fomaml-1shot", "nsl-fomaml-5shot", "nsl-fomaml-10shot"}},
		{"suffixes", "dataset: {name: nsl-kdd}\nepisodes: {ways: [3, 5], queries: [10, 15]}\n", nil,
			[]string{"spec-3way-10query", "spec-3way-15query", "spec-5way-10query", "spec-5way-15query"}},
		{"placeholder for one key, suffix for the other", "name: '{dataset}-{ways}w'\ndataset: {name: kddcup99}\nepisodes: {ways: [3, 5]}\nlearner: {algo: [maml, reptile]}\n", nil,
			[]string{"kddcup99-3w-maml", "kddcup99-5w-maml", "kddcup99-3w-reptile", "kddcup99-5w-reptile"}},
		{"hidden", "name: mlp\ndataset: {name: nsl-kdd}\nmodel: {hidden: [[64], [128, 64]]}\n", nil,
			[]string{"mlp-h64", "mlp-h128x64"}},
		{"a list of one is no grid", "name: one\ndataset: {name: nsl-kdd}\nepisodes: {shots: [1]}\n", nil, []string{"one"}},
		{"placeholder without grid", "name: '{algo}-{shots}shot-{hidden}'\ndataset: {name: nsl-kdd}\n", nil, []string{"protonet-5shot-64"}},
		{"grid from the command line", "dataset: {name: nsl-kdd}\n", []string{"learner.algo=[maml,fomaml]", "episodes.shots=[1,5]"},
			[]string{"spec-maml-1shot", "spec-maml-5shot", "spec-fomaml-1shot", "spec-fomaml-5shot"}},
		{"override replaces a grid", "dataset: {name: nsl-kdd}\nepisodes: {shots: [1, 5]}\n", []string{"episodes.shots=10"}, []string{"spec"}},
		{"anchors", "dataset: {name: nsl-kdd}\nepisodes: {ways: &w [3, 4]}\nlearner: {algo: [maml, anil]}\n", nil,
			[]string{"spec-maml-3way", "spec-maml-4way", "spec-anil-3way", "spec-anil-4way"}},
		{"multitask weights", "name: mt-{binary_weight}\ndataset: {name: nsl-kdd}\nmultitask: {binary_weight: [0, 0.5], category_weight: [0, 1e-3]}\n", nil,
			[]string{"mt-0-cw0", "mt-0-cw0.001", "mt-0.5-cw0", "mt-0.5-cw0.001"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			specs := parseSpec(t, c.spec, c.sets...)
			if got := runNames(specs); !slices.Equal(got, c.want) {
				t.Errorf("names %q, want %q", got, c.want)
			}
		})
	}

	// Each run of a grid carries its own values and everything else alike.
	specs := parseSpec(t, "dataset: {name: nsl-kdd}\nepisodes: {shots: [1, 5]}\nlearner: {algo: [maml, fomaml]}\nseeds: [1, 2]\n")
	for i, want := range []struct {
		algo  string
		shots int
	}{{"maml", 1}, {"maml", 5}, {"fomaml", 1}, {"fomaml", 5}} {
		s := specs[i]
		if s.Learner.Algo != want.algo || s.Episodes.Shots != want.shots || !slices.Equal(s.Seeds, []uint64{1, 2}) {
			t.Errorf("run %d: %s %d-shot seeds %v, want %s %d-shot seeds [1 2]", i, s.Learner.Algo, s.Episodes.Shots, s.Seeds, want.algo, want.shots)
		}
	}
	if specs[0].Model.Hidden[0] = 7; specs[1].Model.Hidden[0] != 64 {
		t.Error("runs of a grid share their hidden slice")
	}
}

func TestOverrides(t *testing.T) {
	base := "dataset: {name: nsl-kdd}\nepisodes:\n  shots: 5\n"
	s := parseSpec(t, base, "episodes.shots=1", "seeds=[1,2,3]", "optimizer.lr=3e-4", "split.val_classes=[back, satan, pod, smurf]",
		"backend.device=auto", "description=a b c")[0]
	if s.Episodes.Shots != 1 || !slices.Equal(s.Seeds, []uint64{1, 2, 3}) || s.Optimizer.LR != 3e-4 ||
		len(s.Split.ValClasses) != 4 || s.Split.ValFraction != 0 || s.Backend.Device != "auto" || s.Description != "a b c" {
		t.Errorf("overrides not applied: %+v", s)
	}
	// Later overrides win; a whole section may be set; an empty section is filled.
	s = parseSpec(t, "dataset: {name: nsl-kdd}\nmodel:\n", "episodes.ways=3", "episodes.ways=4", "model.hidden=[32, 16]", "learner={algo: anil, inner_steps: 2}")[0]
	if s.Episodes.Ways != 4 || !slices.Equal(s.Model.Hidden, []int{32, 16}) || s.Learner.Algo != "anil" || s.Learner.InnerSteps != 2 {
		t.Errorf("overrides not applied: %+v", s)
	}
	// A parsed override is reused for every file and never changed by one.
	section := parseOverrides(t, []string{"learner={algo: anil}", "learner.inner_steps=2"})
	for range 2 {
		specs, err := Parse([]byte(base), "spec.yaml", section...)
		if err != nil || specs[0].Learner.InnerSteps != 2 {
			t.Fatalf("reused section override: %v %+v", err, specs)
		}
	}
	if specs, err := Parse([]byte(base), "spec.yaml", section[0]); err != nil || specs[0].Learner.InnerSteps != 5 {
		t.Errorf("learner={algo: anil} alone: %v, inner_steps %d, want the default 5", err, specs[0].Learner.InnerSteps)
	}
	o := parseOverrides(t, []string{"episodes.queries=10"})
	for range 2 {
		specs, err := Parse([]byte(base), "spec.yaml", o...)
		if err != nil || specs[0].Episodes.Queries != 10 {
			t.Fatalf("reused override: %v %+v", err, specs)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cats := filepath.Join(dir, "cats.csv")
	if err := os.WriteFile(cats, []byte("attack,category\nsmurf,dos\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	full := `name: full-{algo}
description: "every field: set"
dataset: {name: nsl-kdd, train_file: KDDTrain+_20Percent, test_file: KDDTest-21, data_dir: ` + dir + `, categories: ` + cats + `, no_checksum: true}
encoder: {scaling: zscore, log1p: false}
split: {val_classes: [back, satan, pod, smurf], train_exclude: [land], test_include: [saint, mscan, apache2, snmpguess, mailbomb], test_exclude: [xterm], normal: true, min_records: 30, seed: 9}
episodes: {ways: 4, shots: 2, queries: 7, meta_batch: 2, normal_way: true, replacement: true, train_steps: 10, val_every: 5, val_episodes: 3, test_episodes: 4}
model: {hidden: [[32, 16], [8]], activation: tanh}
learner: {algo: [metasgd, finetune], distance: cosine, cosine_scale: 2.5, inner_steps: 2, test_inner_steps: 0, inner_lr: 0.5, finetune_steps: 3, finetune_lr: 1e-3}
optimizer: {name: adam, lr: 1e-4, weight_decay: 0.01, decoupled: true, clip_norm: 1.5, beta1: 0, beta2: 0.99, eps: 1e-6}
backend: {device: auto, threads: 0}
seeds: [3, 1, 18446744073709551615]
`
	var specs []Spec
	specs = append(specs, parseSpec(t, full)...)
	specs = append(specs, parseSpec(t, "dataset: {name: nsl-kdd}\nlearner: {algo: [protonet, maml], engine: gorgonia}\n")...)
	specs = append(specs, parseSpec(t, "dataset: {name: kddcup99}\nmodel: {hidden: []}\nlearner: {algo: nearest-centroid}\nepisodes: {train_steps: 0, val_every: 0}\n")...)
	for _, file := range exampleSpecs(t) {
		s, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s...)
	}
	if len(specs) < 8 {
		t.Fatalf("only %d specs", len(specs))
	}
	for _, s := range specs {
		b, err := s.YAML()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(b, "results/"+s.Name+"/spec.yaml")
		if err != nil {
			t.Fatalf("%s: reading back:\n%v\n%s", s.Name, err, b)
		}
		if len(back) != 1 || !reflect.DeepEqual(back[0], s) {
			t.Errorf("%s: round trip changed the spec:\n%+v\n%+v\n%s", s.Name, back, s, b)
		}
		// Every field is written out.
		for _, key := range fieldKeys(reflect.TypeOf(Spec{}), "") {
			leaf := key[strings.LastIndexByte(key, '.')+1:]
			if !strings.Contains(string(b), leaf+":") {
				t.Errorf("%s: YAML lacks %s", s.Name, key)
			}
		}
	}
}

// exampleSpecs are the shipped specs.
func exampleSpecs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example specs: %v", err)
	}
	return files
}

func TestExamples(t *testing.T) {
	runs := map[string]string{}
	for _, file := range exampleSpecs(t) {
		specs, err := Load(file)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		// Specs live in one folder per data set; a suite folder (reproduce)
		// starts its file names with their data sets instead.
		dir := filepath.Base(filepath.Dir(file))
		base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		for _, s := range specs {
			if s.Dataset.Name != dir && !strings.HasPrefix(base, s.Dataset.Name) {
				t.Errorf("%s: run %s uses %s, not the data set its folder or file is named after", file, s.Name, s.Dataset.Name)
			}
			if prev, dup := runs[s.Name]; dup {
				t.Errorf("run %s is defined by %s and %s", s.Name, prev, file)
			}
			runs[s.Name] = file
		}
	}
	specs, err := Load("nsl-kdd/grid-shots.yaml")
	if err != nil || len(specs) != 6 {
		t.Fatalf("grid-shots: %d runs, %v", len(specs), err)
	}
	quick, err := Load("nsl-kdd/protonet-5way5shot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := quick[0].Episodes
	if q := quick[0]; len(quick) != 1 || q.Learner.Algo != "protonet" || e.Ways != 5 || e.Shots != 5 || e.Queries != 15 || !e.NormalWay || e.TrainSteps > 1000 {
		t.Errorf("quick start spec: %+v", quick[0])
	}
}

func TestConversions(t *testing.T) {
	dir := t.TempDir()
	cats := filepath.Join(dir, "cats.csv")
	if err := os.WriteFile(cats, []byte("smurf,probe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	specs := parseSpec(t, `dataset: {name: nsl-kdd, categories: `+cats+`}
encoder: {scaling: zscore, log1p: false}
split: {val_fraction: 0.4, train_exclude: [land], normal: false, seed: 3}
episodes: {ways: 3, shots: 2, queries: 4, meta_batch: 8, replacement: true}
model: {hidden: [16, 8], activation: tanh}
learner: {algo: [protonet, maml, fomaml, reptile, anil, metasgd, finetune, nearest-centroid], inner_steps: 3}
optimizer: {name: sgd, lr: 0.05}
`)
	if len(specs) != 8 {
		t.Fatalf("%d specs", len(specs))
	}
	for _, s := range specs {
		cfg := s.LearnerConfig(42)
		if cfg.Algo == "finetune" {
			cfg.PretrainClasses = 10
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
		if cfg.InitSeed != 42 || cfg.InnerSteps != 3 || cfg.Optimizer.Name != "sgd" || cfg.Optimizer.LR != 0.05 ||
			!slices.Equal(cfg.Hidden, []int{16, 8}) || cfg.Activation != "tanh" || cfg.Engine != "fused" {
			t.Errorf("%s: config %+v", s.Name, cfg)
		}
		if cfg.Hidden[0] = 99; s.Model.Hidden[0] != 16 {
			t.Error("LearnerConfig shares the hidden slice")
		}
	}
	s := specs[0]
	if sh := s.Shape(125); sh.Ways != 3 || sh.Shots != 2 || sh.Queries != 4 || sh.MetaBatch != 8 || sh.Dim != 125 || sh.Validate() != nil {
		t.Errorf("Shape = %+v", sh)
	}
	sc := s.SamplerConfig(7, 2)
	if sc.Ways != 3 || sc.Shots != 2 || sc.Queries != 4 || sc.MetaBatch != 8 || !sc.Replacement || sc.NormalWay || sc.Seed != 7 || sc.Stream != 2 {
		t.Errorf("SamplerConfig = %+v", sc)
	}
	opt, err := s.ProtocolOptions()
	if err != nil {
		t.Fatal(err)
	}
	if opt.TrainFile != "KDDTrain+" || opt.TestFile != "KDDTest+" || opt.Encoder != (datasets.EncoderOptions{Scaling: datasets.ZScore, NoLog1p: true}) ||
		opt.MinRecords != 1 || !opt.NoNormal || opt.ValFraction != 0.4 || opt.Seed != 3 || !slices.Equal(opt.TrainExclude, []string{"land"}) ||
		opt.Categories.Of("smurf") != "probe" || opt.Categories.Of("neptune") != "dos" {
		t.Errorf("ProtocolOptions = %+v", opt)
	}
	for _, c := range []struct {
		spec string
		want int
	}{
		{"dataset: {name: nsl-kdd}\n", 20},
		{"dataset: {name: nsl-kdd}\nepisodes: {replacement: true}\n", 1},
		{"dataset: {name: nsl-kdd}\nsplit: {min_records: 40}\n", 40},
	} {
		if got := parseSpec(t, c.spec)[0].MinRecords(); got != c.want {
			t.Errorf("%q: MinRecords %d, want %d", c.spec, got, c.want)
		}
	}
}

// A description a block scalar cannot hold (a tab opening a line, a trailing
// newline) reads back the same from the resolved spec.
func TestDescriptionsRoundTrip(t *testing.T) {
	for _, d := range []string{"\tindented note\nsecond line", "\n", "two\nlines\n", "cr\r\nlf", "plain"} {
		s := parseSpec(t, "dataset: {name: nsl-kdd}\n")[0]
		s.Description = d
		y, err := s.YAML()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(y, "spec.yaml")
		if err != nil {
			t.Fatalf("%q: the resolved spec does not parse: %v\n%s", d, err, y)
		}
		if back[0].Description != d {
			t.Errorf("%q read back as %q", d, back[0].Description)
		}
	}
}
