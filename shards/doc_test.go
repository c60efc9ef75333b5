package shards

import (
	"os"
	"testing"
)

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/storage.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
