package datasets

import (
	"strings"
	"testing"
)

func classNamesOf(p *Pool) []string {
	if p == nil {
		return nil
	}
	var n []string
	for _, c := range p.Classes {
		n = append(n, c.Name)
	}
	return n
}

func TestNovelAttackSplitNSLKDD(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	s, err := NovelAttackSplit(d, ProtocolOptions{MinRecords: 20, ValFraction: 0.25, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	// KDDTrain+ attack types with >= 20 records: 13 of 22 (land has 18),
	// plus normal; round(0.25*13) = 3 attacks go to meta-val.
	if got := len(s.Train.Classes) + len(s.Val.Classes) - 2; got != 13 {
		t.Errorf("%d meta-train+val attack classes, want 13: train %v val %v", got, classNamesOf(s.Train), classNamesOf(s.Val))
	}
	if len(s.Val.Classes) != 4 || s.Val.ClassIndex("normal") < 0 {
		t.Errorf("meta-val %v, want 3 attacks and normal", classNamesOf(s.Val))
	}
	// Novel types in KDDTest+ with >= 20 records: apache2 httptunnel mailbomb
	// mscan processtable saint snmpgetattack snmpguess (8), plus normal.
	want := "apache2 httptunnel mailbomb mscan normal processtable saint snmpgetattack snmpguess"
	if got := strings.Join(classNamesOf(s.Test), " "); got != want {
		t.Errorf("meta-test classes\n got %s\nwant %s", got, want)
	}
	if s.Test.Dim != 125 || s.Train.Dim != 125 {
		t.Errorf("dims %d/%d, want 125", s.Train.Dim, s.Test.Dim)
	}
	var droppedTest []string
	for _, dr := range s.Dropped["test"] {
		droppedTest = append(droppedTest, dr.Name)
	}
	if strings.Join(droppedTest, " ") != "named ps sendmail sqlattack udpstorm worm xlock xsnoop xterm" {
		t.Errorf("dropped from meta-test: %v", droppedTest)
	}
	// The same seed gives the same split; the split is class-disjoint.
	s2, _ := NovelAttackSplit(d, ProtocolOptions{MinRecords: 20, ValFraction: 0.25, Seed: 7})
	if strings.Join(classNamesOf(s2.Val), " ") != strings.Join(classNamesOf(s.Val), " ") {
		t.Error("meta-val classes differ for the same seed")
	}
	if err := CheckDisjoint(withoutClass(s.Train, "normal"), withoutClass(s.Val, "normal"), withoutClass(s.Test, "normal")); err != nil {
		t.Error(err)
	}
}

func TestNovelAttackSplitErrors(t *testing.T) {
	d, _ := Lookup("nsl-kdd")
	if _, err := NovelAttackSplit(d, ProtocolOptions{TestInclude: []string{"neptune"}}); err == nil || !strings.Contains(err.Error(), `"neptune" is not a novel attack type`) {
		t.Errorf("non-novel meta-test class: %v", err)
	}
	if _, err := NovelAttackSplit(d, ProtocolOptions{Val: []string{"mscan"}}); err == nil || !strings.Contains(err.Error(), "mscan") {
		t.Errorf("meta-val class not in training file: %v", err)
	}
	s, err := NovelAttackSplit(d, ProtocolOptions{NoNormal: true, MinRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Pool{s.Train, s.Test} {
		if p.ClassIndex("normal") >= 0 {
			t.Error("NoNormal pool holds normal")
		}
	}
	// A misspelt normal class would make normal traffic an attack class.
	if _, err := NovelAttackSplit(d, ProtocolOptions{NormalClass: "Normal"}); err == nil ||
		!strings.Contains(err.Error(), `normal class "Normal" labels no record of KDDTrain+ or KDDTest+`) {
		t.Errorf("misspelt normal class: %v", err)
	}
	// So would an excluded class that is not in the training file be
	// silently kept out of nothing.
	if _, err := NovelAttackSplit(d, ProtocolOptions{TrainExclude: []string{"neptun"}}); err == nil || !strings.Contains(err.Error(), `"neptun"`) {
		t.Errorf("misspelt excluded class: %v", err)
	}
	// Excluding normal explicitly and by NoNormal at once is not an error.
	if _, err := NovelAttackSplit(d, ProtocolOptions{NoNormal: true, TrainExclude: []string{"normal"}, MinRecords: 100}); err != nil {
		t.Errorf("normal excluded twice: %v", err)
	}
}
