package experiments

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// YAML writes the spec with every field, defaults included, in the order of
// README.md: what a run saves as results/<run>/spec.yaml. Parse reads it back
// to an equal Spec.
func (s Spec) YAML() ([]byte, error) {
	root := encodeStruct(reflect.ValueOf(s))
	root.HeadComment = "Resolved spec of run " + s.Name + ": every field, defaults written out."
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encodeStruct(v reflect.Value) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	t := v.Type()
	for i := range t.NumField() {
		key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: yamlKey(t.Field(i))}
		n.Content = append(n.Content, key, encodeValue(v.Field(i)))
	}
	return n
}

func encodeValue(v reflect.Value) *yaml.Node {
	scalar := func(tag, value string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
	}
	switch v.Kind() {
	case reflect.Struct:
		return encodeStruct(v)
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for i := range v.Len() {
			n.Content = append(n.Content, encodeValue(v.Index(i)))
		}
		return n
	case reflect.String:
		n := scalar("!!str", v.String())
		if strings.ContainsAny(n.Value, "\t\r") || strings.HasSuffix(n.Value, "\n") {
			n.Style = yaml.DoubleQuotedStyle // a block scalar cannot hold these and read back the same
		}
		return n
	case reflect.Int:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case reflect.Uint64:
		return scalar("!!int", strconv.FormatUint(v.Uint(), 10))
	case reflect.Float64:
		f := strconv.FormatFloat(v.Float(), 'g', -1, 64)
		if _, err := strconv.Atoi(f); err == nil {
			return scalar("!!int", f) // "10", not "!!float 10": float keys take integers
		}
		return scalar("!!float", f)
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	}
	panic("experiments: no encoder for " + v.Type().String())
}
