package evaluate

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/progress"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/reward"
	"github.com/thinkgen/thinkgen/rollout"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// Sample is one generated example of an evaluation.
type Sample struct {
	Row *datasets.Row
	// Written is what the MLLM wrote (chain of thought and instruction);
	// Thought and Instruction are its two parts (tokenizer.SplitReply).
	Written     string
	Thought     string
	Instruction string
	Image       *image.RGBA
	Result      reward.Result
}

// Generate runs the think-then-generate pipeline (rollout.ThinkDraw) for
// rows: the MLLM writes in thinking or non-thinking mode (greedy when
// s.Temperature is 0, else sampled with s.Temperature and s.TopP), its
// instruction states go through the connector, and the DiT samples the
// image with s's steps, guidance and time shift (editing and reflection
// rows edit their reference image). Row i draws its noise and tokens from
// seed+i. It must run inside libtorch.Run.
func Generate(b *model.Bundle, rows []datasets.Row, thinking bool, s config.Sampling, seed uint64, dev gotch.Device) ([]Sample, error) {
	mode := "direct"
	if thinking {
		mode = "think"
	}
	return generateRows(b, rows, mode, s, seed, dev)
}

// generateRows is Generate in one of Modes, OracleMode or ReferenceMode.
func generateRows(b *model.Bundle, rows []datasets.Row, mode string, s config.Sampling, seed uint64, dev gotch.Device) ([]Sample, error) {
	think := tokenizer.ThinkSkip
	if mode == "think" || mode == ReferenceMode {
		think = tokenizer.ThinkOpen
	}
	in := make([]rollout.Input, len(rows))
	for i := range rows {
		r := &rows[i]
		user := r.Prompt
		if mode == OracleMode {
			// Stage 2's pseudo chain of thought: the reference answer as
			// the user turn, an empty think block, the answer again.
			user = r.Answer
		}
		p, err := rollout.Prompt(b, user, len(r.Reference) > 0, think)
		if err != nil {
			return nil, fmt.Errorf("row %s: %w", r.ID, err)
		}
		in[i] = rollout.Input{Prompt: p, Reference: r.Reference, Seed: seed + uint64(i), Noise: seed + uint64(i)}
		if mode == OracleMode || mode == ReferenceMode {
			text := r.Answer
			if mode == ReferenceMode {
				// What the MLLM writes in thinking mode when it gets the
				// row right: the reference chain, then the answer.
				text = tokenizer.Reply(tokenizer.ThinkOpen, r.Think, r.Answer)
			}
			if in[i].Reply, err = b.Tok.Encode(text); err != nil {
				return nil, fmt.Errorf("row %s: answer: %w", r.ID, err)
			}
		}
	}
	drawn, _, err := rollout.ThinkDraw(b, in, s, dev)
	if err != nil {
		return nil, err
	}
	out := make([]Sample, len(rows))
	for i, d := range drawn {
		text := b.Tok.Decode(d.Tokens)
		thought, instr := tokenizer.SplitReply(text)
		out[i] = Sample{Row: &rows[i], Written: text, Thought: thought, Instruction: instr, Image: d.Image}
	}
	return out, nil
}

// Score scores samples with the rule models and fills their Result.
func Score(ctx context.Context, reg *reward.Registry, samples []Sample) ([]reward.Result, error) {
	items := make([]reward.Item, len(samples))
	for i, s := range samples {
		spec, err := json.Marshal(s.Row.Spec)
		if err != nil {
			return nil, err
		}
		it := reward.Item{ID: s.Row.ID, Scenario: s.Row.Scenario, Spec: spec, Image: s.Image, Text: s.Instruction, Answer: s.Row.Answer}
		if len(s.Row.Reference) > 0 {
			ref, err := png.Decode(strings.NewReader(string(s.Row.Reference)))
			if err != nil {
				return nil, fmt.Errorf("row %s: reference: %w", s.Row.ID, err)
			}
			it.Reference = ref
		}
		items[i] = it
	}
	res, err := reg.Score(ctx, items)
	if err != nil {
		return nil, err
	}
	for i, s := range samples {
		if v, ok := InstructionScore(s.Row, s.Instruction); ok {
			aux := make(map[string]float64, len(res[i].Aux)+1)
			maps.Copy(aux, res[i].Aux)
			aux[InstructionAux] = v
			res[i].Aux = aux
		}
		samples[i].Result = res[i]
	}
	return res, nil
}

// InstructionAux is the aux metric Score adds to composition and reasoning
// results: the InstructionScore of what the MLLM wrote.
const InstructionAux = "instruction"

// InstructionScore scores the instruction the MLLM wrote for row on its
// own, before the DiT draws it: the caption is parsed back into a scene
// and its objects are checked against the row's requirements as a
// detector's would be (partial credit; 0 for an instruction that strays
// from the caption grammar). It separates the MLLM's share of a score from
// the DiT's: a reasoning row whose instruction scores 1 but whose image
// scores 0 was lost by the DiT. ok is false for scenarios whose answer is
// not a scene caption (text, editing, reflection).
func InstructionScore(row *datasets.Row, instruction string) (score float64, ok bool) {
	if !datasets.AnswersWithCaption(row.Scenario) {
		return 0, false
	}
	v, _ := datasets.ScoreCaption(row.Spec.Require, instruction) // 0 when it does not parse
	return v, true
}

