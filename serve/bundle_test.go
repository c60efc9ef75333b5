package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
)

// TestBundleMemoryStaysFlat serves the shipped base/tiny and sends rounds
// of image and chat requests: after a warm-up, ten more rounds run with
// the garbage collector off (gotch frees a tensor nobody dropped when the
// collector finalizes it, which would hide the leak) and leave the live
// gotch tensors as they were, and the C heap plus Go heap (collected
// again) within 2 MiB (one leaked image batch or KV cache would be
// several MiB a round).
func TestBundleMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("generates with base/tiny")
	}
	dir := filepath.Join("..", "base", "tiny")
	_, cfg, err := model.ReadBundleManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := model.TokenizerFor(cfg.Model.MLLM)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sampling
	s.DiTSteps, s.MaxNewTokens = 4, 24
	m := ModelFor("tiny", cfg, tok, s)
	srv, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng := make(chan Engine, 1)
	r := startWith(t, srv, func() (Engine, error) {
		if err := libtorch.SetThreads(1); err != nil {
			return nil, err
		}
		b, _, err := model.LoadBundle(dir, gotch.CPU)
		if err != nil {
			return nil, err
		}
		e := NewBundleEngine(b, s)
		eng <- e
		return e, nil
	})
	<-eng
	round := func() {
		t.Helper()
		code, _, body := r.call(t, "POST", PathImages, "", `{"prompt": "two red circles and a blue square", "n": 2, "seed": 1}`)
		var img imagesResponse
		if err := json.Unmarshal(body, &img); code != 200 || err != nil || len(img.Data) != 2 {
			t.Fatalf("images: %d %s", code, body)
		}
		raw, _ := base64.StdEncoding.DecodeString(img.Data[0].B64JSON)
		if p, err := png.Decode(bytes.NewReader(raw)); err != nil || p.Bounds().Dx() != cfg.Model.DiT.ImageSize {
			t.Fatalf("image: %v, want a %d-pixel PNG", err, cfg.Model.DiT.ImageSize)
		}
		code, _, body = r.call(t, "POST", PathChat, "", `{"messages": [{"role": "user", "content": "how many sides has a triangle?"}], "max_tokens": 16, "seed": 2}`)
		var chat chatResponse
		if err := json.Unmarshal(body, &chat); code != 200 || err != nil || chat.Usage.CompletionTokens == 0 || chat.Usage.CompletionTokens > 16 {
			t.Fatalf("chat: %d %s", code, body)
		}
		if msg := chat.Choices[0].Message; strings.TrimSpace(msg.Content+msg.ReasoningContent) == "" {
			t.Fatalf("chat wrote nothing: %s", body)
		}
	}
	measure := func() (int, int64) {
		// Collections a moment apart: the first queues the finalizers of
		// gotch's objects (which free C memory), which then run.
		for range 3 {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
		}
		libtorch.RSS() // returns freed Go and C heap first
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return libtorch.LiveTensors(), libtorch.CHeapInUse() + int64(ms.HeapInuse)
	}
	for range 3 {
		round()
	}
	tensors0, held0 := measure()
	gc := debug.SetGCPercent(-1)
	for range 10 {
		round()
	}
	tensors1 := libtorch.LiveTensors()
	debug.SetGCPercent(gc)
	_, held1 := measure()
	t.Logf("live tensors %d → %d, C+Go heap in use %.1f → %.1f MiB", tensors0, tensors1, float64(held0)/(1<<20), float64(held1)/(1<<20))
	if tensors1 != tensors0 {
		t.Errorf("live tensors %d after the warm-up, %d after ten more rounds", tensors0, tensors1)
	}
	if grow := held1 - held0; grow > 2<<20 {
		t.Errorf("allocated memory grew %.2f MiB over ten rounds", float64(grow)/(1<<20))
	}
}
