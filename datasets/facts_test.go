package datasets

import (
	"slices"
	"strings"
	"testing"
)

// TestFactQuestions checks the text-only questions: several phrasings of
// every fact, held-back ones included, whose chain states the fact and
// whose answer is its value, written only in words the vocabulary already
// has (a new word would change the tokenizer, and with it every bundle's
// embedding).
func TestFactQuestions(t *testing.T) {
	facts := Facts()
	qs := FactQuestions()
	if !slices.EqualFunc(qs, FactQuestions(), func(a, b Row) bool { return a.ID == b.ID && a.Prompt == b.Prompt }) {
		t.Fatal("FactQuestions is not deterministic")
	}
	in := map[string]bool{}
	for _, w := range Vocabulary() {
		in[w] = true
	}
	phrasings := make([]int, len(facts))
	prompts := map[string]bool{}
	for _, q := range qs {
		i := FactIndex(q)
		if i < 0 {
			t.Fatalf("%s: FactIndex = %d", q.ID, i)
		}
		f := facts[i]
		phrasings[i]++
		if q.Split != FactSplit(i) || q.Task != "fact" || q.Scenario != "" || len(q.Target) > 0 || len(q.Reference) > 0 {
			t.Errorf("%s: split %q task %q scenario %q, images %d/%d bytes", q.ID, q.Split, q.Task, q.Scenario, len(q.Target), len(q.Reference))
		}
		if !strings.Contains(q.Prompt, f.Subject) || q.Think != f.Because+"." || q.Answer != f.Value+"." {
			t.Errorf("%s: %q → %q / %q, want the subject %q, %q and %q", q.ID, q.Prompt, q.Think, q.Answer, f.Subject, f.Because+".", f.Value+".")
		}
		if prompts[q.Prompt] {
			t.Errorf("%s: prompt %q asked twice", q.ID, q.Prompt)
		}
		prompts[q.Prompt] = true
		for _, text := range []string{q.Prompt, q.Think, q.Answer} {
			for _, tok := range Tokens(text) {
				if !in[tok] {
					t.Errorf("%s: token %q of %q is not in Vocabulary", q.ID, tok, text)
				}
			}
		}
	}
	for i, n := range phrasings {
		if n < 3 {
			t.Errorf("fact %d (%s) has %d phrasings, want at least 3", i, facts[i].Subject, n)
		}
	}
	if i := FactIndex(Row{ID: "train-0000004"}); i != -1 {
		t.Errorf("FactIndex of an image row = %d, want -1", i)
	}
}

// TestTrainRowsNeverShowHeldBackFacts scans train rows — those every
// image-paired stage of pre-training and the RL rollouts read, of every
// scenario and of reasoning alone — for any held-back fact's subject or
// statement in the prompt, the chain or the answer. Only the text-only
// fact questions teach them.
func TestTrainRowsNeverShowHeldBackFacts(t *testing.T) {
	var held []string
	for i, f := range Facts() {
		if FactSplit(i) == Eval {
			held = append(held, f.Subject, f.Because)
		}
	}
	if len(held) == 0 {
		t.Fatal("no held-back fact")
	}
	knowledge := 0
	for _, scenarios := range [][]string{nil, {Reasoning}, {Composition, Reasoning}} {
		rows, err := Generate(Options{Seed: 5, Split: Train, Scenarios: scenarios}, 0, 2000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Task == "knowledge" {
				knowledge++
			}
			for _, text := range []string{r.Prompt, r.Think, r.Answer} {
				for _, h := range held {
					if strings.Contains(text, h) {
						t.Fatalf("%s (scenarios %v) shows the held-back %q: %q", r.ID, scenarios, h, text)
					}
				}
			}
		}
	}
	if knowledge < 300 {
		t.Errorf("%d knowledge rows scanned, want at least 300", knowledge)
	}
}
