package experiments

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxSpecBytes bounds what Load reads of a spec file: a spec is a few
// kilobytes, and a path such as /dev/zero would be read until the memory
// runs out.
const maxSpecBytes = 1 << 20

// Load reads the spec file at path, applies the overrides in order and
// returns one Spec per grid combination. A bad spec gives an ErrorList.
func Load(path string, overrides ...Override) ([]Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSpecBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSpecBytes {
		return nil, ErrorList{{File: path, Msg: fmt.Sprintf("more than %d MiB: not a spec", maxSpecBytes>>20)}}
	}
	return Parse(data, path, overrides...)
}

// Parse is Load on the contents of a file; file is used in messages and,
// without a name key, for the run name.
func Parse(data []byte, file string, overrides ...Override) ([]Spec, error) {
	root, err := parseDocument(data, file)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: file, origin: map[*yaml.Node]string{}, rootLine: root.Line}
	for _, o := range overrides {
		if e := o.apply(root, d.origin); e != nil {
			e.File = file
			d.errs.add(e)
		}
	}
	if err := d.errs.err(); err != nil {
		return nil, err
	}
	return d.expand(root)
}

// parseDocument returns the top-level mapping of a one-document file.
func parseDocument(data []byte, file string) (*yaml.Node, error) {
	fail := func(line int, format string, args ...any) error {
		return ErrorList{{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail(1, "empty spec: want a mapping with keys such as dataset, episodes and learner")
		}
		return nil, yamlError(file, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, fail(extra.Line, "a second YAML document: a spec file holds one")
	case !errors.Is(err, io.EOF):
		return nil, yamlError(file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, fail(1, "empty spec: want a mapping with keys such as dataset, episodes and learner")
	}
	root := resolveAlias(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, fail(root.Line, "empty spec: want a mapping with keys such as dataset, episodes and learner")
	}
	if root.Kind != yaml.MappingNode {
		return nil, fail(root.Line, "the top level is %s; want a mapping with keys such as dataset, episodes and learner", describeNode(root))
	}
	return root, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a syntax error of the YAML parser into an ErrorList entry
// with the file and line.
func yamlError(file string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return ErrorList{{File: file, Line: line, Msg: "YAML syntax: " + m[2]}}
	}
	return ErrorList{{File: file, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}}
}

// Override is one command-line --set key=value. The value is YAML, so a
// flow list (learner.algo=[maml,fomaml]) gives a grid.
type Override struct {
	text  string
	path  []string
	value *yaml.Node
}

// ParseOverride parses a --set argument.
func ParseOverride(s string) (Override, error) {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return Override{}, fmt.Errorf("--set %s: want key=value, e.g. episodes.shots=1", s)
	}
	path := strings.Split(k, ".")
	for _, p := range path {
		if p == "" {
			return Override{}, fmt.Errorf("--set %s: key %q has an empty part", s, k)
		}
	}
	value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	dec := yaml.NewDecoder(strings.NewReader(v))
	var doc, extra yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return Override{}, fmt.Errorf("--set %s: value is not YAML: %s", s, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		// What follows a complete first value (name={algo}x) fails as a
		// second document would; it is a syntax error, not a second value.
		return Override{}, fmt.Errorf("--set %s: value is not YAML: %s; quote text that YAML would read as more, as in --set \"%s='%s'\"",
			s, strings.TrimPrefix(err.Error(), "yaml: "), k, strings.ReplaceAll(strings.TrimSpace(v), "'", "''"))
	default:
		return Override{}, fmt.Errorf("--set %s: the value is more than one YAML document", s)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		value = doc.Content[0]
	}
	return Override{text: s, path: path, value: value}, nil
}

// apply sets the override's key in root, creating sections as needed, and
// marks the nodes it adds as coming from the override.
func (o Override) apply(root *yaml.Node, origin map[*yaml.Node]string) *Error {
	mark := func(n *yaml.Node) {
		var walk func(*yaml.Node)
		walk = func(n *yaml.Node) {
			if n == nil || origin[n] != "" {
				return
			}
			origin[n] = o.text
			for _, c := range n.Content {
				walk(c)
			}
		}
		walk(n)
	}
	n := root
	for i, seg := range o.path {
		last := i == len(o.path)-1
		var child *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == seg {
				if last {
					v := copyNode(o.value)
					n.Content[j+1] = v
					mark(v)
					return nil
				}
				child = resolveAlias(n.Content[j+1])
				if child.Kind == yaml.ScalarNode && child.ShortTag() == "!!null" {
					child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
					n.Content[j+1] = child
					mark(child)
				}
				break
			}
		}
		if child == nil {
			key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: seg}
			child = copyNode(o.value)
			if !last {
				child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			mark(key)
			mark(child)
			n.Content = append(n.Content, key, child)
			if last {
				return nil
			}
		}
		if child.Kind != yaml.MappingNode {
			return &Error{Override: o.text, Key: strings.Join(o.path[:i+1], "."), Msg: fmt.Sprintf("is %s, not a section", describeNode(child))}
		}
		n = child
	}
	return nil
}

// copyNode copies a tree, so that a later override that descends into a
// section set by an earlier one does not change the parsed Override.
func copyNode(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, e := range n.Content {
		c.Content[i] = copyNode(e)
	}
	return &c
}

// srcLoc is where a value came from: a line of the file or an override.
type srcLoc struct {
	line     int
	override string
}

// decoder walks a YAML tree against the Spec struct by reflection, so that
// every error can name the file, the line and the dotted key.
type decoder struct {
	file     string
	origin   map[*yaml.Node]string // nodes added by overrides
	rootLine int
	errs     errorSet

	// Per grid combination: the element chosen for each grid key, and where
	// each key's value is.
	subst map[string]*yaml.Node
	pos   map[string]srcLoc
	// bad holds the keys whose values did not decode, so that the checks
	// after decoding do not report them again.
	bad      map[string]bool
	decoding bool
	// aliasLine is, while a value reached through a YAML alias (*name) is
	// decoded, the alias's line: where the spec uses the value, under the
	// key the messages name. The anchor's line is under another key.
	aliasLine int
}

func (d *decoder) where(n *yaml.Node) srcLoc {
	if o, ok := d.origin[n]; ok {
		return srcLoc{override: o}
	}
	if d.aliasLine > 0 {
		return srcLoc{line: d.aliasLine}
	}
	return srcLoc{line: n.Line}
}

// enterAlias makes n's line the line of what is decoded until the returned
// function is called, when n is an alias written in the file and no outer
// alias is being decoded.
func (d *decoder) enterAlias(n *yaml.Node) (leave func()) {
	if _, over := d.origin[n]; n.Kind != yaml.AliasNode || over || d.aliasLine > 0 {
		return func() {}
	}
	d.aliasLine = n.Line
	return func() { d.aliasLine = 0 }
}

// at is where key's value is; for a key the spec leaves out, the nearest
// enclosing section that it has, else the top of the file.
func (d *decoder) at(key string) srcLoc {
	for k := key; k != ""; k = parentKey(k) {
		if l, ok := d.pos[k]; ok {
			return l
		}
	}
	return srcLoc{line: d.rootLine}
}

// parentKey is "a.b" for "a.b.c" and "a.b[2]", "" for "a".
func parentKey(key string) string {
	return key[:max(0, strings.LastIndexAny(key, ".["))]
}

func (d *decoder) present(key string) bool { _, ok := d.pos[key]; return ok }

func (d *decoder) failAt(l srcLoc, key, format string, args ...any) {
	for k := key; k != ""; k = parentKey(k) {
		if d.bad[k] {
			return
		}
	}
	if d.decoding {
		d.bad[key] = true
	}
	d.errs.add(&Error{File: d.file, Line: l.line, Override: l.override, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// failCombo reports a combination of values that cannot work, under the
// first key, at the first of the keys the spec sets.
func (d *decoder) failCombo(keys []string, format string, args ...any) {
	l := d.at(keys[0])
	for _, k := range keys {
		if d.present(k) {
			l = d.pos[k]
			break
		}
	}
	d.failAt(l, keys[0], format, args...)
}

// fail reports a problem with key's value.
func (d *decoder) fail(key, format string, args ...any) {
	d.failAt(d.at(key), key, format, args...)
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// describeNode names a node's value for "got ..." messages.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!str":
		return shorten(n.Value, strconv.Quote)
	case "!!null":
		if n.Value == "" {
			return "no value"
		}
	}
	return shorten(n.Value, asIs)
}

// maxShown is how many characters of a value an error message quotes; a
// file that is not a spec at all (a multi-line scalar) would otherwise be
// echoed whole.
const maxShown = 60

func asIs(s string) string { return s }

// shorten formats s, or its first maxShown characters and its length.
func shorten(s string, format func(string) string) string {
	r := []rune(s)
	if len(r) <= maxShown {
		return format(s)
	}
	return fmt.Sprintf("%s... (%d characters)", format(string(r[:maxShown])), len(r))
}

// outOfRange reports whether s is a number too large for a field of kind k
// (a float beyond float64, which YAML then reads as a string; an integer
// beyond int or uint64).
func outOfRange(k reflect.Kind, s string) bool {
	var err error
	switch k {
	case reflect.Int:
		_, err = strconv.ParseInt(s, 10, strconv.IntSize)
	case reflect.Uint64:
		_, err = strconv.ParseUint(s, 10, 64)
	case reflect.Float64:
		_, err = strconv.ParseFloat(s, 64)
	default:
		return false
	}
	return errors.Is(err, strconv.ErrRange)
}

func yamlKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, prefix string) {
	t := v.Type()
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i] = yamlKey(t.Field(i))
	}
	if n.Kind != yaml.MappingNode {
		d.failAt(d.where(n), prefix, "want a mapping with keys %s; got %s", strings.Join(keys, ", "), describeNode(n))
		return
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.failAt(d.where(k), prefix, "want a key name, got %s", describeNode(k))
			continue
		}
		key := joinKey(prefix, k.Value)
		if k.ShortTag() == "!!merge" {
			d.failAt(d.where(k), key, "merge keys are not supported; write the keys out")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.failAt(d.where(k), key, "duplicate key (first at line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		fi := -1
		for j, name := range keys {
			if name == k.Value {
				fi = j
			}
		}
		if fi < 0 {
			d.failAt(d.where(k), key, "unknown key%s", didYouMean(k.Value, keys))
			continue
		}
		d.decodeValue(val, v.Field(fi), key)
	}
}

func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, key string) {
	if s, ok := d.subst[key]; ok {
		n = s
	}
	defer d.enterAlias(n)()
	n = resolveAlias(n)
	d.pos[key] = d.where(n)
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, key)
	case reflect.Slice:
		d.decodeList(n, v, key)
	default:
		d.decodeScalar(n, v, key)
	}
}

