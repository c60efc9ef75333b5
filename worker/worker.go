// Package worker executes the tasks of a SepGRPO step: rollout tasks
// (package rollout), reward tasks (package reward's rule models, in process
// or remote) and learn tasks (package learner). It loads the policy version
// a task names from the run's store once and caches it; it reads its inputs
// through their recorded size and sha256 and writes its outputs under keys
// named by (run, step, task, attempt), reporting them back. The same Worker
// serves embedded mode (called in process by the controller) and the
// worker processes of distributed mode.
package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/checkpoint"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/learner"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/rollout"
	"github.com/thinkgen/thinkgen/shards"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/task"
)

// Worker runs tasks of one run configuration.
type Worker struct {
	cfg      *config.Config
	store    storage.Store
	cacheDir string
	dev      gotch.Device
	rewards  *reward.Registry

	// The policy version rollout tasks last sampled with.
	policy        *model.Bundle
	policyVersion int
	learner       *learner.Learner

	mu sync.Mutex // one task at a time: the models are shared state
}

// Options configure a Worker.
type Options struct {
	Config *config.Config
	Store  storage.Store
	// CacheDir holds fetched checkpoint versions and spooled shards.
	CacheDir string
	Device   gotch.Device
}

// New returns a worker; Close releases its models.
func New(o Options) (*Worker, error) {
	reg, err := reward.FromConfig(o.Config.Reward)
	if err != nil {
		return nil, err
	}
	if o.Device.Name == "" {
		o.Device = gotch.CPU
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("worker cache: %w", err)
	}
	return &Worker{cfg: o.Config, store: o.Store, cacheDir: o.CacheDir, dev: o.Device, rewards: reg, policyVersion: -1}, nil
}

// Close frees the worker's models.
func (w *Worker) Close() {
	if w.policy != nil {
		libtorch.Run(func() error { w.policy.Drop(); return nil })
		w.policy = nil
	}
	if w.learner != nil {
		libtorch.Run(func() error { w.learner.Close(); return nil })
		w.learner = nil
	}
}

