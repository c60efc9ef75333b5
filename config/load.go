package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load resolves a configuration from one YAML file, or from none when
// path is empty: LoadFiles with that file.
func Load(path string, sets []string) (*Config, error) {
	var paths []string
	if path != "" {
		paths = []string{path}
	}
	return LoadFiles(paths, sets)
}

// LoadFiles resolves a configuration: Default(), then each YAML file of
// paths in order, then each "key=value" of sets in order. A later file
// overrides an earlier one key by key, as sets do: a mapping merges with
// the one below it (a map's entries too), a list or scalar replaces it.
// So an overlay such as configs/tiny-vl.yaml states only what it changes.
// The result is validated.
func LoadFiles(paths []string, sets []string) (*Config, error) {
	cfg := Default()
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := cfg.decodeYAML(path, data); err != nil {
			return nil, err
		}
	}
	for _, s := range sets {
		if err := cfg.Set(s); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		if len(paths) > 0 {
			return nil, fmt.Errorf("%s: %w", strings.Join(paths, " + "), err)
		}
		return nil, err
	}
	return cfg, nil
}

// Parse decodes YAML data over Default() and validates the result; name is
// used in error messages (a file name or "run.json").
func Parse(name string, data []byte) (*Config, error) {
	cfg := Default()
	if err := cfg.decodeYAML(name, data); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// YAML renders the configuration as YAML that Parse reads back to an equal
// Config.
func (c *Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeYAML checks every key of data against the Config type, then decodes
// it over c. Keys absent from data keep their current values.
func (c *Config) decodeYAML(name string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if doc.Kind == 0 { // empty file
		return nil
	}
	if err := checkKeys(name, &doc, reflect.TypeOf(c).Elem(), ""); err != nil {
		return err
	}
	clearMaps(&doc, reflect.ValueOf(c).Elem())
	if err := doc.Decode(c); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// clearMaps empties every map of v that the YAML node n gives a value, so
// that decoding n replaces the map rather than adding to it, as Set does:
// "mix: {reasoning: 3}" in a file is that mix, whatever came before.
// Structs are walked, so the fields a mapping leaves out keep their values.
func clearMaps(n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			clearMaps(c, v)
		}
		return
	}
	if v.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f, ok := fieldByTag(v.Type(), n.Content[i].Value)
		if !ok {
			continue
		}
		switch fv := v.FieldByIndex(f.Index); fv.Kind() {
		case reflect.Map:
			fv.SetZero()
		case reflect.Struct:
			clearMaps(n.Content[i+1], fv)
		}
	}
}

