package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// KeyValue is one leaf of a flattened configuration.
type KeyValue struct {
	Key, Value string
}

// Flatten lists every leaf of the configuration as a dotted key and its
// value as YAML text, in the order of the fields (map entries sorted):
// a map's entries become keys of their own ("data.mix.reasoning"), and a
// list is one value in YAML's flow style ("schedule.phases" is
// "[{phase: mllm-grpo, steps: 20}, …]"). Experiment trackers take it as a
// run's parameters.
func (c *Config) Flatten() ([]KeyValue, error) {
	var out []KeyValue
	if err := flatten(reflect.ValueOf(c).Elem(), "", &out); err != nil {
		return nil, err
	}
	return out, nil
}

func flatten(v reflect.Value, prefix string, out *[]KeyValue) error {
	switch {
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			if err := flatten(v.Field(i), join(prefix, name), out); err != nil {
				return err
			}
		}
		return nil
	case v.Kind() == reflect.Map:
		keys := make([]string, 0, v.Len())
		vals := map[string]reflect.Value{}
		for it := v.MapRange(); it.Next(); {
			k := fmt.Sprint(it.Key().Interface())
			keys = append(keys, k)
			vals[k] = it.Value()
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := flatten(vals[k], join(prefix, k), out); err != nil {
				return err
			}
		}
		return nil
	}
	var n yaml.Node
	if err := n.Encode(v.Interface()); err != nil {
		return fmt.Errorf("flatten %s: %w", prefix, err)
	}
	flow(&n)
	b, err := yaml.Marshal(&n)
	if err != nil {
		return fmt.Errorf("flatten %s: %w", prefix, err)
	}
	*out = append(*out, KeyValue{Key: prefix, Value: strings.TrimSpace(string(b))})
	return nil
}

// flow sets YAML's flow style on n and every node under it.
func flow(n *yaml.Node) {
	if n.Kind == yaml.SequenceNode || n.Kind == yaml.MappingNode {
		n.Style |= yaml.FlowStyle
	}
	for _, c := range n.Content {
		flow(c)
	}
}
