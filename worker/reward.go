package worker

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"time"

	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/task"
)

// reward scores the images of the task's rollout shard and writes each
// one's training reward (reward.Shape) and its components as a reward
// shard.
func (w *Worker) reward(ctx context.Context, t task.Task) (task.Result, error) {
	in, err := readShard(ctx, w.store, t.Inputs[0], shards.Rollout, w.cacheDir)
	if err != nil {
		return task.Result{}, err
	}
	items := make([]reward.Item, len(in))
	for i, r := range in {
		img, err := png.Decode(bytes.NewReader(r.ImagePNG))
		if err != nil {
			return task.Result{}, fmt.Errorf("%s row %s sample %d: image: %w", t.Inputs[0].Key, r.RowID, r.SampleIndex, err)
		}
		it := reward.Item{ID: r.RowID, Scenario: r.Scenario, Spec: []byte(r.Spec), Image: img, Text: r.Instruction, Answer: r.Answer}
		if len(r.ReferencePNG) > 0 {
			var ref image.Image
			if ref, err = png.Decode(bytes.NewReader(r.ReferencePNG)); err != nil {
				return task.Result{}, fmt.Errorf("%s row %s: reference: %w", t.Inputs[0].Key, r.RowID, err)
			}
			it.Reference = ref
		}
		items[i] = it
	}
	start := time.Now()
	res, err := w.rewards.Score(ctx, items)
	if err != nil {
		return task.Result{}, err
	}
	elapsed := time.Since(start)
	out := make([]shards.RewardRow, len(in))
	lambda := w.cfg.Reward.Instruction
	for i, r := range in {
		comp := map[string]float32{"partial": float32(res[i].Partial), "strict": float32(res[i].Strict)}
		for k, v := range res[i].Aux {
			comp[k] = float32(v)
		}
		score, instr, ok, err := reward.Shape(lambda, t.Phase, items[i], res[i])
		if err != nil {
			return task.Result{}, fmt.Errorf("%s row %s sample %d: %w", t.Inputs[0].Key, r.RowID, r.SampleIndex, err)
		}
		if ok {
			comp["instruction"] = float32(instr)
		}
		out[i] = shards.RewardRow{Run: t.Run, Step: int64(t.Step), Task: t.ID, Attempt: int32(t.Attempt),
			GroupID: r.GroupID, SampleIndex: r.SampleIndex, Scenario: r.Scenario, Reward: float32(score),
			Components: comp, Detail: res[i].Err}
	}
	obj, err := putShard(ctx, w, t, shards.Reward, out)
	if err != nil {
		return task.Result{}, err
	}
	m := map[string]float64{"time/score_s": elapsed.Seconds()}
	return task.Result{Outputs: []storage.Object{obj}, Metrics: m}, nil
}
