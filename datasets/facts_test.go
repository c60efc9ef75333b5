package datasets

import (
	"fmt"
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

// TestInDistributionSplit checks the in-distribution eval split: its rows
// follow the train split's rules (TestSplitsHoldOutCombinations) but come
// from another stream, so row i is never train row i, and few of its
// scenes repeat a train row's (the world is small: a one-object request
// can recur).
func TestInDistributionSplit(t *testing.T) {
	const n = 1000
	train, err := Generate(Options{Seed: 1, Split: Train}, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	id, err := Generate(Options{Seed: 1, Split: EvalID}, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	key := func(r Row) string { return r.Prompt + "|" + r.Think + "|" + r.Answer + "|" + string(r.Target) }
	seen := map[string]bool{}
	for _, r := range train {
		seen[key(r)] = true
	}
	repeats := 0
	for i, r := range id {
		if r.Split != EvalID || r.ID != fmt.Sprintf("eval-id-%07d", i) || r.Scenario != train[i].Scenario {
			t.Fatalf("row %d: id %s split %s scenario %s", i, r.ID, r.Split, r.Scenario)
		}
		if key(r) == key(train[i]) {
			t.Fatalf("%s is train row %d", r.ID, i)
		}
		if seen[key(r)] {
			repeats++
		}
	}
	if repeats > n/20 {
		t.Errorf("%d of %d eval-id rows repeat a train row", repeats, n)
	}
	if _, err := ParseSplit("eval-id"); err != nil {
		t.Error(err)
	}
}
