package experiments

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// gridKeys are the keys that may hold a list of values, one run each. Runs
// are expanded in this order (the last key varies fastest) and names get
// suffixes in this order.
var gridKeys = []string{"learner.algo", "model.hidden", "episodes.ways", "episodes.shots", "episodes.queries",
	"multitask.binary_weight", "multitask.category_weight"}

// placeholders are the {name} fields a run name may use, per grid key.
var placeholders = map[string]string{
	"learner.algo": "algo", "model.hidden": "hidden",
	"episodes.ways": "ways", "episodes.shots": "shots", "episodes.queries": "queries",
	"multitask.binary_weight": "binary_weight", "multitask.category_weight": "category_weight",
}

type gridAxis struct {
	key    string
	values []*yaml.Node
}

// lookupKeyNode returns the value of a dotted key, or nil.
func lookupKeyNode(root *yaml.Node, key string) *yaml.Node {
	n := root
	for _, seg := range strings.Split(key, ".") {
		n = resolveAlias(n)
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return resolveAlias(n)
}

// axes finds the grid keys that hold lists. model.hidden is a list already,
// so only a list of lists makes it a grid.
func (d *decoder) axes(root *yaml.Node) []gridAxis {
	var out []gridAxis
	for _, key := range gridKeys {
		n := lookupKeyNode(root, key)
		if n == nil || n.Kind != yaml.SequenceNode {
			continue
		}
		if key == "model.hidden" {
			nested := false
			for _, e := range n.Content {
				nested = nested || resolveAlias(e).Kind == yaml.SequenceNode
			}
			if !nested {
				continue
			}
			for i, e := range n.Content {
				if e = resolveAlias(e); e.Kind != yaml.SequenceNode {
					d.failAt(d.where(e), fmt.Sprintf("%s[%d]", key, i),
						"want a list of widths (a grid of hidden layers is a list of lists), got %s", describeNode(e))
				}
			}
		}
		if len(n.Content) == 0 {
			d.failAt(d.where(n), key, "empty list: want a value, or a list of values for a grid")
			continue
		}
		seen := map[string]int{}
		for i, e := range n.Content {
			c := gridValueText(resolveAlias(e))
			if j, dup := seen[c]; dup {
				d.failAt(d.where(resolveAlias(e)), fmt.Sprintf("%s[%d]", key, i), "%s is listed twice (also %s[%d])", c, key, j)
			}
			seen[c] = i
		}
		out = append(out, gridAxis{key: key, values: n.Content})
	}
	return out
}

// gridValueText is a grid value as text, to spot repeats.
func gridValueText(n *yaml.Node) string {
	if n.Kind != yaml.SequenceNode {
		return n.Value
	}
	parts := make([]string, len(n.Content))
	for i, e := range n.Content {
		parts[i] = resolveAlias(e).Value
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// maxGridRuns bounds the runs one spec may expand to: a grid is decoded
// and checked run by run, and a product of long lists is a mistake rather
// than a plan.
const maxGridRuns = 10000

// checkGridSize refuses a grid of more than maxGridRuns runs, naming each
// axis and its length.
func (d *decoder) checkGridSize(root *yaml.Node, axes []gridAxis) error {
	runs := 1
	parts := make([]string, len(axes))
	for i, a := range axes {
		runs = min(runs*len(a.values), maxGridRuns+1) // at most 10,001 × a list's length: no overflow
		parts[i] = fmt.Sprintf("%s %d", a.key, len(a.values))
	}
	if runs <= maxGridRuns {
		return nil
	}
	d.failAt(d.where(lookupKeyNode(root, axes[0].key)), axes[0].key,
		"the grid has more than %d runs (%s): split it into several specs", maxGridRuns, strings.Join(parts, " × "))
	return d.errs.err()
}

// expand decodes the tree once per grid combination.
func (d *decoder) expand(root *yaml.Node) ([]Spec, error) {
	axes := d.axes(root)
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	if err := d.checkGridSize(root, axes); err != nil {
		return nil, err
	}
	varied := map[string]bool{}
	for _, a := range axes {
		varied[a.key] = len(a.values) > 1
	}
	var specs []Spec
	seen := map[string]bool{}
	idx := make([]int, len(axes))
	for {
		d.subst = map[string]*yaml.Node{}
		for i, a := range axes {
			d.subst[a.key] = a.values[idx[i]]
		}
		d.pos, d.bad = map[string]srcLoc{}, map[string]bool{}
		s := Default()
		before := d.errs.n
		d.decoding = true
		d.decodeStruct(root, reflect.ValueOf(&s).Elem(), "")
		d.decoding = false
		d.finish(&s, varied)
		if seen[s.Name] && d.errs.n == before {
			d.fail("name", "%q names two runs of the grid", s.Name)
		}
		seen[s.Name] = true
		specs = append(specs, s)

		i := len(idx) - 1
		for ; i >= 0; i-- {
			if idx[i]++; idx[i] < len(axes[i].values) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			break
		}
	}
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return specs, nil
}

var (
	placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)
	runNameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
)

// name resolves the run name: the name key or the file's base name, with
// {placeholders} filled in and a suffix for each varied grid key that no
// placeholder shows, so that every run of a grid has its own name.
func (d *decoder) name(s *Spec, varied map[string]bool) {
	tmpl, from := s.Name, ""
	if tmpl == "" {
		from = " (the file's name; a name key gives the run another)"
		base := filepath.Base(d.file)
		tmpl = strings.TrimSuffix(base, filepath.Ext(base))
		if d.file == "" || tmpl == "" || tmpl == "." {
			d.fail("name", "required: there is no file name to take it from")
			return
		}
	}
	values := map[string]string{
		"algo": s.Learner.Algo, "hidden": hiddenName(s.Model.Hidden),
		"ways": strconv.Itoa(s.Episodes.Ways), "shots": strconv.Itoa(s.Episodes.Shots),
		"queries": strconv.Itoa(s.Episodes.Queries), "dataset": s.Dataset.Name,
		"binary_weight":   weightName(s.Multitask.BinaryWeight),
		"category_weight": weightName(s.Multitask.CategoryWeight),
	}
	used := map[string]bool{}
	var unknown []string
	name := placeholderRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		p := m[1 : len(m)-1]
		v, ok := values[p]
		if !ok {
			unknown = append(unknown, m)
			return m
		}
		used[p] = true
		return v
	})
	if len(unknown) > 0 {
		d.fail("name", "unknown placeholder %s (known: {algo}, {binary_weight}, {category_weight}, {dataset}, {hidden}, {queries}, {shots}, {ways})", strings.Join(unknown, ", "))
		return
	}
	for _, key := range gridKeys {
		if varied[key] && !used[placeholders[key]] {
			switch key {
			case "learner.algo":
				name += "-" + s.Learner.Algo
			case "model.hidden":
				name += "-h" + hiddenName(s.Model.Hidden)
			case "episodes.ways":
				name += fmt.Sprintf("-%dway", s.Episodes.Ways)
			case "episodes.shots":
				name += fmt.Sprintf("-%dshot", s.Episodes.Shots)
			case "episodes.queries":
				name += fmt.Sprintf("-%dquery", s.Episodes.Queries)
			case "multitask.binary_weight":
				name += "-bw" + weightName(s.Multitask.BinaryWeight)
			case "multitask.category_weight":
				name += "-cw" + weightName(s.Multitask.CategoryWeight)
			}
		}
	}
	if !runNameRE.MatchString(name) {
		d.fail("name", "%q%s: want letters, digits, '.', '_', '+' and '-' only, starting with a letter or digit (it names the results folder)", name, from)
		return
	}
	s.Name = name
}

// hiddenName is "128x64" for hidden widths [128, 64], "0" for none.
func hiddenName(h []int) string {
	if len(h) == 0 {
		return "0"
	}
	parts := make([]string, len(h))
	for i, w := range h {
		parts[i] = strconv.Itoa(w)
	}
	return strings.Join(parts, "x")
}

// weightName is a loss weight as a run name shows it: 0.5, 1, 1e-05.
func weightName(w float64) string { return strconv.FormatFloat(w, 'g', -1, 64) }
