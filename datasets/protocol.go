package datasets

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ProtocolOptions configure NovelAttackSplit. Zero values give the protocol of
// the design document: the data set's default files, min-max encoding, the
// shipped category map, no meta-val classes.
type ProtocolOptions struct {
	Load       LoadOptions
	TrainFile  string // default: the data set's training file
	TestFile   string // default: the data set's test file
	Categories Categories
	// DistinctTrain and DistinctTest leave out the repeated records of the
	// training file or of the test file (Load.Distinct does both).
	DistinctTrain, DistinctTest bool
	// CategoryFile is the file laid over the shipped categories, if any:
	// its names that label nothing become Split.Warnings.
	CategoryFile *CategoryFile
	Encoder      EncoderOptions

	// MinRecords drops classes with fewer records from every pool (usually
	// shots+queries, so that episodes can be drawn without replacement).
	MinRecords int
	// NormalClass is normal traffic's label ("normal" when empty). It may
	// appear in every pool, as a way, without breaking class-disjointness.
	NormalClass string
	// NoNormal leaves normal traffic out of every pool.
	NoNormal bool

	// Val and ValFraction choose the meta-val classes among the meta-train
	// ones (explicit list, or a seeded random fraction); Seed seeds that draw.
	Val         []string
	ValFraction float64
	Seed        uint64

	// TrainExclude and TestExclude drop classes from meta-train and
	// meta-test; TestInclude restricts meta-test to the listed novel classes.
	TrainExclude, TestExclude, TestInclude []string
}

// DistinctChoices are the values of dataset.distinct and split --distinct:
// the files whose repeated records are left out.
var DistinctChoices = []string{"none", "train", "test", "both"}

// DistinctFiles reads one of DistinctChoices as ProtocolOptions'
// DistinctTrain and DistinctTest.
func DistinctFiles(which string) (train, test bool) {
	return which == "train" || which == "both", which == "test" || which == "both"
}

// TrainLoad are the options that load the training file.
func (o ProtocolOptions) TrainLoad() LoadOptions {
	l := o.Load
	l.Distinct = l.Distinct || o.DistinctTrain
	return l
}

// TestLoad are the options that load a test file.
func (o ProtocolOptions) TestLoad() LoadOptions {
	l := o.Load
	l.Distinct = l.Distinct || o.DistinctTest
	return l
}

// Split is a class-disjoint meta-train / meta-val / meta-test split. Train
// and Val are pools over the encoded training file, Test over the encoded
// test file; only the normal class may be shared.
type Split struct {
	Dataset          *Dataset
	TrainFile        string
	TestFile         string
	Encoder          *Encoder
	Train, Val, Test *Pool
	// Dropped lists, per pool name ("train", "test"), the classes left out.
	Dropped map[string][]Dropped
	// TrainRepeats and TestRepeats count the records of each file left
	// out as repeats (TrainLoad and TestLoad).
	TrainRepeats, TestRepeats int
	// Warnings are what looks wrong in the inputs but need not be: the
	// names of the categories file that label no record of either file.
	Warnings []string
}

