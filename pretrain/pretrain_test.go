package pretrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/tfevents"
	"github.com/thinkgen/thinkgen/internal/tfevents/tfeventstest"
	"github.com/thinkgen/thinkgen/model"
)

// smallConfig shrinks the tiny configuration so that a few dozen steps of
// every stage run in seconds.
func smallConfig() *config.Config {
	c := config.Default()
	m := &c.Model.MLLM
	m.Hidden, m.Layers, m.Heads, m.KVHeads, m.HeadDim, m.FFN, m.MaxSeqLen = 48, 2, 4, 2, 12, 96, 256
	d := &c.Model.DiT
	d.Hidden, d.Layers, d.Heads, d.KVHeads, d.FFN, d.RefinerLayers = 48, 1, 2, 1, 96, 1
	c.Model.Connector.Prepad = 2
	c.Optim.WarmupSteps = 0
	c.Sampling.DiTSteps, c.Sampling.MaxNewTokens = 4, 32
	c.FlowGRPO.Steps = 4
	c.Pretrain = config.Pretrain{
		Warmup:   config.Stage{Steps: 40, Batch: 8, LR: 3e-3, Facts: 0.25},
		Align:    config.Stage{Steps: 4, Batch: 4, LR: 1e-3},
		DiT:      config.Stage{Steps: 40, Batch: 8, LR: 2e-3},
		Finetune: config.Stage{Steps: 4, Batch: 4, LR: 5e-4},
	}
	return c
}

