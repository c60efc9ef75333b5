package report

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/schedule"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// render collects and renders a run and parses the page.
func render(t *testing.T, st storage.Store, run string, opts Options) (*Report, string, *html.Node) {
	t.Helper()
	r, err := Collect(context.Background(), st, run, opts)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Render(&b, r); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return r, b.String(), doc
}

// elements returns the elements named tag, in document order.
func elements(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// text is the text content of n.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// section returns the text from the <h2 id=id> to the next <h2>.
func section(doc *html.Node, id string) string {
	var b strings.Builder
	in := false
	for n := elements(doc, "body")[0].FirstChild; n != nil; n = n.NextSibling {
		if n.Type == html.ElementNode && n.Data == "h2" {
			in = attr(n, "id") == id
		}
		if in {
			b.WriteString(text(n))
		}
	}
	return b.String()
}

func TestRenderEscapesStoreText(t *testing.T) {
	st := storagetest.Local(t)
	evil := `</textarea><script>alert("x")</script><img src=x onerror=alert(1)>`
	writeRun(t, st, fixture{run: "r1", committed: 3, prompt: "a red square " + evil, cot: "think & <b>bold</b> " + evil, evals: []int{0, 2, 3}})
	_, page, doc := render(t, st, "r1", Options{Steps: []int{1, 3}, Groups: 2})
	if n := len(elements(doc, "script")); n != 0 {
		t.Errorf("%d <script> elements: the page must have none, and store text must be escaped", n)
	}
	for _, img := range elements(doc, "img") {
		if src := attr(img, "src"); !strings.HasPrefix(src, "data:image/png;base64,") {
			t.Errorf("<img src=%.40q>: want an embedded PNG", src)
		}
		if attr(img, "onerror") != "" {
			t.Error("an onerror attribute came through from the store")
		}
	}
	samples := section(doc, "samples")
	for _, want := range []string{"a red square " + evil, "think & <b>bold</b> " + evil, "1 of 2 objects <found>"} {
		if !strings.Contains(samples, want) {
			t.Errorf("samples section lacks the text %q (escaped, it reads as written)", want)
		}
	}
	if strings.Contains(page, "<b>bold</b>") {
		t.Error("store text reached the page unescaped")
	}
	// No external resource: every src and href is embedded or an anchor.
	for _, tag := range []string{"img", "a", "link", "iframe", "object", "embed"} {
		for _, n := range elements(doc, tag) {
			for _, k := range []string{"src", "href"} {
				if v := attr(n, k); v != "" && !strings.HasPrefix(v, "data:") && !strings.HasPrefix(v, "#") {
					t.Errorf("<%s %s=%q>: an external resource", tag, k, v)
				}
			}
		}
	}
}

func TestRenderSections(t *testing.T) {
	st := storagetest.Local(t)
	writeRun(t, st, fixture{run: "r1", committed: 3, prompt: "draw", cot: "a red square", evals: []int{0, 2, 3}})
	r, _, doc := render(t, st, "r1", Options{Steps: []int{1, 3}, Groups: 2})
	if r.Status != Finished {
		t.Errorf("status %q, want finished (3 of 3 steps)", r.Status)
	}
	// Eval: 3 versions × 2 modes, labelled as train labels them; the
	// best composition score (stage5@3) is marked.
	rows := elements(elements(doc, "table")[1], "tr")
	var labels []string
	for _, tr := range rows[1:] {
		td := elements(tr, "td")
		labels = append(labels, text(td[0])+"/"+text(td[1]))
	}
	want := []string{"base/direct", "base/think", "stage4@2/direct", "stage4@2/think", "stage5@3/direct", "stage5@3/think"}
	if !slices.Equal(labels, want) {
		t.Errorf("eval rows %v, want %v", labels, want)
	}
	if got := text(elements(rows[5], "td")[2]); got != "0.300 (0.150)" {
		t.Errorf("stage5@3 direct composition %q, want 0.300 (0.150)", got)
	}
	if c := attr(elements(rows[5], "td")[2], "class"); !strings.Contains(c, "best") {
		t.Errorf("best composition cell class %q", c)
	}
	// 3 × 2 eval grids; 9 charts, all drawn (every metric they use is
	// logged, except clipping, entropy and grad norm).
	var grids, charts int
	for _, img := range elements(doc, "img") {
		if strings.Contains(attr(img, "class"), "grid") {
			grids++
		}
	}
	for _, svg := range elements(doc, "svg") {
		if len(elements(svg, "path")) > 0 {
			charts++
		}
	}
	if grids != 6 || charts != 6 {
		t.Errorf("%d grids, %d drawn charts; want 6 and 6", grids, charts)
	}
	// Samples: steps 1 and 3, two of six prompts each, two samples each,
	// rewards from the reward shard, one unreadable image.
	samples := section(doc, "samples")
	for _, want := range []string{"Step 1 — mllm-grpo (policy version 0)", "Step 3 — dit-grpo (policy version 2)", "2 of the step's 6 prompts",
		"draw #0", "draw #1", "reward 0.110", "unreadable image"} {
		if !strings.Contains(samples, want) {
			t.Errorf("samples section lacks %q", want)
		}
	}
	if strings.Contains(samples, "draw #2") {
		t.Error("a third prompt shown with --groups 2")
	}
	if cfg := section(doc, "config"); !strings.Contains(cfg, "prompts_per_step: 8") {
		t.Errorf("config section lacks the run's YAML: %.200q", cfg)
	}
}

func TestRenderWithoutEvalOrSteps(t *testing.T) {
	tests := []struct {
		name      string
		committed int
		want      map[string]string // section → text
	}{
		{"no eval", 2, map[string]string{"eval": "No evaluation in this run's store", "samples": "Step 2 — mllm-grpo"}},
		{"nothing committed", 0, map[string]string{"eval": "No evaluation", "curves": "No committed step yet", "samples": "No committed step yet", "run": "0 of 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := storagetest.Local(t)
			writeRun(t, st, fixture{run: "r", committed: tt.committed, prompt: "p", cot: "c"})
			r, _, doc := render(t, st, "r", Options{})
			for sec, want := range tt.want {
				if got := section(doc, sec); !strings.Contains(got, want) {
					t.Errorf("section %s lacks %q: %.300q", sec, want, got)
				}
			}
			if r.Status != InProgress {
				t.Errorf("status %q, want in progress", r.Status)
			}
		})
	}
}

func TestCollectErrors(t *testing.T) {
	st := storagetest.Local(t)
	writeRun(t, st, fixture{run: "r", committed: 2})
	if err := st.Put(context.Background(), runs.StateKey("bad"), strings.NewReader("{not json")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		run   string
		steps []int
		is    func(error) bool
		want  string
	}{
		{"missing run", "nope", nil, func(err error) bool { return errors.Is(err, ErrNoRun) }, "runs/nope/run.json"},
		{"step not committed", "r", []int{1, 3}, func(err error) bool { var se *StepError; return errors.As(err, &se) }, "step 3: run r has committed steps 1–2"},
		{"step zero", "r", []int{0}, func(err error) bool { var se *StepError; return errors.As(err, &se) }, "step 0"},
		{"corrupt run.json", "bad", nil, func(err error) bool { return err != nil && !errors.Is(err, ErrNoRun) }, "runs/bad/run.json"},
		{"invalid name", "../x", nil, func(err error) bool { return err != nil }, "../x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Collect(context.Background(), st, tt.run, Options{Steps: tt.steps})
			if !tt.is(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestDefaultStepsAndLabels(t *testing.T) {
	c := tinyConfig(t) // 2 GRPO steps, then 1 FlowGRPO step
	c.Schedule.Cycles = 2
	plan, err := schedule.Plan(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		committed int
		want      []int
	}{{0, []int{}}, {1, []int{1}}, {2, []int{1, 2}}, {4, []int{1, 2, 3, 4}}, {5, []int{1, 2, 3, 5}}, {6, []int{1, 2, 3, 5, 6}}} {
		if got := DefaultSteps(plan, tt.committed); !slices.Equal(got, tt.want) {
			t.Errorf("DefaultSteps(%d committed) = %v, want %v", tt.committed, got, tt.want)
		}
	}
	if got := DefaultSteps(nil, 7); !slices.Equal(got, []int{1, 7}) {
		t.Errorf("DefaultSteps without a plan = %v", got)
	}
	for v, want := range map[int]string{0: "base", 2: "stage4@2", 3: "stage5@3", 5: "stage4@5", 7: "v7"} {
		if got := VersionLabel(plan, v); got != want {
			t.Errorf("VersionLabel(%d) = %q, want %q", v, got, want)
		}
	}
	if c.Schedule.Phases[0].Phase != config.PhaseMLLMGRPO {
		t.Fatal("tiny.yaml starts with mllm-grpo")
	}
}

func TestStatusOf(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	start := now.Add(-10 * time.Hour)
	tests := []struct {
		name              string
		committed, steps  int
		updated, activity time.Time
		staleAfter        time.Duration
		want              Status
		started           time.Time
	}{
		{"finished long ago", 16, 16, start.Add(time.Hour), start.Add(time.Hour), 0, Finished, start},
		{"recent commit", 3, 16, now.Add(-time.Minute), now.Add(-time.Minute), 0, InProgress, start},
		{"silent an hour, fast steps", 8, 16, start.Add(time.Hour), now.Add(-time.Hour), 0, Stale, start},
		{"silent an hour, a shard of the next step just written", 8, 16, start.Add(time.Hour), now.Add(-time.Second), 0, InProgress, start},
		{"silent an hour, steps of 3 h", 2, 16, start.Add(6 * time.Hour), now.Add(-time.Hour), 0, InProgress, start},
		{"silent 20 h, steps of 5 h", 2, 16, now.Add(-20 * time.Hour), now.Add(-20 * time.Hour), 0, Stale, now.Add(-30 * time.Hour)},
		{"nothing committed, just started", 0, 16, now.Add(-time.Minute), now.Add(-time.Minute), 0, InProgress, start},
		{"custom limit", 3, 16, now.Add(-5 * time.Minute), now.Add(-5 * time.Minute), time.Minute, Stale, now.Add(-8 * time.Minute)},
	}
	for _, tt := range tests {
		rs := &runs.State{Committed: tt.committed, Steps: tt.steps, Started: tt.started, Updated: tt.updated}
		if got := StatusOf(rs, tt.activity, now, tt.staleAfter); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestListRuns(t *testing.T) {
	st := storagetest.Local(t)
	ctx := context.Background()
	writeRun(t, st, fixture{run: "done", committed: 3, evals: []int{0, 2, 3}})
	writeRun(t, st, fixture{run: "killed", committed: 1, updated: time.Now().Add(-2 * time.Hour)})
	writeRun(t, st, fixture{run: "running", committed: 1})
	if err := st.Put(ctx, runs.StateKey("broken"), strings.NewReader(`{"version": 9}`)); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "runs/no-state/eval/000000.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	runs, err := ListRuns(ctx, st, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, r.Name+":"+string(r.Status))
	}
	want := []string{"broken:", "done:finished", "killed:stale", "running:in progress"}
	if !slices.Equal(got, want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	if !strings.Contains(runs[0].Err, "version 9") {
		t.Errorf("broken run: error %q", runs[0].Err)
	}
	done := runs[1]
	if done.Committed != 3 || done.Steps != 3 || done.Phase != "dit-grpo" {
		t.Errorf("done: %d/%d %s", done.Committed, done.Steps, done.Phase)
	}
	// Means over composition (0.1v + 0.01 in think mode) and text
	// (0.3 - 0.05v): highest for version 3 in think mode.
	if b := done.Best; b == nil || b.Label != "stage5@3" || b.Mode != "think" {
		t.Errorf("best %+v, want stage5@3 think", b)
	}
	var by []string
	for _, b := range done.BestByScenario {
		by = append(by, b.Scenario+"="+b.Label+"/"+b.Mode)
	}
	if want := []string{"composition=stage5@3/think", "text=base/direct"}; !slices.Equal(by, want) {
		t.Errorf("best by scenario %v, want %v", by, want)
	}
	if runs[2].Best != nil {
		t.Errorf("killed run without eval has a best score %+v", runs[2].Best)
	}
}
