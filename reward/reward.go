package reward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"slices"
	"sort"
	"strings"

	"github.com/thinkgen/thinkgen/datasets"
)

// Item is one image to score.
type Item struct {
	// ID names the item in results and errors (a row id).
	ID string
	// Scenario routes the item to its rule model.
	Scenario string
	// Spec is the row's target spec, JSON (datasets.Spec).
	Spec json.RawMessage
	// Image is the generated (or, for editing and reflection, edited) image.
	Image image.Image
	// Reference is the image that was edited: required for editing; for
	// reflection the flawed image (unused by the score).
	Reference image.Image
	// Text is what the MLLM wrote; for reflection its correcting
	// instruction, compared with Answer.
	Text string
	// Answer is the reference answer of the row (reflection: the reference
	// correction).
	Answer string
}

// Result is the score of one item.
type Result struct {
	ID       string `json:"id"`
	Scenario string `json:"scenario"`
	// Score is the reward: Weight × Partial, 0 when Err is set.
	Score float64 `json:"score"`
	// Partial is the rule model's score in [0, 1] (partial credit).
	Partial float64 `json:"partial"`
	// Strict is 1 when the image fully meets the target, else 0.
	Strict float64 `json:"strict"`
	// Weight is the scenario's weight from the configuration.
	Weight float64 `json:"weight"`
	// Aux holds logged metrics that are not part of the reward, e.g.
	// "ocr_reward", "word_accuracy", "preservation", "ned".
	Aux map[string]float64 `json:"aux,omitempty"`
	// Err says why the item could not be scored (a bad image or spec).
	Err string `json:"error,omitempty"`
}

// Scorer scores a batch of items, one result per item in order. An item
// that cannot be scored gets a Result with Err set and a zero score; the
// returned error is for failures of the whole batch (a cancelled context,
// an unknown scenario, an unreachable service).
type Scorer interface {
	Score(ctx context.Context, items []Item) ([]Result, error)
}

// ErrUnknownScenario is wrapped by the error for an item whose scenario
// has no scorer.
var ErrUnknownScenario = errors.New("thinkgen/reward: unknown scenario")

// RuleFunc scores one item in process.
type RuleFunc func(it Item) (Result, error)

// Rule is a Scorer that applies a RuleFunc to each item in turn.
type Rule struct {
	Scenario string
	Func     RuleFunc
}

// Score implements Scorer.
func (r Rule) Score(ctx context.Context, items []Item) ([]Result, error) {
	out := make([]Result, len(items))
	for i, it := range items {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("score %s: %w", r.Scenario, err)
		}
		res, err := r.Func(it)
		res.ID, res.Scenario = it.ID, it.Scenario
		if err != nil {
			res = Result{ID: it.ID, Scenario: it.Scenario, Err: fmt.Sprintf("%s item %q: %v", r.Scenario, it.ID, err)}
		}
		out[i] = res
	}
	return out, nil
}

// Rules returns the built-in rule model of each scenario.
func Rules() map[string]Scorer {
	return map[string]Scorer{
		datasets.Composition: Rule{datasets.Composition, ScoreComposition},
		datasets.Reasoning:   Rule{datasets.Reasoning, ScoreComposition},
		datasets.Text:        Rule{datasets.Text, ScoreText},
		datasets.Editing:     Rule{datasets.Editing, ScoreEditing},
		datasets.Reflection:  Rule{datasets.Reflection, ScoreReflection},
	}
}

// Registry routes items to the scorer of their scenario and weighs the
// results. It is itself a Scorer.
type Registry struct {
	scorers map[string]Scorer
	weights map[string]float64
}

// NewRegistry returns a registry with the given scorers and per-scenario
// weights (config.Reward.Weights; a scenario without a weight weighs 1).
func NewRegistry(scorers map[string]Scorer, weights map[string]float64) *Registry {
	return &Registry{scorers: scorers, weights: weights}
}