func TestPretrainLearns(t *testing.T) {
	if testing.Short() {
		t.Skip("trains every stage")
	}
	cfg := smallConfig()
	dir := t.TempDir()
	res, err := Run(context.Background(), Options{Config: cfg, Dir: dir, CheckpointEvery: 20, EvalRows: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d stage results, want 4", len(res))
	}
	for _, r := range res {
		t.Logf("%-8s %3d steps: loss %.4f -> %.4f in %s", r.Stage, r.Steps, r.FirstLoss, r.LastLoss, r.Elapsed)
	}
	// The warm-up starts near ln(vocab) ≈ 6.4 and must fall by 1.6x within
	// 40 steps (measured: 6.03 -> 3.10); the DiT's flow loss by a quarter
	// (measured: 1.76 -> 1.08).
	if w := res[0]; w.LastLoss > w.FirstLoss/1.6 {
		t.Errorf("warm-up loss %.3f -> %.3f: fell by less than 1.6x", w.FirstLoss, w.LastLoss)
	}
	if d := res[2]; d.LastLoss > 0.75*d.FirstLoss {
		t.Errorf("DiT loss %.3f -> %.3f: fell by less than 25%%", d.FirstLoss, d.LastLoss)
	}
	// No stage leaks tensors: the live count after the last step is no
	// higher than after the fifth.
	for _, stage := range []string{StageWarmup, StageDiT} {
		live := liveTensors(t, filepath.Join(dir, "pretrain", stage, "metrics.jsonl"))
		if len(live) < 10 || live[len(live)-1] > live[4] {
			t.Errorf("stage %s: live tensors per step %v", stage, live)
		}
	}
	// Each stage was evaluated in both modes on every scenario, with grids.
	for _, r := range res {
		for _, mode := range []string{"direct", "think"} {
			if got := len(r.Eval[mode]); got != 5 {
				t.Errorf("stage %s, mode %s: %d scenario summaries, want 5", r.Stage, mode, got)
			}
			if _, err := os.Stat(filepath.Join(dir, "pretrain", r.Stage, "grid-"+mode+".png")); err != nil {
				t.Errorf("stage %s: %v", r.Stage, err)
			}
		}
	}
	// The warm-up was asked every fact question in both modes.
	asked := 0
	for _, f := range res[0].Facts {
		asked += f.Questions
	}
	if want := 2 * len(datasets.FactQuestions()); asked != want || len(res[0].Facts) != 4 {
		t.Errorf("warm-up fact scores %+v: %d questions, want %d", res[0].Facts, asked, want)
	}
	// Completed stages are skipped by a second run.
	again, err := Run(context.Background(), Options{Config: cfg, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again {
		if !r.Skipped {
			t.Errorf("stage %s ran again", r.Stage)
		}
	}
}

func TestPretrainResumesToTheSameWeights(t *testing.T) {
	cfg := smallConfig()
	cfg.Pretrain.Warmup.Steps = 12
	cfg.Pretrain.Align.Steps, cfg.Pretrain.DiT.Steps, cfg.Pretrain.Finetune.Steps = 0, 0, 0
	whole, killed := t.TempDir(), t.TempDir()
	if _, err := Run(context.Background(), Options{Config: cfg, Dir: whole, CheckpointEvery: 5}); err != nil {
		t.Fatal(err)
	}
	// Kill after step 8: the checkpoint of step 5 is the latest.
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Run(ctx, Options{Config: cfg, Dir: killed, CheckpointEvery: 5, AfterStep: func(_ string, step int, _ float64) {
		if step == 8 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	// Its TensorBoard file holds the steps up to the checkpoint.
	if got := stepsOf(warmupEvents(t, killed)); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Errorf("interrupted run's TensorBoard steps %v, want [1 2 3 4 5]", got)
	}
	// Simulate a kill between the two renames of a checkpoint swap: only
	// ckpt.old is left.
	ckpt := filepath.Join(killed, "pretrain", "warmup", "ckpt")
	if err := os.Rename(ckpt, ckpt+".old"); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Options{Config: cfg, Dir: killed, CheckpointEvery: 5})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Resumed != 5 {
		t.Errorf("resumed from step %d, want 5", res[0].Resumed)
	}
	// TensorBoard: steps 1…12 once each (6–8, run twice, with the resumed
	// values), the loss, rate and gradient norm of the uninterrupted run.
	we, ke := warmupEvents(t, whole), warmupEvents(t, killed)
	if got := stepsOf(ke); fmt.Sprint(got) != "[1 2 3 4 5 6 7 8 9 10 11 12]" {
		t.Errorf("resumed run's TensorBoard steps %v, want 1…12", got)
	}
	for i := range min(len(we), len(ke)) {
		for j, tag := range []string{"warmup/loss", "warmup/lr", "warmup/grad_norm"} {
			if a, b := we[i].Scalars[j], ke[i].Scalars[j]; a.Tag != tag || a != b {
				t.Errorf("step %d: %+v uninterrupted, %+v resumed (want tag %s)", we[i].Step, a, b, tag)
			}
		}
	}
	t.Run("tensorboard reads it", func(t *testing.T) {
		l := tfeventstest.Read(t, TensorBoardDir(killed))
		if ps := l.Scalars["warmup/loss"]; len(ps) != 12 || ps[0].Step != 1 || ps[11].Step != 12 || !tfeventstest.Same(ke[11].Scalars[0].Value, ps[11].Value) {
			t.Errorf("TensorBoard's warmup/loss: %+v", ps)
		}
	})
	err = libtorch.Run(func() error {
		a, _, err := model.LoadBundle(filepath.Join(whole, "pretrain", "warmup", "final"), gotch.CPU)
		if err != nil {
			return err
		}
		defer a.Drop()
		b, _, err := model.LoadBundle(filepath.Join(killed, "pretrain", "warmup", "final"), gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		for i, p := range a.MLLM.P.Tensors() {
			x, y := p.Float64Values(), b.MLLM.P.Tensors()[i].Float64Values()
			for j := range x {
				if x[j] != y[j] {
					t.Errorf("%s differs after resume (%g vs %g)", a.MLLM.P.Specs()[i].Name, x[j], y[j])
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// liveTensors reads the live_tensors column of a metrics.jsonl.
func liveTensors(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m struct {
			Live int `json:"live_tensors"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, m.Live)
	}
	return out
}

// warmedUp runs a 3-step MLLM warm-up of smallConfig and returns its run
// directory and the warm-up's result bundle.
func warmedUp(t *testing.T) (dir, final string) {
	t.Helper()
	cfg := smallConfig()
	cfg.Pretrain.Warmup.Steps = 3
	cfg.Pretrain.Align.Steps, cfg.Pretrain.DiT.Steps, cfg.Pretrain.Finetune.Steps = 0, 0, 0
	dir = t.TempDir()
	if _, err := Run(context.Background(), Options{Config: cfg, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "pretrain", "warmup", "final")
}

// withSameMLLM loads the bundles in dirs a and b, reports every MLLM
// tensor of b that differs from a's (the start bundle's), then calls check.
func withSameMLLM(t *testing.T, a, b string, check func(a, b *model.Bundle)) error {
	t.Helper()
	return libtorch.Run(func() error {
		ab, _, err := model.LoadBundle(a, gotch.CPU)
		if err != nil {
			return err
		}
		defer ab.Drop()
		bb, _, err := model.LoadBundle(b, gotch.CPU)
		if err != nil {
			return err
		}
		defer bb.Drop()
		for i, p := range ab.MLLM.P.Tensors() {
			if !slices.Equal(p.Float64Values(), bb.MLLM.P.Tensors()[i].Float64Values()) {
				t.Errorf("MLLM %s differs from the start bundle's", ab.MLLM.P.Specs()[i].Name)
			}
		}
		check(ab, bb)
		return nil
	})
}

// TestPretrainContinuesFrom runs the DiT stage alone from another run's
// warm-up result: the MLLM, which the DiT stage freezes, comes out equal
// to the start bundle's (fresh weights would differ), and the DiT moved.
// A missing start bundle or one of another shape is refused before any
// work.
func TestPretrainContinuesFrom(t *testing.T) {
	first, from := warmedUp(t)

	more := smallConfig()
	more.Run.Seed = 9 // fresh weights of this seed would differ from the start bundle's
	more.Pretrain.Warmup.Steps, more.Pretrain.Align.Steps, more.Pretrain.Finetune.Steps = 0, 0, 0
	more.Pretrain.DiT.Steps = 2
	second := t.TempDir()
	res, err := Run(context.Background(), Options{Config: more, Dir: second, From: from})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Stage != StageDiT {
		t.Fatalf("stages run: %+v, want the DiT stage alone", res)
	}
	err = withSameMLLM(t, from, filepath.Join(second, "pretrain", "dit", "final"), func(a, b *model.Bundle) {
		moved := false
		for i, p := range a.DiT.P.Tensors() {
			moved = moved || !slices.Equal(p.Float64Values(), b.DiT.P.Tensors()[i].Float64Values())
		}
		if !moved {
			t.Error("the DiT did not train")
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	other := smallConfig()
	other.Model.DiT.Hidden *= 2
	for _, tc := range []struct {
		name, from, want string
		cfg              *config.Config
	}{
		{"missing", filepath.Join(first, "nosuch"), "nosuch", more},
		{"other shape", from, "another model shape", other},
	} {
		_, err := Run(context.Background(), Options{Config: tc.cfg, Dir: t.TempDir(), From: tc.from})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

// TestPretrainFromMLLM pre-trains the DiT side again from another run's
// warm-up MLLM with a connector of another shape (no prepadding states):
// the MLLM comes out equal to the start bundle's, the connector has no
// prepadding. A bundle whose MLLM has another shape, and --from given as
// well, are refused before any work.
func TestPretrainFromMLLM(t *testing.T) {
	first, from := warmedUp(t)

	ablation := smallConfig()
	ablation.Run.Seed = 9
	ablation.Model.Connector.Prepad = 0
	ablation.Pretrain.Warmup.Steps, ablation.Pretrain.Finetune.Steps = 0, 0
	ablation.Pretrain.Align.Steps, ablation.Pretrain.DiT.Steps = 1, 1
	second := t.TempDir()
	res, err := Run(context.Background(), Options{Config: ablation, Dir: second, FromMLLM: from})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Stage != StageAlign || res[1].Stage != StageDiT {
		t.Fatalf("stages run: %+v, want align and dit", res)
	}
	err = withSameMLLM(t, from, filepath.Join(second, "pretrain", "dit", "final"), func(a, b *model.Bundle) {
		if _, ok := b.Connector.P.Lookup("prepad"); ok || b.Connector.Prepad != 0 {
			t.Errorf("connector has %d prepadding states, want none", b.Connector.Prepad)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	other := smallConfig()
	other.Model.MLLM.FFN *= 2
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"missing", Options{Config: ablation, FromMLLM: filepath.Join(first, "nosuch")}, "nosuch"},
		{"other MLLM", Options{Config: other, FromMLLM: from}, "mllm.ffn"},
		{"with --from", Options{Config: ablation, From: from, FromMLLM: from}, "choose one"},
	} {
		tc.o.Dir = t.TempDir()
		_, err := Run(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

// TestPretrainRefusesMoreEvalRowsThanTheSplit: data.eval_size bounds the
// held-out rows a stage's evaluation scores, checked before any step.
func TestPretrainRefusesMoreEvalRowsThanTheSplit(t *testing.T) {
	c := smallConfig()
	c.Data.EvalSize = 8
	dir := t.TempDir()
	_, err := Run(context.Background(), Options{Config: c, Dir: dir, EvalRows: 9})
	if err == nil || !strings.Contains(err.Error(), "data.eval_size (8)") {
		t.Fatalf("9 eval rows with data.eval_size 8: error %v, want one naming data.eval_size", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused pretrain wrote %d entries", len(entries))
	}
}

// warmupEvents reads the warm-up's TensorBoard event file of the run in
// dir, without its file-version event.
func warmupEvents(t *testing.T, dir string) []tfevents.Event {
	t.Helper()
	f, err := os.Open(filepath.Join(TensorBoardDir(dir), tfevents.FilePrefix+"0000000001.warmup.thinkgen"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	es, err := tfevents.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 || es[0].FileVersion != tfevents.FileVersion {
		t.Fatalf("event file starts with %+v, want the file version", es)
	}
	return es[1:]
}

// stepsOf lists the steps of events.
func stepsOf(es []tfevents.Event) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.Step)
	}
	return out
}