// WriteGrid writes a PNG with one line per sample: reference (blank when
// none) | generated | target, each scaled up by scale.
func WriteGrid(path string, samples []Sample, scale int) error {
	if len(samples) == 0 {
		return fmt.Errorf("write grid %s: no samples", path)
	}
	size := samples[0].Image.Bounds().Dx() * scale
	pad := 2
	grid := image.NewRGBA(image.Rect(0, 0, 3*size+4*pad, len(samples)*(size+pad)+pad))
	draw.Draw(grid, grid.Bounds(), &image.Uniform{color.RGBA{60, 60, 60, 255}}, image.Point{}, draw.Src)
	put := func(img image.Image, col, row int) {
		if img == nil {
			return
		}
		x0, y0 := pad+col*(size+pad), pad+row*(size+pad)
		b := img.Bounds()
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				grid.Set(x0+x, y0+y, img.At(b.Min.X+x/scale, b.Min.Y+y/scale))
			}
		}
	}
	for r, s := range samples {
		if len(s.Row.Reference) > 0 {
			ref, err := png.Decode(strings.NewReader(string(s.Row.Reference)))
			if err == nil {
				put(ref, 0, r)
			}
		}
		put(s.Image, 1, r)
		tgt, err := png.Decode(strings.NewReader(string(s.Row.Target)))
		if err == nil {
			put(tgt, 2, r)
		}
	}
	if err := datasets.WritePNG(path, grid); err != nil {
		return fmt.Errorf("write grid: %w", err)
	}
	return nil
}

// Modes are the two ways the pipeline is evaluated: non-thinking ("direct":
// the prompt closes an empty think block) and thinking ("think").
var Modes = []string{"direct", "think"}

// OracleMode is the evaluation without the MLLM's writing (Options.Oracle):
// the DiT is conditioned on each row's reference answer, written the way
// the pseudo-chain-of-thought stages trained it (the answer as the user
// turn, an empty think block, the answer again). Its score is the DiT's
// ceiling on its training format and separates what the MLLM gets wrong
// from what the DiT cannot draw.
const OracleMode = "oracle"

// ReferenceMode is thinking mode with the MLLM's reply forced to the row's
// reference chain and answer: the row's prompt as the user turn, so the
// DiT reads the states the pipeline gives it when the MLLM writes the
// right instruction. Its score is the ceiling of what training the MLLM
// alone can reach. It is below OracleMode when the DiT reads an answer's
// states in the prompt's context worse than in the pseudo chain of thought
// (measured on base/tiny v2: 0.28 against 0.51 on reasoning rows).
const ReferenceMode = "reference"

// CheckMode returns an error naming the known modes unless mode is one of
// Modes, OracleMode or ReferenceMode.
func CheckMode(mode string) error {
	if slices.Contains(knownModes(), mode) {
		return nil
	}
	return fmt.Errorf("unknown eval mode %q (known: %s)", mode, strings.Join(knownModes(), ", "))
}

// knownModes returns every mode in table order: Modes, OracleMode,
// ReferenceMode.
func knownModes() []string { return append(modes(true), ReferenceMode) }

// modes returns Modes, followed by OracleMode when oracle is set.
func modes(oracle bool) []string {
	if !oracle {
		return Modes
	}
	return append(append([]string(nil), Modes...), OracleMode)
}

// Scores are the per-scenario summaries of one evaluation, by mode.
type Scores map[string][]reward.Summary

// Options configure Run.
type Options struct {
	// Rows are the held-out rows to evaluate on.
	Rows []datasets.Row
	// Sampling is how the pipeline draws: the ODE's steps (dit_steps), its
	// guidance and time shift, and the MLLM's max_new_tokens (the MLLM
	// decodes greedily whatever the temperature). Resolve it from the
	// configuration the run or bundle was made with (its sampling section).
	Sampling config.Sampling
	Seed     uint64
	// GridDir, if set, receives grid-<mode>.png of the first GridRows
	// samples (reference | generated | target).
	GridDir  string
	GridRows int
	// Device is where inputs are made; the zero value means the model's.
	Device gotch.Device
	// Oracle also evaluates OracleMode.
	Oracle bool
	// Modes, if set, are the modes to evaluate (of Modes, OracleMode and
	// ReferenceMode), in place of Modes (and OracleMode with Oracle).
	Modes []string
	// Progress, if set, receives a progress bar (a terminal) or a line
	// every few seconds, counted in rows.
	Progress io.Writer
}