// Do runs one task. Errors that a retry cannot fix wrap learner.ErrFatal.
func (w *Worker) Do(ctx context.Context, t task.Task) (task.Result, error) {
	if err := t.Validate(); err != nil {
		return task.Result{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var res task.Result
	err := libtorch.Run(func() error {
		if th := w.cfg.Run.Threads; th > 0 {
			if err := libtorch.SetThreads(th); err != nil {
				return err
			}
		}
		var err error
		switch t.Kind {
		case task.Rollout:
			res, err = w.rollout(ctx, t)
		case task.Reward:
			res, err = w.reward(ctx, t)
		case task.Learn:
			res, err = w.learn(ctx, t)
		}
		return err
	})
	// What the task freed goes back to the OS before the next one: without
	// it the resident set of a learner at 64 FlowGRPO trajectories grew
	// 4 → 12 GB in 7 steps (docs/findings.md, "Stage 5").
	libtorch.ReleaseFreeMemory()
	return res, err
}

// Scenarios returns the scenario cycle of data.mix: each scenario with a
// positive weight, repeated in proportion to its weight (the smallest
// weight counts once; at most 100 entries).
func Scenarios(mix map[string]float64) []string {
	if len(mix) == 0 {
		return nil
	}
	least := math.Inf(1)
	for _, v := range mix {
		if v > 0 && v < least {
			least = v
		}
	}
	var out []string
	for _, sc := range datasets.AllScenarios {
		if v := mix[sc]; v > 0 {
			for range min(100, max(1, int(math.Round(v/least)))) {
				out = append(out, sc)
			}
		}
	}
	// Interleave so that consecutive prompts differ: row i takes entry
	// i mod len, and a step's prompts are consecutive rows.
	sort.SliceStable(out, func(i, j int) bool { return rank(out, i) < rank(out, j) })
	return out
}

// rank is the occurrence number of out[i] among equal entries before it.
func rank(out []string, i int) int {
	n := 0
	for j := 0; j < i; j++ {
		if out[j] == out[i] {
			n++
		}
	}
	return n
}

// TrainRows generates the train-split rows of a run configuration that
// phase p's prompts come from (its scenario mix: config.PhaseMix).
func TrainRows(c *config.Config, p config.Phase, idx []int64) ([]datasets.Row, error) {
	opts := datasets.Options{Seed: uint64(c.Run.Seed), Split: datasets.Train, Size: c.Model.DiT.ImageSize, Scenarios: Scenarios(c.PhaseMix(p))}
	rows := make([]datasets.Row, len(idx))
	for i, k := range idx {
		r, err := datasets.GenerateRow(opts, int(k))
		if err != nil {
			return nil, fmt.Errorf("train row %d: %w", k, err)
		}
		rows[i] = r
	}
	return rows, nil
}

func (w *Worker) policyAt(ctx context.Context, run string, v int) (*model.Bundle, error) {
	if w.policy != nil && w.policyVersion == v {
		return w.policy, nil
	}
	b, _, err := checkpoint.Load(ctx, w.store, run, v, filepath.Join(w.cacheDir, "checkpoints"), w.dev)
	if err != nil {
		return nil, err
	}
	if err := sameShape(w.cfg, b.Cfg); err != nil {
		b.Drop()
		return nil, fmt.Errorf("%w: checkpoint %d of run %s: %v", learner.ErrFatal, v, run, err)
	}
	b.Cfg = w.cfg
	if w.policy != nil {
		w.policy.Drop()
	}
	w.policy, w.policyVersion = b, v
	return b, nil
}

// sameShape refuses a checkpoint whose models differ from the run's.
func sameShape(run, ckpt *config.Config) error {
	if diff := ckpt.Model.ShapeDiff(run.Model); len(diff) > 0 {
		return fmt.Errorf("a checkpoint of another model shape (its model section vs the run's: %s)", strings.Join(diff, ", "))
	}
	return nil
}

func (w *Worker) rollout(ctx context.Context, t task.Task) (task.Result, error) {
	rows, err := TrainRows(w.cfg, t.Phase, t.Rows)
	if err != nil {
		return task.Result{}, err
	}
	b, err := w.policyAt(ctx, t.Run, t.PolicyVersion)
	if err != nil {
		return task.Result{}, err
	}
	req := rollout.Request{Run: t.Run, Step: t.Step, Task: t.ID, Attempt: t.Attempt, Phase: t.Phase,
		Rows: rows, GroupIDs: t.Rows, Seed: t.Seed, PolicyVersion: int64(t.PolicyVersion)}
	start := time.Now()
	var out []shards.RolloutRow
	var st rollout.Stats
	if t.Phase == config.PhaseMLLMGRPO {
		out, st, err = rollout.MLLM(b, req, w.dev)
	} else {
		out, st, err = rollout.DiT(b, req, w.dev)
	}
	if err != nil {
		return task.Result{}, err
	}
	elapsed := time.Since(start)
	obj, err := w.putShard(ctx, t, func(sw *shards.Writer[shards.RolloutRow]) error {
		for i := range out {
			if err := sw.Write(&out[i]); err != nil {
				return err
			}
		}
		return nil
	}, shards.Rollout)
	if err != nil {
		return task.Result{}, err
	}
	// Tasks report additive figures only (the controller sums them over a
	// step's tasks); statistics of the data come from the learner, which
	// sees all of it.
	m := map[string]float64{
		"count/samples":       float64(st.Samples),
		"count/images":        float64(st.Images),
		"count/tokens":        float64(st.Tokens),
		"time/generate_s":     st.GenTime.Seconds(),
		"time/draw_s":         st.ImageTime.Seconds(),
		"time/rollout_task_s": elapsed.Seconds(),
	}
	return task.Result{Outputs: []storage.Object{obj}, Metrics: m}, nil
}

func putShard[R any](ctx context.Context, w *Worker, t task.Task, s *shards.Schema[R], write func(*shards.Writer[R]) error) (storage.Object, error) {
	// The batch is never committed by the worker: the controller commits
	// the step's manifest after verifying what the worker reports.
	batch := storage.NewBatch(w.store, storage.StepManifestKey(t.Run, t.Step), t.Run, "step", strconv.Itoa(t.Step))
	obj, err := shards.Put(ctx, batch, t.OutputKey(), s, shards.WriterOptions{Compression: w.cfg.Storage.Compression}, w.cacheDir, write)
	if err != nil {
		return storage.Object{}, fmt.Errorf("write %s: %w", t.OutputKey(), err)
	}
	return obj, nil
}

func (w *Worker) putShard(ctx context.Context, t task.Task, write func(*shards.Writer[shards.RolloutRow]) error, s *shards.Schema[shards.RolloutRow]) (storage.Object, error) {
	return putShard(ctx, w, t, s, write)
}

// readShard reads every row of a shard through its recorded size and sha256.
func readShard[R any](ctx context.Context, st storage.Store, obj storage.Object, s *shards.Schema[R], tmp string) ([]R, error) {
	m := &storage.Manifest{Objects: []storage.Object{obj}}
	rd, err := shards.Open(ctx, st, m, obj.Key, s, shards.ReadOptions{}, tmp)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var out []R
	for {
		var r R
		err := rd.Read(&r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", obj.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

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
		score, instr, ok, err := trainingReward(lambda, t.Phase, &r, res[i])
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
	obj, err := putShard(ctx, w, t, shards.Reward, func(sw *shards.Writer[shards.RewardRow]) error {
		for i := range out {
			if err := sw.Write(&out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return task.Result{}, err
	}
	m := map[string]float64{"time/score_s": elapsed.Seconds()}
	return task.Result{Outputs: []storage.Object{obj}, Metrics: m}, nil
}

// trainingReward is the reward of rollout row r whose image scored res:
// res.Score, or in the MLLM's phase with reward.instruction λ > 0, for a
// composition or reasoning row scored without error, weight × ((1 − λ) ×
// image + λ × instruction), where instruction is the score of the
// instruction r holds read as a caption (datasets.ScoreCaption). ok
// reports whether the instruction was scored.
func trainingReward(lambda float64, phase config.Phase, r *shards.RolloutRow, res reward.Result) (score, instr float64, ok bool, err error) {
	if lambda == 0 || phase != config.PhaseMLLMGRPO || res.Err != "" {
		return res.Score, 0, false, nil
	}
	if instr, ok, err = instructionScore(r); err != nil || !ok {
		return res.Score, 0, false, err
	}
	return res.Weight * ((1-lambda)*res.Partial + lambda*instr), instr, true, nil
}

// instructionScore scores the instruction of a composition or reasoning
// rollout row read as a caption against the row's spec
// (datasets.ScoreCaption: 0 when it is not a caption); ok is false for the
// other scenarios.
func instructionScore(r *shards.RolloutRow) (v float64, ok bool, err error) {
	if !datasets.AnswersWithCaption(r.Scenario) {
		return 0, false, nil
	}
	spec, err := datasets.ParseSpec([]byte(r.Spec))
	if err != nil {
		return 0, false, fmt.Errorf("spec: %w", err)
	}
	v, _ = datasets.ScoreCaption(spec.Require, r.Instruction)
	return v, true, nil
}

// dataStats are the step's statistics of its data: the rewards' mean and
// std, overall and per scenario; the mean completion length, the share of
// completions without an instruction and the mean score of the
// instructions themselves (instructionScores).
func dataStats(rolls []shards.RolloutRow, rows []shards.RewardRow) map[string]float64 {
	m := map[string]float64{}
	var tokens, noAnswer float64
	for _, r := range rolls {
		tokens += float64(len(r.TokenIDs))
		if r.Instruction == "" {
			noAnswer++
		}
	}
	if len(rolls) > 0 {
		m["rollout/cot_tokens"] = tokens / float64(len(rolls))
		m["rollout/no_answer"] = noAnswer / float64(len(rolls))
	}
	for sc, v := range instructionScores(rolls) {
		m["rollout/instruction/"+sc] = v
	}
	by := map[string][]float64{}
	var all []float64
	for _, r := range rows {
		by[r.Scenario] = append(by[r.Scenario], float64(r.Reward))
		all = append(all, float64(r.Reward))
	}
	m["reward/mean"], m["reward/std"] = meanStd(all)
	for sc, v := range by {
		m["reward/"+sc+"/mean"], m["reward/"+sc+"/std"] = meanStd(v)
	}
	return m
}

func meanStd(v []float64) (mean, std float64) {
	if len(v) == 0 {
		return 0, 0
	}
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(v)))
}

func (w *Worker) learn(ctx context.Context, t task.Task) (task.Result, error) {
	var rolls []shards.RolloutRow
	var rews []shards.RewardRow
	for _, obj := range t.Inputs {
		switch filepath.Base(filepath.Dir(obj.Key)) {
		case string(task.Rollout):
			r, err := readShard(ctx, w.store, obj, shards.Rollout, w.cacheDir)
			if err != nil {
				return task.Result{}, err
			}
			rolls = append(rolls, r...)
		case string(task.Reward):
			r, err := readShard(ctx, w.store, obj, shards.Reward, w.cacheDir)
			if err != nil {
				return task.Result{}, err
			}
			rews = append(rews, r...)
		default:
			return task.Result{}, fmt.Errorf("learn task: input %s is neither a rollout nor a reward shard", obj.Key)
		}
	}
	if err := w.learnerAt(ctx, t.Run, t.PolicyVersion); err != nil {
		return task.Result{}, err
	}
	stats, err := w.learner.Step(t.Phase, t.Seed, rolls, rews)
	if err != nil {
		// The in-memory policy may be half-updated: reload it next time.
		w.learner.Close()
		w.learner = nil
		return task.Result{}, err
	}
	man, err := checkpoint.Save(ctx, w.store, t.Run, t.PolicyVersion+1, w.learner.Policy(), w.learner.Optimizers(), w.cacheDir)
	if err != nil {
		// The policy in memory is already updated but its version was not
		// saved: a retry must start again from the stored version, not
		// update twice.
		w.learner.Close()
		w.learner = nil
		return task.Result{}, err
	}
	w.learner.SetVersion(t.PolicyVersion + 1)
	for k, v := range dataStats(rolls, rews) {
		stats[k] = v
	}
	// The step's manifest lists the checkpoint's objects, its manifest
	// included, so that the step commits only a whole checkpoint.
	outs := append([]storage.Object{}, man.Objects...)
	mobj, err := objectOf(ctx, w.store, storage.CheckpointManifestKey(t.Run, t.PolicyVersion+1))
	if err != nil {
		return task.Result{}, err
	}
	return task.Result{Outputs: append(outs, mobj), Metrics: stats}, nil
}

// objectOf describes an object of the store by its size and sha256.
func objectOf(ctx context.Context, st storage.Store, key string) (storage.Object, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return storage.Object{}, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return storage.Object{}, fmt.Errorf("read %s: %w", key, err)
	}
	return storage.Object{Key: key, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// learnerAt makes sure the learner holds policy version v (loading it and
// its optimiser states from the store when it does not) and the frozen
// reference (version 0).
func (w *Worker) learnerAt(ctx context.Context, run string, v int) error {
	if w.learner != nil && w.learner.Version() == v {
		return nil
	}
	if w.learner != nil {
		w.learner.Close()
		w.learner = nil
	}
	cache := filepath.Join(w.cacheDir, "checkpoints")
	policy, dir, err := checkpoint.Load(ctx, w.store, run, v, cache, w.dev)
	if err != nil {
		return err
	}
	if err := sameShape(w.cfg, policy.Cfg); err != nil {
		policy.Drop()
		return fmt.Errorf("%w: checkpoint %d of run %s: %v", learner.ErrFatal, v, run, err)
	}
	policy.Cfg = w.cfg
	ref, _, err := checkpoint.Load(ctx, w.store, run, 0, cache, w.dev)
	if err != nil {
		policy.Drop()
		return err
	}
	ref.Cfg = w.cfg
	l := learner.New(w.cfg, policy, ref, v)
	for _, o := range l.Optimizers() {
		if _, err := checkpoint.LoadOptimizer(dir, o.Name, o.Opt); err != nil {
			l.Close()
			return fmt.Errorf("checkpoint %d of run %s: %w", v, run, err)
		}
	}
	w.learner = l
	return nil
}

// instructionScores is the mean score, per scenario, of the instructions
// the MLLM wrote for composition and reasoning rows, read as captions and
// checked against the row's requirements before any image is drawn
// (datasets.ScoreCaption): whether the MLLM's answers improve, apart from
// how well the DiT draws them. Rows whose spec does not parse are left out
// (the reward task has already failed on them).
func instructionScores(rolls []shards.RolloutRow) map[string]float64 {
	sum, n := map[string]float64{}, map[string]int{}
	for _, r := range rolls {
		v, ok, err := instructionScore(&r)
		if err != nil || !ok {
			continue
		}
		sum[r.Scenario] += v
		n[r.Scenario]++
	}
	for sc := range sum {
		sum[sc] /= float64(n[sc])
	}
	return sum
}
