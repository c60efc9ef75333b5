package evaluate

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/reward"
)

// TestRowNoiseDoesNotDependOnItsChunk evaluates 18 rows (two chunks of the
// harness) and then their last two alone, with the seed moved by 16: each
// row draws from seed+index, so the two runs give the same images. (Before,
// every chunk restarted from the base seed, so rows 0 and 16 shared their
// noise.)
func TestRowNoiseDoesNotDependOnItsChunk(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the shipped base")
	}
	rows, err := datasets.Generate(datasets.Options{Seed: 5, Split: datasets.Eval, Size: 32, Scenarios: []string{datasets.Composition}}, 0, 18)
	if err != nil {
		t.Fatal(err)
	}
	withShippedBase(t, func(b *model.Bundle, reg *reward.Registry, s config.Sampling) error {
		_, long, err := Run(context.Background(), b, reg, Options{Sampling: s, Rows: rows, Seed: 3})
		if err != nil {
			return err
		}
		_, short, err := Run(context.Background(), b, reg, Options{Sampling: s, Rows: rows[16:], Seed: 3 + 16})
		if err != nil {
			return err
		}
		for _, mode := range Modes {
			for k, s := range short[mode] {
				l := long[mode][16+k]
				if s.Instruction != l.Instruction {
					t.Errorf("%s row %d: instruction %q alone, %q in the long run", mode, 16+k, s.Instruction, l.Instruction)
				}
				if !bytes.Equal(s.Image.Pix, l.Image.Pix) {
					t.Errorf("%s row %d: its image depends on the chunk it was evaluated in", mode, 16+k)
				}
			}
			if bytes.Equal(long[mode][0].Image.Pix, long[mode][16].Image.Pix) {
				t.Errorf("%s: rows 0 and 16 drew the same image", mode)
			}
		}
		return nil
	})
}

// TestOracleModeDrawsFromTheReferenceAnswer: mode oracle writes nothing of
// its own — each sample's text is the row's reference answer — and is
// scored beside the two modes; without Options.Oracle it is not run.
func TestOracleModeDrawsFromTheReferenceAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the shipped base")
	}
	rows, err := datasets.Generate(datasets.Options{Seed: 5, Split: datasets.Eval, Size: 32}, 0, 5) // one row per scenario
	if err != nil {
		t.Fatal(err)
	}
	withShippedBase(t, func(b *model.Bundle, reg *reward.Registry, s config.Sampling) error {
		var prog bytes.Buffer
		scores, all, err := Run(context.Background(), b, reg, Options{Sampling: s, Rows: rows, Seed: 3, Oracle: true, Progress: &prog})
		if err != nil {
			return err
		}
		// Three modes of five rows: the last progress line counts 15.
		if lines := strings.Split(strings.TrimSpace(prog.String()), "\n"); !strings.HasPrefix(lines[len(lines)-1], "eval 15/15 (100%) oracle") {
			t.Errorf("progress ends with %q, want eval 15/15 (100%%) oracle", lines[len(lines)-1])
		}
		if len(scores[OracleMode]) == 0 || len(all[OracleMode]) != len(rows) {
			t.Fatalf("oracle mode: %d summaries, %d samples", len(scores[OracleMode]), len(all[OracleMode]))
		}
		for i, s := range all[OracleMode] {
			if s.Written != rows[i].Answer || s.Instruction != rows[i].Answer {
				t.Errorf("row %s (%s): oracle wrote %q, want the reference answer %q", rows[i].ID, rows[i].Scenario, s.Written, rows[i].Answer)
			}
		}
		scores, _, err = Run(context.Background(), b, reg, Options{Sampling: s, Rows: rows[:1], Seed: 3})
		if err != nil {
			return err
		}
		if _, ok := scores[OracleMode]; ok {
			t.Error("oracle mode ran without Options.Oracle")
		}
		// Reference mode: the row's prompt, the reply forced to the
		// reference chain and answer; only the modes asked for run.
		scores, all, err = Run(context.Background(), b, reg, Options{Sampling: s, Rows: rows, Seed: 3, Modes: []string{ReferenceMode}})
		if err != nil {
			return err
		}
		if len(scores) != 1 || len(all[ReferenceMode]) != len(rows) {
			t.Fatalf("Modes [reference]: scores for %d modes, %d reference samples", len(scores), len(all[ReferenceMode]))
		}
		for i, s := range all[ReferenceMode] {
			want := rows[i].Think + "\n</think>\n\n" + rows[i].Answer + "<|im_end|>"
			if s.Written != want || s.Instruction != rows[i].Answer {
				t.Errorf("row %s (%s): reference mode wrote %q (instruction %q), want %q", rows[i].ID, rows[i].Scenario, s.Written, s.Instruction, want)
			}
			// The reference answer meets its own requirements.
			v, ok := s.Result.Aux[InstructionAux]
			if caption := rows[i].Scenario == datasets.Composition || rows[i].Scenario == datasets.Reasoning; ok != caption || (ok && v != 1) {
				t.Errorf("row %s (%s): aux %s = %v (present %v)", rows[i].ID, rows[i].Scenario, InstructionAux, v, ok)
			}
		}
		if _, _, err := Run(context.Background(), b, reg, Options{Sampling: s, Rows: rows[:1], Modes: []string{"dream"}}); err == nil || !strings.Contains(err.Error(), `unknown eval mode "dream"`) {
			t.Errorf("Modes [dream]: error %v", err)
		}
		return nil
	})
}

