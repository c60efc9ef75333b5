package config

import (
	"reflect"
	"testing"
)

// TestFlatten checks chosen leaves of a flattened configuration (scalars,
// a duration, map entries, a list in flow style), that every key is
// unique, and that every value reads back through --set to the same
// configuration.
func TestFlatten(t *testing.T) {
	c, err := Load("", []string{"optim.lr=3e-4", "data.mix.reasoning=2", "data.mix.text=0.5", "tracking.mlflow=http://127.0.0.1:5000"})
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := c.Flatten()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range kvs {
		if _, dup := got[kv.Key]; dup {
			t.Errorf("key %s twice", kv.Key)
		}
		got[kv.Key] = kv.Value
	}
	for key, want := range map[string]string{
		"optim.lr":                  "0.0003",
		"run.seed":                  "1",
		"model.mllm.tie_embeddings": "true",
		"reward.timeout":            "30s",
		"data.mix.reasoning":        "2",
		"data.mix.text":             "0.5",
		"tracking.mlflow":           "http://127.0.0.1:5000",
		"tracking.experiment":       "thinkgen",
		"schedule.phases":           "[{phase: mllm-grpo, steps: 20}, {phase: dit-grpo, steps: 20}]",
		"storage.credentials_file":  `""`,
	} {
		if got[key] != want {
			t.Errorf("%s = %q, want %q", key, got[key], want)
		}
	}
	if _, ok := got["reward.remote"]; ok {
		t.Error("reward.remote listed: an empty map has no leaves")
	}
	if n := len(kvs); n < len(leafKeys(reflect.TypeOf(Config{}), ""))-10 {
		t.Errorf("%d keys, fewer than the leaves of Config", n)
	}
	sets := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		sets = append(sets, kv.Key+"="+kv.Value)
	}
	back, err := Load("", sets)
	if err != nil {
		t.Fatalf("set every flattened key: %v", err)
	}
	a, _ := c.YAML()
	b, _ := back.YAML()
	if string(a) != string(b) {
		t.Errorf("flattened and set back:\n%s\nwant\n%s", b, a)
	}
}