// checkKeys walks a YAML node against type t and reports the first key that
// names no field, with its line.
func checkKeys(name string, n *yaml.Node, t reflect.Type, prefix string) error {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkKeys(name, c, t, prefix); err != nil {
				return err
			}
		}
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%s:%d: %s must be a mapping", name, n.Line, keyOrRoot(prefix))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fieldByTag(t, k.Value)
			if !ok {
				return fmt.Errorf("%s:%d: unknown key %q (known keys of %s: %s)",
					name, k.Line, join(prefix, k.Value), keyOrRoot(prefix), strings.Join(tagNames(t), ", "))
			}
			if err := checkKeys(name, v, f.Type, join(prefix, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil // a scalar where a list belongs: Decode reports it with its line
		}
		for i, c := range n.Content {
			if err := checkKeys(name, c, t.Elem(), fmt.Sprintf("%s.%d", prefix, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(name, n.Content[i+1], t.Elem(), join(prefix, n.Content[i].Value)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Set applies one "key=value" override. The value is read as YAML, so
// "optim.lr=1e-4", "schedule.phases=[{phase: dit-grpo, steps: 5}]" and
// "reward.weights.text=2" all work. The key must name a field.
func (c *Config) Set(kv string) error {
	key, value, ok := strings.Cut(kv, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return fmt.Errorf("--set %q: want key=value", kv)
	}
	v, err := lookup(reflect.ValueOf(c).Elem(), key)
	if err != nil {
		return fmt.Errorf("--set %s: %w", key, err)
	}
	if err := v.assign(value); err != nil {
		return fmt.Errorf("--set %s=%s: %w", key, value, err)
	}
	return nil
}

// Get returns the value of the field a dotted key names, as YAML text.
func (c *Config) Get(key string) (string, error) {
	v, err := lookup(reflect.ValueOf(c).Elem(), key)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", key, err)
	}
	out, err := yaml.Marshal(v.get().Interface())
	if err != nil {
		return "", fmt.Errorf("get %s: %w", key, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// target is a settable place in a Config: a field or slice element, or a
// key of a map (which cannot be addressed, so it is written with SetMapIndex).
type target struct {
	v      reflect.Value // the field; for a map entry, the map
	mapKey *reflect.Value
}

func (t target) get() reflect.Value {
	if t.mapKey != nil {
		if e := t.v.MapIndex(*t.mapKey); e.IsValid() {
			return e
		}
		return reflect.Zero(t.v.Type().Elem())
	}
	return t.v
}

func (t target) assign(value string) error {
	typ := t.v.Type()
	if t.mapKey != nil {
		typ = typ.Elem()
	}
	p := reflect.New(typ)
	// A struct value updates the fields it names ("pretrain.warmup={steps:
	// 5}" keeps batch and lr); a map value replaces the whole map
	// ("grpo.mix={reasoning: 1}" is that mix, not the old one plus
	// reasoning).
	if typ.Kind() != reflect.Map {
		p.Elem().Set(t.get())
	}
	if err := yaml.Unmarshal([]byte(value), p.Interface()); err != nil {
		return fmt.Errorf("not a valid %s: %w", typ, err)
	}
	if t.mapKey != nil {
		if t.v.IsNil() {
			t.v.Set(reflect.MakeMap(t.v.Type()))
		}
		t.v.SetMapIndex(*t.mapKey, p.Elem())
		return nil
	}
	t.v.Set(p.Elem())
	return nil
}

func lookup(v reflect.Value, key string) (target, error) {
	parts := strings.Split(key, ".")
	for i, part := range parts {
		here := strings.Join(parts[:i+1], ".")
		switch v.Kind() {
		case reflect.Struct:
			f, ok := fieldByTag(v.Type(), part)
			if !ok {
				return target{}, fmt.Errorf("unknown key %q (known keys of %s: %s)",
					here, keyOrRoot(strings.Join(parts[:i], ".")), strings.Join(tagNames(v.Type()), ", "))
			}
			v = v.FieldByIndex(f.Index)
		case reflect.Slice:
			n, err := strconv.Atoi(part)
			if err != nil || n < 0 || n >= v.Len() {
				return target{}, fmt.Errorf("unknown key %q: %s has %d entries", here, strings.Join(parts[:i], "."), v.Len())
			}
			v = v.Index(n)
		case reflect.Map:
			if i != len(parts)-1 {
				return target{}, fmt.Errorf("unknown key %q: map entries of %s have no fields", key, strings.Join(parts[:i], "."))
			}
			k := reflect.ValueOf(part).Convert(v.Type().Key())
			return target{v: v, mapKey: &k}, nil
		default:
			return target{}, fmt.Errorf("unknown key %q: %s is a %s, not a section", here, strings.Join(parts[:i], "."), v.Kind())
		}
	}
	return target{v: v}, nil
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag == name && f.IsExported() {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tagNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			names = append(names, tag)
		}
	}
	sort.Strings(names)
	return names
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func keyOrRoot(prefix string) string {
	if prefix == "" {
		return "the config"
	}
	return prefix
}

// ErrInvalid is wrapped by every error Validate returns.
var ErrInvalid = errors.New("thinkgen/config: invalid configuration")