// Builtin returns a registry of the built-in rule models.
func Builtin(weights map[string]float64) *Registry { return NewRegistry(Rules(), weights) }

// Scenarios lists the registered scenarios, sorted.
func (r *Registry) Scenarios() []string {
	var s []string
	for k := range r.scorers {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// Weight is the weight of a scenario.
func (r *Registry) Weight(scenario string) float64 {
	if w, ok := r.weights[scenario]; ok {
		return w
	}
	return 1
}

// Score routes each item by its scenario, scores each scenario's items as
// one batch, and returns the results in the items' order with Weight and
// Score set. An item whose scenario has no scorer fails the whole call with
// an error naming the scenario.
func (r *Registry) Score(ctx context.Context, items []Item) ([]Result, error) {
	byScenario := map[string][]int{}
	var order []string
	for i, it := range items {
		if _, ok := r.scorers[it.Scenario]; !ok {
			return nil, fmt.Errorf("%w %q (item %d, id %q); registered: %s", ErrUnknownScenario, it.Scenario, i, it.ID, strings.Join(r.Scenarios(), ", "))
		}
		if _, ok := byScenario[it.Scenario]; !ok {
			order = append(order, it.Scenario)
		}
		byScenario[it.Scenario] = append(byScenario[it.Scenario], i)
	}
	out := make([]Result, len(items))
	for _, sc := range order {
		idx := byScenario[sc]
		batch := make([]Item, len(idx))
		for j, i := range idx {
			batch[j] = items[i]
		}
		res, err := r.scorers[sc].Score(ctx, batch)
		if err != nil {
			return nil, fmt.Errorf("score %d %s items: %w", len(batch), sc, err)
		}
		if len(res) != len(batch) {
			return nil, fmt.Errorf("score %s: %d results for %d items", sc, len(res), len(batch))
		}
		w := r.Weight(sc)
		for j, i := range idx {
			res[j].ID, res[j].Scenario, res[j].Weight = items[i].ID, sc, w
			res[j].Score = 0
			if res[j].Err == "" {
				res[j].Score = w * res[j].Partial
			}
			out[i] = res[j]
		}
	}
	return out, nil
}

func parseSpec(raw json.RawMessage) (*datasets.Spec, error) {
	if len(raw) == 0 {
		return nil, errors.New("spec is missing")
	}
	return datasets.ParseSpec(raw)
}

func strict(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

// ScoreComposition scores the image against the spec's requirements with
// GenEval's partial credit (datasets.CheckRequirements) on the detector's
// objects: the rule model of composition, and of reasoning, whose spec
// holds the resolved target.
func ScoreComposition(it Item) (Result, error) {
	spec, err := parseSpec(it.Spec)
	if err != nil {
		return Result{}, err
	}
	if len(spec.Require) == 0 {
		return Result{}, errors.New("spec has no requirements to score against")
	}
	ds, err := Detect(it.Image)
	if err != nil {
		return Result{}, err
	}
	c := datasets.CheckRequirements(spec.Require, objects(ds))
	return Result{Partial: c.Partial, Strict: strict(c.Strict), Aux: map[string]float64{"objects": float64(len(ds))}}, nil
}

// ScoreText reads the image's text with ReadText and scores it against the
// spec's text: Partial is flow_grpo's OCRReward, Strict the word accuracy
// (1 only when the whole string is read right).
func ScoreText(it Item) (Result, error) {
	spec, err := parseSpec(it.Spec)
	if err != nil {
		return Result{}, err
	}
	if spec.Scene.Text == "" {
		return Result{}, errors.New("spec has no text to score against")
	}
	got, err := ReadText(it.Image)
	if err != nil {
		return Result{}, err
	}
	ocr, wacc := OCRReward(got, spec.Scene.Text), WordAccuracy(got, spec.Scene.Text)
	return Result{Partial: ocr, Strict: strict(wacc == 1), Aux: map[string]float64{"ocr_reward": ocr, "word_accuracy": wacc}}, nil
}

// StrictPreservation is the preservation an edit needs for a strict pass.
const StrictPreservation = 0.9

// ScoreEditing scores an edited image: target match × preservation.
//
// Target match: for a text scene, the OCR reward of the image's text
// against the target text; otherwise the detector's objects against the
// target scene's, matched exactly (shape, colour, size, cell), as
// matched / max(#target, #detected), 1 when both are empty.
// Preservation: 1 − the mean absolute pixel difference (per channel, in
// [0, 1]) between the image and the reference over the pixels the edit
// must leave alone — those where the reference equals the render of the
// target, at least one pixel away from any pixel the edit changes.
// Strict: the match is exact and preservation ≥ StrictPreservation.
func ScoreEditing(it Item) (Result, error) {
	spec, err := parseSpec(it.Spec)
	if err != nil {
		return Result{}, err
	}
	img, err := toRGBA(it.Image, "image")
	if err != nil {
		return Result{}, err
	}
	ref, err := toRGBA(it.Reference, "reference")
	if err != nil {
		return Result{}, err
	}
	size := img.Bounds().Dx()
	if ref.Bounds().Dx() != size {
		return Result{}, fmt.Errorf("reference is %d px and image %d px: want the same size", ref.Bounds().Dx(), size)
	}
	target, err := datasets.Render(spec.Scene, size)
	if err != nil {
		return Result{}, err
	}
	classes := classify(img)
	var match float64
	if spec.Scene.Text != "" {
		match = OCRReward(readText(img, classes), spec.Scene.Text)
	} else {
		match = matchScene(spec.Scene.Objects, objects(detect(img, classes)))
	}
	pres := preservation(img, ref, target)
	return Result{
		Partial: match * pres,
		Strict:  strict(match == 1 && pres >= StrictPreservation),
		Aux:     map[string]float64{"target_match": match, "preservation": pres},
	}, nil
}

func matchScene(want, got []datasets.Object) float64 {
	if len(want) == 0 && len(got) == 0 {
		return 1
	}
	left := slices.Clone(got)
	hit := 0
	for _, w := range want {
		if i := slices.Index(left, w); i >= 0 {
			left = slices.Delete(left, i, i+1)
			hit++
		}
	}
	return float64(hit) / float64(max(len(want), len(got)))
}

func preservation(img, ref, target *image.RGBA) float64 {
	size := img.Bounds().Dx()
	changed := make([]bool, size*size)
	for i := range changed {
		changed[i] = !slices.Equal(ref.Pix[4*i:4*i+3], target.Pix[4*i:4*i+3])
	}
	sum, n := 0.0, 0
	for y := range size {
		for x := range size {
			near := false
			for dy := -1; dy <= 1 && !near; dy++ {
				for dx := -1; dx <= 1; dx++ {
					qx, qy := x+dx, y+dy
					if qx >= 0 && qx < size && qy >= 0 && qy < size && changed[qy*size+qx] {
						near = true
						break
					}
				}
			}
			if near {
				continue
			}
			i := 4 * (y*size + x)
			for c := range 3 {
				d := int(img.Pix[i+c]) - int(ref.Pix[i+c])
				sum += float64(max(d, -d)) / 255
			}
			n += 3
		}
	}
	if n == 0 {
		return 1
	}
	return 1 - sum/float64(n)
}

// ScoreReflection scores a corrected image against the original request
// (the spec's requirements), as composition does. When the item carries
// both the written correction (Text) and the reference one (Answer), Aux
// logs their normalised edit distance as "ned"; it is not part of the
// reward.
func ScoreReflection(it Item) (Result, error) {
	res, err := ScoreComposition(it)
	if err != nil {
		return Result{}, err
	}
	if it.Text != "" && it.Answer != "" {
		res.Aux["ned"] = NED(it.Text, it.Answer)
	}
	return res, nil
}