// Run evaluates b on the rows in both modes (and OracleMode with o.Oracle)
// and returns the scores and the samples, by mode. The MLLM decodes
// greedily whatever o.Sampling's temperature. It must run inside
// libtorch.Run.
func Run(ctx context.Context, b *model.Bundle, reg *reward.Registry, o Options) (Scores, map[string][]Sample, error) {
	if o.Device.Name == "" {
		o.Device = b.MLLM.P.Device()
	}
	greedy := o.Sampling
	greedy.Temperature = 0
	out := Scores{}
	all := map[string][]Sample{}
	ms := modes(o.Oracle)
	if len(o.Modes) > 0 {
		for _, m := range o.Modes {
			if err := CheckMode(m); err != nil {
				return nil, nil, err
			}
		}
		ms = o.Modes
	}
	if greedy.DiTSteps < 1 || greedy.MaxNewTokens < 1 {
		return nil, nil, fmt.Errorf("evaluate: Options.Sampling needs dit_steps and max_new_tokens above 0, got %d and %d", greedy.DiTSteps, greedy.MaxNewTokens)
	}
	var bar *progress.Bar
	if o.Progress != nil {
		bar = progress.New(o.Progress, "eval", len(ms)*len(o.Rows), 5*time.Second)
	}
	for _, mode := range ms {
		var samples []Sample
		const chunk = 16
		for i := 0; i < len(o.Rows); i += chunk {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			// Row k draws from o.Seed+k, whichever chunk it falls in.
			part, err := generateRows(b, o.Rows[i:min(i+chunk, len(o.Rows))], mode, greedy, o.Seed+uint64(i), o.Device)
			if err != nil {
				return nil, nil, err
			}
			samples = append(samples, part...)
			if bar != nil {
				for range part {
					bar.Step(mode)
				}
			}
		}
		res, err := Score(ctx, reg, samples)
		if err != nil {
			return nil, nil, err
		}
		out[mode] = reward.Summarize(res)
		all[mode] = samples
		if o.GridDir != "" && len(samples) > 0 {
			n := o.GridRows
			if n <= 0 {
				n = 10
			}
			if err := WriteGrid(filepath.Join(o.GridDir, "grid-"+mode+".png"), samples[:min(len(samples), n)], 3); err != nil {
				return nil, nil, err
			}
		}
	}
	return out, all, nil
}

// Entry is one line group of a table: a label (a stage, a checkpoint) and
// its scores.
type Entry struct {
	Label  string
	Scores Scores
}

// WriteTable prints evaluations like the paper's Table 6: one line per
// entry and mode, one column per scenario, the mean partial score with the
// strict accuracy in brackets, and a last column with the mean
// InstructionScore of the composition and reasoning rows (the MLLM's
// share: what the instruction alone would score).
func WriteTable(w io.Writer, entries []Entry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "stage\tmode")
	for _, sc := range datasets.AllScenarios {
		fmt.Fprintf(tw, "\t%s", sc)
	}
	fmt.Fprint(tw, "\tinstruction (composition/reasoning)")
	fmt.Fprintln(tw)
	for _, e := range entries {
		for _, mode := range knownModes() {
			sums, ok := e.Scores[mode]
			if !ok {
				continue
			}
			by := map[string]reward.Summary{}
			for _, s := range sums {
				by[s.Scenario] = s
			}
			fmt.Fprintf(tw, "%s\t%s", e.Label, mode)
			for _, sc := range datasets.AllScenarios {
				if s, ok := by[sc]; ok {
					fmt.Fprintf(tw, "\t%.3f (%.2f)", s.Score, s.Strict)
				} else {
					fmt.Fprint(tw, "\t-")
				}
			}
			instr := func(sc string) string {
				if v, ok := by[sc].Aux[InstructionAux]; ok {
					return fmt.Sprintf("%.3f", v)
				}
				return "-"
			}
			fmt.Fprintf(tw, "\t%s/%s", instr(datasets.Composition), instr(datasets.Reasoning))
			fmt.Fprintln(tw)
		}
	}
	return tw.Flush()
}

// Score returns the mean partial score of a scenario in a mode (0 when it
// was not evaluated).
func (s Scores) Score(mode, scenario string) float64 {
	for _, x := range s[mode] {
		if x.Scenario == scenario {
			return x.Score
		}
	}
	return 0
}

// TaskSummaries aggregates samples' results per scenario and sub-task
// (datasets.Row.Task: "negation", "knowledge", "recolour", …), each
// summary's Scenario being "scenario/task", sorted. Held-out rows of some
// tasks cannot be learnt from the train split (knowledge rows hold back
// facts), so a scenario's mean hides where a change came from.
func TaskSummaries(samples []Sample) []reward.Summary {
	res := make([]reward.Result, len(samples))
	for i, s := range samples {
		res[i] = s.Result
		res[i].Scenario = s.Row.Scenario + "/" + s.Row.Task
	}
	return reward.Summarize(res)
}

// WriteTaskTable prints task summaries by mode: one line per mode and
// scenario/task with the row count, the mean partial score (strict
// accuracy in brackets) and, where there is one, the mean instruction
// score.
func WriteTaskTable(w io.Writer, tasks map[string][]reward.Summary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\ttask\trows\tscore\tinstruction")
	for _, mode := range knownModes() {
		for _, s := range tasks[mode] {
			instr := "-"
			if v, ok := s.Aux[InstructionAux]; ok {
				instr = fmt.Sprintf("%.3f", v)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f (%.2f)\t%s\n", mode, s.Scenario, s.N, s.Score, s.Strict, instr)
		}
	}
	return tw.Flush()
}