// decodeList accepts a list, a single value (a list of one) or no value (an
// empty list).
func (d *decoder) decodeList(n *yaml.Node, v reflect.Value, key string) {
	var elems []*yaml.Node
	switch {
	case n.Kind == yaml.SequenceNode:
		elems = n.Content
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
	case n.Kind == yaml.ScalarNode:
		elems = []*yaml.Node{n}
	default:
		d.failAt(d.where(n), key, "want a list, got %s", describeNode(n))
		return
	}
	if len(elems) == 0 {
		v.SetZero()
		return
	}
	out := reflect.MakeSlice(v.Type(), len(elems), len(elems))
	for i, e := range elems {
		leave := d.enterAlias(e)
		e = resolveAlias(e)
		ekey := fmt.Sprintf("%s[%d]", key, i)
		d.pos[ekey] = d.where(e)
		d.decodeScalar(e, out.Index(i), ekey)
		leave()
	}
	v.Set(out)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, key string) {
	var want string
	switch v.Kind() {
	case reflect.String:
		want = "a string"
	case reflect.Int:
		want = "an integer"
	case reflect.Uint64:
		want = "a non-negative integer"
	case reflect.Float64:
		want = "a number"
	case reflect.Bool:
		want = "true or false"
	default:
		panic("experiments: no decoder for " + v.Type().String())
	}
	bad := func() {
		if n.Kind == yaml.ScalarNode && outOfRange(v.Kind(), n.Value) {
			d.failAt(d.where(n), key, "want %s, got %s, which is out of range", want, shorten(n.Value, asIs))
			return
		}
		hint := ""
		if v.Kind() == reflect.String && n.Style&yaml.FlowStyle != 0 {
			hint = ` (a string that starts with { or [ needs quotes: name: "{algo}-5shot")`
		}
		d.failAt(d.where(n), key, "want %s, got %s%s", want, describeNode(n), hint)
	}
	if n.Kind != yaml.ScalarNode {
		bad()
		return
	}
	tag := n.ShortTag()
	switch v.Kind() {
	case reflect.String:
		switch tag {
		case "!!str":
			v.SetString(n.Value)
		case "!!null": // "key:" with no value clears a string
			v.SetString("")
		default:
			bad()
		}
	case reflect.Int:
		var i int64
		if tag != "!!int" || n.Decode(&i) != nil || int64(int(i)) != i {
			bad()
			return
		}
		v.SetInt(i)
	case reflect.Uint64:
		var u uint64
		if tag != "!!int" || n.Decode(&u) != nil {
			bad()
			return
		}
		v.SetUint(u)
	case reflect.Float64:
		var f float64
		if (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			bad()
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.failAt(d.where(n), key, "want a finite number, got %s", n.Value)
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		var b bool
		if tag != "!!bool" || n.Decode(&b) != nil {
			bad()
			return
		}
		v.SetBool(b)
	}
}
