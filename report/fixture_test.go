package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// fixture describes a run written into a store by writeRun: the files a
// real run leaves (run.json, per step a rollout, a reward and a metrics
// shard under a committed manifest, eval scores and grids), with made-up
// contents.
type fixture struct {
	run       string
	committed int
	// prompt and cot are the texts of every sample (to test escaping).
	prompt, cot string
	// evals are the versions with eval/<version>.json and grids.
	evals   []int
	updated time.Time
}

// tinyConfig is configs/tiny.yaml with a 2+1 step schedule.
func tinyConfig(t *testing.T) *config.Config {
	t.Helper()
	c, err := config.Load(filepath.Join("..", "configs", "tiny.yaml"), []string{"schedule.phases.0.steps=2", "schedule.phases.1.steps=1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testPNG(t *testing.T, c color.RGBA) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := 0; i < 64; i++ {
		img.Set(i%8, i/8, c)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeRun(t *testing.T, st storage.Store, f fixture) {
	t.Helper()
	ctx := context.Background()
	cfg := tinyConfig(t)
	plan, err := schedule.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	yml, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if f.updated.IsZero() {
		f.updated = time.Now().UTC()
	}
	rs := runs.State{Version: runs.StateVersion, Run: f.run, Config: string(yml), Seed: 1,
		Steps: len(plan), Committed: f.committed, PolicyVersion: f.committed, Kept: []int{0, f.committed},
		Started: f.updated.Add(-time.Duration(f.committed) * time.Minute), Updated: f.updated}
	if f.committed > 0 {
		rs.Phase = plan[f.committed-1].Phase
	}
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, runs.StateKey(f.run), bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	img := testPNG(t, color.RGBA{200, 30, 30, 255})
	for step := 1; step <= f.committed; step++ {
		p := plan[step-1]
		batch := storage.NewBatch(st, storage.StepManifestKey(f.run, step), f.run, "step", strconv.Itoa(step))
		_, err := shards.Put(ctx, batch, storage.ShardKey(f.run, step, "rollout", "r0", 1, 1), shards.Rollout, shards.WriterOptions{}, t.TempDir(), func(w *shards.Writer[shards.RolloutRow]) error {
			for g := int64(0); g < 6; g++ {
				for s := int32(0); s < 2; s++ {
					r := shards.RolloutRow{Run: f.run, Step: int64(step), Phase: string(p.Phase), Task: "r0", Attempt: 1, GroupID: g, SampleIndex: s,
						Scenario: "composition", Prompt: fmt.Sprintf("%s #%d", f.prompt, g), CoT: f.cot, Instruction: "draw a red square",
						ImagePNG: img, PolicyVersion: int64(step - 1)}
					if g == 1 && s == 1 {
						r.ImagePNG = []byte("not a png")
					}
					if err := w.Write(&r); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = shards.Put(ctx, batch, storage.ShardKey(f.run, step, "reward", "s0", 1, 1), shards.Reward, shards.WriterOptions{}, t.TempDir(), func(w *shards.Writer[shards.RewardRow]) error {
			for g := int64(0); g < 6; g++ {
				for s := int32(0); s < 2; s++ {
					r := shards.RewardRow{Run: f.run, Step: int64(step), Task: "s0", Attempt: 1, GroupID: g, SampleIndex: s, Scenario: "composition",
						Reward: float32(g)/10 + float32(s)/100, Components: map[string]float32{}, Detail: "1 of 2 objects <found>"}
					if err := w.Write(&r); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		metrics := map[string]float64{"reward/mean": 0.1 * float64(step), "reward/composition/mean": 0.2 * float64(step),
			"loss/kl": 0.01 * float64(step), "rollout/cot_tokens": 30 + float64(step), "rollout/tokens_per_s": 1000,
			"rollout/images_per_s": 3, "time/rollout_s": 5, "time/reward_s": 0.1, "time/learn_s": 2, "time/storage_s": 0.02, "time/step_s": 7.2}
		_, err = shards.Put(ctx, batch, storage.ShardKey(f.run, step, "metrics", "controller", 1, 1), shards.Metrics, shards.WriterOptions{}, t.TempDir(), func(w *shards.Writer[shards.MetricRow]) error {
			for name, v := range metrics {
				if err := w.Write(&shards.MetricRow{Run: f.run, Step: int64(step), Phase: string(p.Phase), Name: name, Value: v, TimeMS: f.updated.UnixMilli()}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := batch.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range f.evals {
		scores := map[string][]reward.Summary{}
		for i, mode := range []string{"direct", "think"} {
			scores[mode] = []reward.Summary{
				{Scenario: "composition", N: 6, Score: 0.1*float64(v) + 0.01*float64(i), Strict: 0.05 * float64(v)},
				{Scenario: "text", N: 6, Score: 0.3 - 0.05*float64(v), Strict: 0},
			}
		}
		b, err := json.Marshal(scores)
		if err != nil {
			t.Fatal(err)
		}
		prefix := fmt.Sprintf("%seval/%06d", storage.RunPrefix(f.run), v)
		if err := st.Put(ctx, prefix+".json", bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		for _, mode := range []string{"direct", "think"} {
			if err := st.Put(ctx, prefix+"-grid-"+mode+".png", bytes.NewReader(testPNG(t, color.RGBA{30, 30, 200, 255}))); err != nil {
				t.Fatal(err)
			}
		}
	}
}
