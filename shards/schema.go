package shards

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/apache/arrow/go/v17/arrow"
)

// Metadata keys every thinkgen shard carries in its Arrow schema.
const (
	MetaSchema  = "thinkgen.schema"         // the schema's name, e.g. "rollout"
	MetaVersion = "thinkgen.schema_version" // its version, a decimal integer
)

// Schema is one versioned shard schema for rows of type R. The schemas are
// [Rollout], [Reward], [Advantage] and [Metrics]; docs/storage.md
// documents their columns.
type Schema[R any] struct {
	// Name and Version are written to the Arrow schema's metadata and
	// checked on read.
	Name    string
	Version int
	cols    []column[R]
	arrow   *arrow.Schema
}

func newSchema[R any](name string, version int, cols ...column[R]) *Schema[R] {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = c.field
	}
	md := arrow.NewMetadata([]string{MetaSchema, MetaVersion}, []string{name, strconv.Itoa(version)})
	return &Schema[R]{Name: name, Version: version, cols: cols, arrow: arrow.NewSchema(fields, &md)}
}

// Arrow returns the Arrow schema, metadata included.
func (s *Schema[R]) Arrow() *arrow.Schema { return s.arrow }

// Columns returns the column names in order.
func (s *Schema[R]) Columns() []string {
	out := make([]string, len(s.cols))
	for i, c := range s.cols {
		out[i] = c.field.Name
	}
	return out
}

func (s *Schema[R]) column(name string) (int, bool) {
	for i, c := range s.cols {
		if c.field.Name == name {
			return i, true
		}
	}
	return 0, false
}

// RolloutRow is one sampled answer of a rollout: one chain of thought
// (MLLM phase) or one SDE image trajectory (DiT phase) of a group.
type RolloutRow struct {
	Run     string
	Step    int64
	Phase   string // "mllm-grpo" or "dit-grpo"
	Task    string
	Attempt int32
	// GroupID names the prompt's group; SampleIndex is 0..G-1 within it.
	GroupID     int64
	SampleIndex int32
	Scenario    string
	Prompt      string
	// RowID names the dataset row the prompt came from; Answer is its
	// reference answer and Spec its target spec (JSON), which the reward
	// worker scores against, so that a shard is scored on its own.
	RowID  string
	Answer string
	Spec   string
	// CoT is the text inside <think>…</think>; Instruction the answer after it.
	CoT         string
	Instruction string
	// TokenIDs are the sampled tokens; TokenLogProbs their log-probabilities
	// under the sampling policy (nil in the DiT phase).
	TokenIDs      []int32
	TokenLogProbs []float32
	// ImagePNG is the generated image; ReferencePNG the input image of an
	// editing scenario (nil otherwise).
	ImagePNG     []byte
	ReferencePNG []byte
	// The SDE trajectory (DiT phase; nil otherwise): the latents x_0 … x_K
	// of the K denoising steps (K+1 of them: the initial noise first, the
	// final sample last) and, per step k, the mean of p(x_{k+1}|x_k) and the
	// log-probability of the sampled x_{k+1}. Latents and means are
	// flattened in LatentShape (C, H, W) order.
	LatentShape []int32
	SDELatents  [][]float32
	SDEMeans    [][]float32
	SDELogProbs []float32
	// NoiseSeed seeds the initial noise (shared by a group's samples).
	NoiseSeed     int64
	PolicyVersion int64
}

// Rollout is the schema of rollout shards.
var Rollout = newSchema("rollout", 2,
	utf8Col("run", func(r *RolloutRow) *string { return &r.Run }),
	int64Col("step", func(r *RolloutRow) *int64 { return &r.Step }),
	utf8Col("phase", func(r *RolloutRow) *string { return &r.Phase }),
	utf8Col("task", func(r *RolloutRow) *string { return &r.Task }),
	int32Col("attempt", func(r *RolloutRow) *int32 { return &r.Attempt }),
	int64Col("group_id", func(r *RolloutRow) *int64 { return &r.GroupID }),
	int32Col("sample_index", func(r *RolloutRow) *int32 { return &r.SampleIndex }),
	utf8Col("scenario", func(r *RolloutRow) *string { return &r.Scenario }),
	utf8Col("prompt", func(r *RolloutRow) *string { return &r.Prompt }),
	utf8Col("row_id", func(r *RolloutRow) *string { return &r.RowID }),
	utf8Col("answer", func(r *RolloutRow) *string { return &r.Answer }),
	utf8Col("spec", func(r *RolloutRow) *string { return &r.Spec }),
	utf8Col("cot", func(r *RolloutRow) *string { return &r.CoT }),
	utf8Col("instruction", func(r *RolloutRow) *string { return &r.Instruction }),
	listCol("token_ids", arrow.PrimitiveTypes.Int32, func(r *RolloutRow) *[]int32 { return &r.TokenIDs }),
	listCol("token_logprobs", arrow.PrimitiveTypes.Float32, func(r *RolloutRow) *[]float32 { return &r.TokenLogProbs }),
	binaryCol("image_png", func(r *RolloutRow) *[]byte { return &r.ImagePNG }),
	binaryCol("reference_png", func(r *RolloutRow) *[]byte { return &r.ReferencePNG }),
	listCol("latent_shape", arrow.PrimitiveTypes.Int32, func(r *RolloutRow) *[]int32 { return &r.LatentShape }),
	listListCol("sde_latents", func(r *RolloutRow) *[][]float32 { return &r.SDELatents }),
	listListCol("sde_means", func(r *RolloutRow) *[][]float32 { return &r.SDEMeans }),
	listCol("sde_logprobs", arrow.PrimitiveTypes.Float32, func(r *RolloutRow) *[]float32 { return &r.SDELogProbs }),
	int64Col("noise_seed", func(r *RolloutRow) *int64 { return &r.NoiseSeed }),
	int64Col("policy_version", func(r *RolloutRow) *int64 { return &r.PolicyVersion }),
)

