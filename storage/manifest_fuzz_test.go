package storage

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/internal/alloccap"
)

// FuzzDecodeManifest decodes arbitrary bytes as a manifest: an error or a
// manifest whose every object has a valid key, size and sha256, in order,
// that round-trips through JSON; never a panic, and at most 1 MiB plus 32
// bytes per input byte allocated.
func FuzzDecodeManifest(f *testing.F) {
	m := Manifest{Version: ManifestVersion, Run: "r1", Kind: "step", ID: "3",
		Objects: []Object{
			{Key: "runs/r1/steps/000003/metrics-a1.json", Size: 12, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
			{Key: "runs/r1/steps/000003/rollout-s0-a1.arrow", Size: 0, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		},
		Committed: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	data, err := json.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"version":1,"objects":[{"key":"../x","size":-1,"sha256":"zz"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			m   *Manifest
			err error
		)
		alloccap.Check(t, 1<<20+32*uint64(len(data)), func() { m, err = DecodeManifest("k", data) })
		if err != nil {
			return
		}
		for i, obj := range m.Objects {
			if got, ok := m.Find(obj.Key); !ok || got != obj {
				t.Fatalf("Find(objects[%d].key %q) = %v, %v", i, obj.Key, got, ok)
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := DecodeManifest("k", again)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip of %s: %v", again, err)
		}
	})
}