// withShippedBase runs f inside libtorch.Run with base/tiny, sampling cut to
// 4 ODE steps and 24 new tokens, and the built-in rule models.
func withShippedBase(t *testing.T, f func(b *model.Bundle, reg *reward.Registry, s config.Sampling) error) {
	t.Helper()
	dir := filepath.Join("..", "base", "tiny")
	_, cfg, err := model.ReadBundleManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sampling
	s.DiTSteps, s.MaxNewTokens = 4, 24
	err = libtorch.Run(func() error {
		b, _, err := model.LoadBundle(dir, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		return f(b, reward.Builtin(nil), s)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestInstructionScore(t *testing.T) {
	rows, err := datasets.Generate(datasets.Options{Seed: 5, Split: datasets.Eval, Size: 32, Scenarios: []string{datasets.Reasoning}}, 0, 40)
	if err != nil {
		t.Fatal(err)
	}
	// A one-object reasoning row: "a <size> <colour> <shape> at <cell>."
	var one *datasets.Row
	for i := range rows {
		r := rows[i].Spec.Require
		if len(r) == 1 && r[0].Count == 1 && r[0].Color != "" && r[0].Size == "" && r[0].Cell == nil && len(rows[i].Spec.Scene.Objects) == 1 {
			one = &rows[i]
			break
		}
	}
	if one == nil {
		t.Fatal("no one-object reasoning row in 40")
	}
	o := one.Spec.Scene.Objects[0]
	other := datasets.Shape("circle")
	if o.Shape == other {
		other = "square"
	}
	otherColor := datasets.Color("red")
	if o.Color == otherColor {
		otherColor = "blue"
	}
	text, err := datasets.Generate(datasets.Options{Seed: 5, Split: datasets.Eval, Size: 32, Scenarios: []string{datasets.Text}}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		row         *datasets.Row
		instruction string
		want        float64
		ok          bool
	}{
		{"reference answer", one, one.Answer, 1, true},
		{"wrong shape", one, strings.Replace(one.Answer, string(o.Shape), string(other), 1), 0, true},
		{"wrong colour: the count's credit only", one, strings.Replace(one.Answer, string(o.Color), string(otherColor), 1), 0.5, true},
		{"off the grammar", one, "a " + string(o.Color) + " thing.", 0, true},
		{"empty", one, "", 0, true},
		{"text row", &text[0], text[0].Answer, 0, false},
	}
	for _, tt := range tests {
		got, ok := InstructionScore(tt.row, tt.instruction)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: InstructionScore(%q) = %v, %v; want %v, %v", tt.name, tt.instruction, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTaskSummaries(t *testing.T) {
	rows := []datasets.Row{
		{Scenario: datasets.Reasoning, Task: "negation"},
		{Scenario: datasets.Reasoning, Task: "negation"},
		{Scenario: datasets.Reasoning, Task: "knowledge"},
		{Scenario: datasets.Text, Task: "text"},
	}
	results := []reward.Result{
		{Partial: 1, Score: 1, Strict: 1, Aux: map[string]float64{InstructionAux: 1}},
		{Partial: 0.5, Score: 0.5, Aux: map[string]float64{InstructionAux: 0}},
		{Partial: 0.25, Score: 0.25, Aux: map[string]float64{InstructionAux: 0.5}},
		{Partial: 0.75, Score: 0.75},
	}
	samples := make([]Sample, len(rows))
	for i := range rows {
		samples[i] = Sample{Row: &rows[i], Result: results[i]}
		samples[i].Result.Scenario = rows[i].Scenario
	}
	got := TaskSummaries(samples)
	want := []struct {
		task         string
		n            int
		score, instr float64
		hasInstr     bool
	}{
		{"reasoning/knowledge", 1, 0.25, 0.5, true},
		{"reasoning/negation", 2, 0.75, 0.5, true},
		{"text/text", 1, 0.75, 0, false},
	}
	if len(got) != len(want) {
		t.Fatalf("TaskSummaries: %d summaries %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		v, ok := g.Aux[InstructionAux]
		if g.Scenario != w.task || g.N != w.n || math.Abs(g.Score-w.score) > 1e-12 || ok != w.hasInstr || math.Abs(v-w.instr) > 1e-12 {
			t.Errorf("summary %d = %+v, want %+v", i, g, w)
		}
	}
	if samples[0].Result.Scenario != datasets.Reasoning {
		t.Errorf("TaskSummaries changed a sample's result: scenario %q", samples[0].Result.Scenario)
	}
	var buf bytes.Buffer
	if err := WriteTaskTable(&buf, map[string][]reward.Summary{"think": got}); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"think  reasoning/negation", "0.750 (0.50)  0.500", "text/text"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("task table lacks %q:\n%s", line, buf.String())
		}
	}
}