// RewardRow is the score of one rollout row by its scenario's rule model.
type RewardRow struct {
	Run         string
	Step        int64
	Task        string
	Attempt     int32
	GroupID     int64
	SampleIndex int32
	Scenario    string
	Reward      float32
	// Components are the named sub-scores the reward is made of.
	Components map[string]float32
	// Detail explains the score in a line (for reports), or says why the
	// sample could not be scored.
	Detail string
}

// Reward is the schema of reward shards.
var Reward = newSchema("reward", 1,
	utf8Col("run", func(r *RewardRow) *string { return &r.Run }),
	int64Col("step", func(r *RewardRow) *int64 { return &r.Step }),
	utf8Col("task", func(r *RewardRow) *string { return &r.Task }),
	int32Col("attempt", func(r *RewardRow) *int32 { return &r.Attempt }),
	int64Col("group_id", func(r *RewardRow) *int64 { return &r.GroupID }),
	int32Col("sample_index", func(r *RewardRow) *int32 { return &r.SampleIndex }),
	utf8Col("scenario", func(r *RewardRow) *string { return &r.Scenario }),
	float32Col("reward", func(r *RewardRow) *float32 { return &r.Reward }),
	mapCol("components", func(r *RewardRow) *map[string]float32 { return &r.Components }),
	utf8Col("detail", func(r *RewardRow) *string { return &r.Detail }),
)

// AdvantageRow is the group-relative advantage of one sample.
type AdvantageRow struct {
	Run         string
	Step        int64
	GroupID     int64
	SampleIndex int32
	Reward      float32
	// GroupMean and GroupStd are over the G rewards of the group;
	// Advantage = (Reward - GroupMean) / (GroupStd + eps).
	GroupMean float32
	GroupStd  float32
	Advantage float32
}

// Advantage is the schema of advantage shards.
var Advantage = newSchema("advantage", 1,
	utf8Col("run", func(r *AdvantageRow) *string { return &r.Run }),
	int64Col("step", func(r *AdvantageRow) *int64 { return &r.Step }),
	int64Col("group_id", func(r *AdvantageRow) *int64 { return &r.GroupID }),
	int32Col("sample_index", func(r *AdvantageRow) *int32 { return &r.SampleIndex }),
	float32Col("reward", func(r *AdvantageRow) *float32 { return &r.Reward }),
	float32Col("group_mean", func(r *AdvantageRow) *float32 { return &r.GroupMean }),
	float32Col("group_std", func(r *AdvantageRow) *float32 { return &r.GroupStd }),
	float32Col("advantage", func(r *AdvantageRow) *float32 { return &r.Advantage }),
)

// MetricRow is one logged scalar.
type MetricRow struct {
	Run   string
	Step  int64
	Phase string
	// Name is the metric's fixed name, e.g. "losses/clipfrac".
	Name  string
	Value float64
	// TimeMS is the Unix time in milliseconds.
	TimeMS int64
}

// Metrics is the schema of metrics shards.
var Metrics = newSchema("metrics", 1,
	utf8Col("run", func(r *MetricRow) *string { return &r.Run }),
	int64Col("step", func(r *MetricRow) *int64 { return &r.Step }),
	utf8Col("phase", func(r *MetricRow) *string { return &r.Phase }),
	utf8Col("name", func(r *MetricRow) *string { return &r.Name }),
	float64Col("value", func(r *MetricRow) *float64 { return &r.Value }),
	timestampCol("time", func(r *MetricRow) *int64 { return &r.TimeMS }),
)

func sortedKeys(m map[string]float32) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SchemaError reports a shard whose schema does not match the one it is
// read as: an unknown name or version, a missing column, or a column of
// the wrong type. Column is empty for schema-level problems.
type SchemaError struct {
	Shard, Column string
	Reason        string
}

func (e *SchemaError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("thinkgen/shards: shard %s: %s", e.Shard, e.Reason)
	}
	return fmt.Sprintf("thinkgen/shards: shard %s: column %q: %s", e.Shard, e.Column, e.Reason)
}
