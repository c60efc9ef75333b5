package rollout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// Request is one rollout task: a group of Group samples for each prompt.
type Request struct {
	Run     string
	Step    int
	Task    string
	Attempt int
	Phase   config.Phase
	// Rows are the prompts; GroupIDs[i] names the group of Rows[i] (the
	// dataset row index, unique within a step).
	Rows     []datasets.Row
	GroupIDs []int64
	// Seed derives every random draw of the task (sampling, noise): the
	// same request gives the same rows.
	Seed          uint64
	PolicyVersion int64
}

// Stats describe a rollout's throughput.
type Stats struct {
	Samples   int
	Tokens    int // tokens sampled by the MLLM
	Images    int
	GenTime   time.Duration // MLLM generation
	ImageTime time.Duration // DiT sampling
}

// Seeds of one task's random draws: a pure function of the task seed and
// what is drawn, so a re-run task reproduces its rows exactly.
func chainSeed(seed uint64, group int64, sample int) uint64 {
	return mix(seed, 0x636f74, uint64(group), uint64(sample))
}

func noiseSeed(seed uint64, group int64, sample int) uint64 {
	return mix(seed, 0x6e6f697365, uint64(group), uint64(sample))
}

func stepSeed(seed uint64, group int64, sample, step int) uint64 {
	return mix(seed, 0x736465, uint64(group), uint64(sample)<<16|uint64(step))
}

// mix hashes its inputs (SplitMix64 steps).
func mix(xs ...uint64) uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	for _, x := range xs {
		h ^= x + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
		h ^= h >> 30
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 27
		h *= 0x94d049bb133111eb
		h ^= h >> 31
	}
	return h
}

func (r *Request) validate(b *model.Bundle, group int) error {
	if len(r.Rows) == 0 {
		return fmt.Errorf("rollout task %s: no prompts", r.Task)
	}
	if len(r.GroupIDs) != len(r.Rows) {
		return fmt.Errorf("rollout task %s: %d group ids for %d prompts", r.Task, len(r.GroupIDs), len(r.Rows))
	}
	if group < 1 {
		return fmt.Errorf("rollout task %s: group size %d", r.Task, group)
	}
	if b == nil || b.Cfg == nil {
		return fmt.Errorf("rollout task %s: no policy loaded", r.Task)
	}
	return nil
}

// byReference splits the indices of rows into those without and those with
// a reference image: the two take separate model passes (the DiT's
// sequence layout differs). Empty groups are left out.
func byReference(rows []datasets.Row) [][]int {
	var plain, withRef []int
	for i := range rows {
		if len(rows[i].Reference) > 0 {
			withRef = append(withRef, i)
		} else {
			plain = append(plain, i)
		}
	}
	var out [][]int
	for _, g := range [][]int{plain, withRef} {
		if len(g) > 0 {
			out = append(out, g)
		}
	}
	return out
}

// subset returns the rows at idx.
func (r *Request) subset(idx []int) []datasets.Row {
	out := make([]datasets.Row, len(idx))
	for j, i := range idx {
		out[j] = r.Rows[i]
	}
	return out
}

// refImages decodes the reference images of rows, each repeated rep times,
// as one [n, 3, H, W] tensor in [-1, 1] (nil when no row has one).
func refImages(rows []datasets.Row, rep, size int, dev gotch.Device) (*ts.Tensor, error) {
	var pngs [][]byte
	for _, r := range rows {
		if len(r.Reference) == 0 {
			continue
		}
		for range rep {
			pngs = append(pngs, r.Reference)
		}
	}
	if len(pngs) == 0 {
		return nil, nil
	}
	x, err := model.ImagesToTensor(pngs, size, dev)
	if err != nil {
		return nil, err
	}
	defer x.MustDrop()
	return model.PixelSpace{}.Encode(x), nil
}

// splitThinking separates what the MLLM wrote into the chain of thought
// (inside <think>…</think>) and the instruction after it.
func splitThinking(written string) (cot, instruction string) {
	written = strings.ReplaceAll(written, tokenizer.ImEnd, "")
	if k := strings.Index(written, tokenizer.EndThink); k >= 0 {
		cot, instruction = written[:k], written[k+len(tokenizer.EndThink):]
	} else {
		instruction = written
	}
	cot = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(cot), tokenizer.Think))
	return cot, strings.TrimSpace(instruction)
}

// baseRow fills the columns every rollout row carries.
func (r *Request) baseRow(i, sample int, seed uint64) (shards.RolloutRow, error) {
	row := &r.Rows[i]
	spec, err := json.Marshal(row.Spec)
	if err != nil {
		return shards.RolloutRow{}, fmt.Errorf("row %s: spec: %w", row.ID, err)
	}
	return shards.RolloutRow{
		Run: r.Run, Step: int64(r.Step), Phase: string(r.Phase), Task: r.Task, Attempt: int32(r.Attempt),
		GroupID: r.GroupIDs[i], SampleIndex: int32(sample), Scenario: row.Scenario, Prompt: row.Prompt,
		RowID: row.ID, Answer: row.Answer, Spec: string(spec), ReferencePNG: row.Reference,
		NoiseSeed: int64(seed >> 1), PolicyVersion: r.PolicyVersion,
	}, nil
}

func encodePNGs(img *ts.Tensor) ([][]byte, error) {
	imgs, err := model.TensorToImages(img)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(imgs))
	for i, im := range imgs {
		var buf bytes.Buffer
		if err := png.Encode(&buf, im); err != nil {
			return nil, err
		}
		out[i] = buf.Bytes()
	}
	return out, nil
}

// conditions runs the connector (without gradients) on instruction states
// and on empty ones, the unconditional branch of classifier-free guidance.
func conditions(b *model.Bundle, states []*ts.Tensor, dev gotch.Device) (cond, uncond *model.Condition, err error) {
	libtorch.NoGrad(func() {
		cond, err = b.Connector.Forward(states)
		if err != nil {
			return
		}
		empty := make([]*ts.Tensor, len(states))
		for j := range empty {
			empty[j] = ts.MustZeros([]int64{0, int64(b.Connector.In)}, gotch.Float, dev)
		}
		uncond, err = b.Connector.Forward(empty)
		for _, e := range empty {
			e.MustDrop()
		}
		if err != nil {
			cond.Drop()
			cond = nil
		}
	})
	return cond, uncond, err
}
