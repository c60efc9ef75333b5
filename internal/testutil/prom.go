package testutil

import (
	"strconv"
	"strings"
	"testing"
)

// PromSamples parses a Prometheus text exposition (a /metrics reply) into
// its samples, keyed as the exposition spells them: the name with its
// labels in braces, e.g. `thinkgen_train_kl{phase="mllm-grpo"}`.
func PromSamples(t testing.TB, body string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}