// NovelAttackSplit builds the novel-attack protocol: the encoder is fitted on
// the training file only; meta-train (and meta-val) classes are the training
// file's labels; meta-test classes are the attack types that occur in the test
// file but never in the training file, drawn from the test file.
func NovelAttackSplit(d *Dataset, opt ProtocolOptions) (*Split, error) {
	if opt.TrainFile == "" {
		opt.TrainFile = d.Train
	}
	if opt.TestFile == "" {
		opt.TestFile = d.Test
	}
	if opt.Categories == nil {
		opt.Categories = DefaultCategories()
	}
	normal := opt.NormalClass
	if normal == "" {
		normal = DefaultNormalClass
	}
	train, err := Load(d, opt.TrainFile, opt.TrainLoad())
	if err != nil {
		return nil, err
	}
	test, err := Load(d, opt.TestFile, opt.TestLoad())
	if err != nil {
		return nil, err
	}
	enc, err := FitEncoder(train, opt.Encoder)
	if err != nil {
		return nil, err
	}
	s := &Split{Dataset: d, TrainFile: opt.TrainFile, TestFile: opt.TestFile, Encoder: enc, Dropped: map[string][]Dropped{},
		TrainRepeats: train.Repeats, TestRepeats: test.Repeats, Warnings: opt.CategoryFile.Unmatched([]string{opt.TrainFile, opt.TestFile}, train, test)}

	// A named normal class that labels nothing is a typo: it would leave
	// the real normal traffic among the attack classes.
	if opt.NormalClass != "" && !slices.Contains(train.LabelNames, normal) && !slices.Contains(test.LabelNames, normal) {
		return nil, fmt.Errorf("normal class %q labels no record of %s or %s", normal, opt.TrainFile, opt.TestFile)
	}
	// A label without a category would be a class of its own, a typo of
	// normal a novel attack type. The normal class named is normal traffic
	// whether or not a mapping says so.
	if _, ok := opt.Categories[normal]; !ok {
		opt.Categories = maps.Clone(opt.Categories)
		opt.Categories[normal] = "normal"
	}
	for _, r := range []*Records{train, test} {
		if err := opt.Categories.Check(r); err != nil {
			return nil, err
		}
	}
	// Every excluded class must occur (NewPool checks), except the implicit
	// normal of NoNormal, which a training file may lack.
	trainExclude := slices.Clone(opt.TrainExclude)
	if opt.NoNormal && slices.Contains(train.LabelNames, normal) {
		trainExclude = append(trainExclude, normal)
	}
	// With no attack type to begin with, the classes too small to keep
	// are not why meta-train has none.
	var attackTypes, excluded int
	for _, n := range train.LabelNames {
		if n != normal {
			attackTypes++
			if slices.Contains(opt.TrainExclude, n) {
				excluded++
			}
		}
	}
	switch {
	case attackTypes == 0:
		return nil, fmt.Errorf("meta-train pool: %s holds no attack records, only normal traffic: there are no meta-train classes", train.Name)
	case excluded == attackTypes:
		return nil, fmt.Errorf("meta-train pool: every attack type of %s is excluded (%d): there are no meta-train classes", train.Name, excluded)
	}
	all, dropped, err := NewPool(train, enc.Transform(train), opt.Categories,
		PoolOptions{MinRecords: opt.MinRecords, Exclude: trainExclude})
	if err != nil {
		return nil, fmt.Errorf("meta-train pool: %w", err)
	}
	s.Dropped["train"] = dropped
	// A meta-val class named but too small for the pools would otherwise
	// read as one the training file lacks.
	for _, dr := range dropped {
		if slices.Contains(opt.Val, dr.Name) && dr.Records < opt.MinRecords {
			return nil, errorOf(fmt.Sprintf("meta-val class %q has %d records, too few for a pool", dr.Name, dr.Records), ErrValClassLeftOut, ErrTooFewClasses)
		}
	}
	var attacks []string
	for _, c := range all.Classes {
		if c.Name != normal {
			attacks = append(attacks, c.Name)
		}
	}
	tr, val, _, err := SplitClasses(attacks, SplitConfig{Val: opt.Val, ValFraction: opt.ValFraction, Seed: opt.Seed})
	if err != nil {
		return nil, fmt.Errorf("meta-val classes: %w", err)
	}
	if !opt.NoNormal && all.ClassIndex(normal) >= 0 {
		tr, val = append(tr, normal), append(val, normal)
	}
	if s.Train, err = all.Subset(tr); err != nil {
		return nil, err
	}
	if len(val) > 0 && !(len(val) == 1 && val[0] == normal) {
		if s.Val, err = all.Subset(val); err != nil {
			return nil, err
		}
	}

	include := NovelLabels(train, test)
	if len(opt.TestInclude) > 0 {
		for _, n := range opt.TestInclude {
			if !slices.Contains(include, n) {
				return nil, fmt.Errorf("meta-test class %q is not a novel attack type of %s (novel: %v)", n, opt.TestFile, include)
			}
		}
		include = slices.Clone(opt.TestInclude)
	}
	// A class of the test file that is no meta-test class (a training
	// attack) would be left out of nothing.
	withNormal := !opt.NoNormal && slices.Contains(test.LabelNames, normal)
	for _, n := range opt.TestExclude {
		if !slices.Contains(include, n) && !(n == normal && withNormal) {
			return nil, errorOf(fmt.Sprintf("class %q to leave out of meta-test is not a meta-test class of %s (they are: %s)",
				n, opt.TestFile, strings.Join(include, ", ")), ErrNotMetaTest)
		}
	}
	if withNormal {
		include = append(include, normal)
	}
	testPool, dropped, err := NewPool(test, enc.Transform(test), opt.Categories,
		PoolOptions{MinRecords: opt.MinRecords, Include: include, Exclude: opt.TestExclude})
	if err != nil {
		return nil, fmt.Errorf("meta-test pool: %w", err)
	}
	s.Test = testPool
	s.Dropped["test"] = dropped
	if err := CheckDisjoint(withoutClass(s.Train, normal), withoutClass(s.Val, normal), withoutClass(s.Test, normal)); err != nil {
		return nil, err
	}
	return s, nil
}

func withoutClass(p *Pool, name string) *Pool {
	if p == nil {
		return nil
	}
	q := &Pool{Dim: p.Dim, X: p.X}
	for _, c := range p.Classes {
		if c.Name != name {
			q.Classes = append(q.Classes, c)
		}
	}
	return q
}
