package rollout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/shards"
)

// Request is one rollout task: a group of Settings.Group samples for each
// prompt.
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
	// Settings say how the task samples; SettingsFor resolves them from the
	// run's configuration.
	Settings Settings
}

// Settings are the sampling settings of a rollout task.
type Settings struct {
	// Group is the number of samples per prompt.
	Group int
	// Sampling is how the MLLM writes (max_new_tokens, temperature with 0
	// for greedy, top_p) and, in stage 4, how the frozen DiT draws each
	// chain's image by ODE (dit_steps, cfg, time_shift).
	Sampling config.Sampling
	// SDE is how stage 5 samples its image trajectories.
	SDE SDE
}

// SDE is the sampler of stage 5's trajectories (FlowGRPO).
type SDE struct {
	Steps      int
	NoiseLevel float64
	CFG        float64
	TimeShift  bool
	// SameNoise gives the samples of a group one initial noise.
	SameNoise bool
	// Window lists the stochastic steps; nil: every step (SDEWindow).
	Window []int
}

// SettingsFor resolves the settings of a rollout of phase p from the run
// configuration c; seed is the task's (it places the SDE window). Stage 4
// (mllm-grpo) samples grpo.group chains at grpo's temperature, top_p and
// max_new_tokens and draws them in grpo.image_steps ODE steps
// (sampling.dit_steps when 0) with sampling's cfg and time shift. Stage 5
// (dit-grpo) writes one instruction per prompt the same way (greedily with
// flow_grpo.greedy_instruction) and samples flow_grpo.group trajectories
// by flow_grpo's SDE.
func SettingsFor(c *config.Config, p config.Phase, seed uint64) Settings {
	g, f := c.GRPO, c.FlowGRPO
	write := config.Sampling{MaxNewTokens: g.MaxNewTokens, Temperature: g.Temperature, TopP: g.TopP, DecodeThreads: c.Sampling.DecodeThreads}
	if p == config.PhaseMLLMGRPO {
		write.DiTSteps, write.CFG, write.TimeShift = g.ImageSteps, c.Sampling.CFG, c.Sampling.TimeShift
		if write.DiTSteps == 0 {
			write.DiTSteps = c.Sampling.DiTSteps
		}
		return Settings{Group: g.Group, Sampling: write}
	}
	if f.GreedyInstruction {
		write.Temperature = 0
	}
	return Settings{Group: f.Group, Sampling: write, SDE: SDE{
		Steps: f.Steps, NoiseLevel: f.NoiseLevel, CFG: f.CFG, TimeShift: c.Sampling.TimeShift,
		SameNoise: f.SameNoise, Window: SDEWindow(f, seed),
	}}
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

func (r *Request) validate(b *model.Bundle) error {
	if len(r.Rows) == 0 {
		return fmt.Errorf("rollout task %s: no prompts", r.Task)
	}
	if len(r.GroupIDs) != len(r.Rows) {
		return fmt.Errorf("rollout task %s: %d group ids for %d prompts", r.Task, len(r.GroupIDs), len(r.Rows))
	}
	if r.Settings.Group < 1 {
		return fmt.Errorf("rollout task %s: group size %d", r.Task, r.Settings.Group)
	}
	if b == nil {
		return fmt.Errorf("rollout task %s: no policy loaded", r.Task)
	}
	return nil
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

// encodePNGs encodes images as PNG files.
func encodePNGs(imgs []*image.RGBA) ([][]byte, error) {
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
