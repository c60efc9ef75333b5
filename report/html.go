package report

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot/vg"

	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/plots"
	"github.com/thinkgen/thinkgen/reward"
)

// Render writes the report as one self-contained HTML page: no script, no
// external resource; charts are inline SVG and images data: URIs. Every
// text read from the store is escaped (html/template).
func Render(w io.Writer, r *Report) error {
	v, err := newView(r)
	if err != nil {
		return fmt.Errorf("report %s: %w", r.Run, err)
	}
	if err := page.Execute(w, v); err != nil {
		return fmt.Errorf("report %s: %w", r.Run, err)
	}
	return nil
}

// view is what the template shows, computed from a Report.
type view struct {
	*Report
	Title     string
	Base      string
	Scenarios []string
	EvalRows  []evalRow
	Grids     []gridView
	Charts    []chart
	Samples   []stepView
}

type evalRow struct {
	Label, Mode string
	Cells       []evalCell
	Err         string
}

type evalCell struct {
	Score, Strict string
	N             int
	Best, Missing bool
}

type gridView struct {
	Label, Mode string
	Src         template.URL
}

type chart struct {
	Title string
	SVG   template.HTML // from plots.SVG, whose text is escaped
	Empty bool
}

type stepView struct {
	StepSamples
	Groups []groupView
}

type groupView struct {
	Group
	RefSrc  template.URL
	Samples []sampleView
}

type sampleView struct {
	Sample
	Src     template.URL
	Reward  string
	NoImage string
}

func newView(r *Report) (*view, error) {
	v := &view{Report: r, Title: "thinkgen run " + r.Run}
	if r.Config != nil {
		v.Base = r.Config.Run.Base
	}
	v.evalTable()
	for _, e := range r.Evals {
		for _, g := range e.Grids {
			v.Grids = append(v.Grids, gridView{Label: e.Label, Mode: g.Mode, Src: pngURL(g.PNG)})
		}
	}
	if err := v.charts(); err != nil {
		return nil, err
	}
	for _, s := range r.Samples {
		sv := stepView{StepSamples: s}
		for _, g := range s.Groups {
			gv := groupView{Group: g, RefSrc: pngURL(g.Reference)}
			for _, smp := range g.Samples {
				x := sampleView{Sample: smp, Src: pngURL(smp.Image)}
				if smp.HasReward {
					x.Reward = fmt.Sprintf("%.3f", smp.Reward)
				}
				switch {
				case len(smp.Image) == 0:
					x.NoImage = "no image"
				case x.Src == "":
					x.NoImage = "unreadable image"
				}
				gv.Samples = append(gv.Samples, x)
			}
			sv.Groups = append(sv.Groups, gv)
		}
		v.Samples = append(v.Samples, sv)
	}
	return v, nil
}

// pngURL returns b as a data: URI, or "" if b is not a PNG.
func pngURL(b []byte) template.URL {
	if len(b) == 0 || !isPNG(b) {
		return ""
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))
}

// evalTable lays the evaluations out as train's per-stage table: one row
// per version and mode, one column per scenario, the best score of each
// column (per mode) marked.
func (v *view) evalTable() {
	scen := append([]string(nil), datasets.AllScenarios...)
	known := map[string]bool{}
	for _, s := range scen {
		known[s] = true
	}
	var extra []string
	for _, e := range v.Evals {
		for _, sums := range e.Scores {
			for _, s := range sums {
				if !known[s.Scenario] {
					known[s.Scenario] = true
					extra = append(extra, s.Scenario)
				}
			}
		}
	}
	sort.Strings(extra)
	v.Scenarios = append(scen, extra...)
	// The best and worst score of each mode and scenario: the best is
	// marked where they differ.
	best, worst := map[string]float64{}, map[string]float64{} // by mode + "/" + scenario
	for _, e := range v.Evals {
		for mode, sums := range e.Scores {
			for _, s := range sums {
				k := mode + "/" + s.Scenario
				if b, ok := best[k]; !ok || s.Score > b {
					best[k] = s.Score
				}
				if w, ok := worst[k]; !ok || s.Score < w {
					worst[k] = s.Score
				}
			}
		}
	}
	for _, e := range v.Evals {
		if e.Err != "" {
			v.EvalRows = append(v.EvalRows, evalRow{Label: e.Label, Err: e.Err})
			continue
		}
		for _, mode := range modesOf(e.Scores) {
			by := map[string]reward.Summary{}
			for _, s := range e.Scores[mode] {
				by[s.Scenario] = s
			}
			row := evalRow{Label: e.Label, Mode: mode}
			for _, sc := range v.Scenarios {
				s, ok := by[sc]
				if !ok {
					row.Cells = append(row.Cells, evalCell{Missing: true})
					continue
				}
				row.Cells = append(row.Cells, evalCell{Score: fmt.Sprintf("%.3f", s.Score), Strict: fmt.Sprintf("%.3f", s.Strict), N: s.N,
					Best: s.Score == best[mode+"/"+sc] && best[mode+"/"+sc] > worst[mode+"/"+sc]})
			}
			v.EvalRows = append(v.EvalRows, row)
		}
	}
}

// modesOf lists an evaluation's modes: direct, think, then any other.
func modesOf(scores map[string][]reward.Summary) []string {
	var out, extra []string
	for _, m := range []string{"direct", "think"} {
		if _, ok := scores[m]; ok {
			out = append(out, m)
		}
	}
	for m := range scores {
		if m != "direct" && m != "think" {
			extra = append(extra, m)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}

// charts draws the training curves from the metrics history.
func (v *view) charts() error {
	h := v.History
	if h == nil || len(h.Steps) == 0 {
		return nil
	}
	series := func(label string, names ...string) []plots.Series {
		var out []plots.Series
		for _, n := range names {
			if y, ok := h.Values[n]; ok {
				name := label
				if name == "" {
					name = n[strings.Index(n, "/")+1:]
					name = strings.TrimSuffix(name, "_s")
				}
				out = append(out, plots.Series{Name: name, X: h.Steps, Y: y})
			}
		}
		return out
	}
	var scen []string
	for k := range h.Values {
		if strings.HasPrefix(k, "reward/") && strings.HasSuffix(k, "/mean") && strings.Count(k, "/") == 2 {
			scen = append(scen, k)
		}
	}
	sort.Strings(scen)
	rewardSeries := series("all", "reward/mean")
	for _, k := range scen {
		rewardSeries = append(rewardSeries, series(strings.Split(k, "/")[1], k)...)
	}
	panels := []plots.Panel{
		{Title: "reward (all samples and per scenario)", XLabel: "step", Series: rewardSeries},
		{Title: "KL to the reference", XLabel: "step", Series: series("kl", "loss/kl")},
		{Title: "chain of thought + instruction (tokens)", XLabel: "step", Series: series("tokens", "rollout/cot_tokens")},
		{Title: "throughput: tokens/s", XLabel: "step", Series: series("tokens/s", "rollout/tokens_per_s")},
		{Title: "throughput: images/s", XLabel: "step", Series: series("images/s", "rollout/images_per_s")},
		{Title: "step time split (s)", XLabel: "step", Series: series("", "time/rollout_s", "time/reward_s", "time/learn_s", "time/storage_s", "time/step_s")},
		{Title: "clip fraction", XLabel: "step", Series: append(append(series("low", "loss/clip_low"), series("high", "loss/clip_high")...), series("dual", "loss/dual_clip")...)},
		{Title: "entropy and zero-std groups", XLabel: "step", Series: append(series("entropy", "loss/entropy"), series("zero-std ratio", "adv/zero_std_ratio")...)},
		{Title: "gradient norm", XLabel: "step", Series: series("grad norm", "learn/grad_norm")},
	}
	for _, p := range panels {
		c := chart{Title: p.Title}
		if p.Points() == 0 {
			c.Empty = true
		} else {
			b, err := plots.SVG(p, 5*vg.Inch, 3.4*vg.Inch)
			if err != nil {
				return err
			}
			c.SVG = template.HTML(b)
		}
		v.Charts = append(v.Charts, c)
	}
	return nil
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		d := now.Sub(t)
		if d < 0 {
			d = 0
		}
		return d.Round(time.Second).String() + " ago"
	},
	"slug": func(s Status) string { return strings.ReplaceAll(string(s), " ", "-") },
	"pct": func(a, b int) string {
		if b == 0 {
			return "0"
		}
		return fmt.Sprintf("%.0f", math.Floor(100*float64(a)/float64(b)))
	},
}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 0 auto; max-width: 1400px; padding: 1em 2em; color: #222; background: #fff; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #eef7ee; }
.note { color: #666; font-style: italic; }
.status-finished { color: #2a7a2a; } .status-stale { color: #b03030; } .status-in-progress { color: #b07000; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.chart { border: 1px solid #eee; padding: 0.3em; }
.chart svg { display: block; width: 480px; height: auto; }
.grids { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; }
figcaption { font-size: 0.9em; color: #444; }
img.grid { width: 200px; image-rendering: pixelated; border: 1px solid #ddd; }
.group { border: 1px solid #ddd; border-radius: 4px; padding: 0.6em; margin: 0.8em 0; }
.prompt { font-weight: bold; }
.samples { display: flex; flex-wrap: wrap; gap: 0.8em; margin-top: 0.5em; }
.sample { width: 200px; border: 1px solid #eee; padding: 0.4em; }
.sample img, .group img.ref { width: 128px; height: 128px; image-rendering: pixelated; border: 1px solid #ccc; }
.cot { white-space: pre-wrap; font-family: "DejaVu Sans Mono", monospace; font-size: 0.8em; background: #f8f8f8; max-height: 12em; overflow: auto; padding: 0.3em; margin: 0.3em 0; }
.instr { font-size: 0.9em; }
.detail { font-size: 0.8em; color: #555; }
pre.config { background: #f8f8f8; padding: 0.8em; overflow: auto; font-size: 0.85em; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>Report made {{time .Generated}} from {{.Store}}.</p>
<nav><a href="#run">Run</a><a href="#eval">Evaluation</a><a href="#curves">Curves</a><a href="#samples">Samples</a><a href="#config">Configuration</a></nav>

<h2 id="run">Run</h2>
<table>
<tr><th>status</th><td class="status-{{slug .Status}}">{{.Status}}</td></tr>
<tr><th>steps committed</th><td>{{.State.Committed}} of {{.State.Steps}} ({{pct .State.Committed .State.Steps}}%)</td></tr>
<tr><th>phase of the last step</th><td>{{with .State.Phase}}{{.}}{{else}}—{{end}}</td></tr>
<tr><th>policy version</th><td>{{.State.PolicyVersion}}</td></tr>
<tr><th>seed</th><td>{{.State.Seed}}</td></tr>
<tr><th>base</th><td>{{with .Base}}{{.}}{{else}}—{{end}}</td></tr>
<tr><th>kept checkpoints</th><td>{{range $i, $k := .State.Kept}}{{if $i}}, {{end}}{{$k}}{{else}}—{{end}}</td></tr>
<tr><th>started</th><td>{{time .State.Started}}</td></tr>
<tr><th>updated</th><td>{{time .State.Updated}} ({{ago .Generated .State.Updated}})</td></tr>
<tr><th>last activity</th><td>{{time .Activity}} ({{ago .Generated .Activity}})</td></tr>
</table>
{{with .ConfigErr}}<p class="note">The recorded configuration could not be used: {{.}}</p>{{end}}

<h2 id="eval">Evaluation on held-out rows</h2>
{{if .EvalRows}}
<p>Mean partial score per scenario, strict accuracy in brackets; the best score of each column and mode is in bold where the scores differ.</p>
<table class="eval">
<tr><th>stage</th><th>mode</th>{{range .Scenarios}}<th>{{.}}</th>{{end}}</tr>
{{range .EvalRows}}<tr><td>{{.Label}}</td>{{if .Err}}<td colspan="{{len $.Scenarios}}" class="note">unreadable: {{.Err}}</td>{{else}}<td>{{.Mode}}</td>{{range .Cells}}{{if .Missing}}<td class="num">—</td>{{else}}<td class="num{{if .Best}} best{{end}}" title="{{.N}} rows">{{.Score}} ({{.Strict}})</td>{{end}}{{end}}{{end}}</tr>
{{end}}</table>
{{else}}
<p class="note">No evaluation in this run's store (runs/{{.Run}}/eval/ holds no scores): <code>thinkgen train</code> evaluates the base and the end of each schedule block when the schedule completes with <code>--eval-rows</code> above 0.</p>
{{end}}
{{if .Grids}}
<h3>Held-out grids (reference | generated | target)</h3>
<div class="grids">
{{range .Grids}}<figure>{{if .Src}}<img class="grid" src="{{.Src}}" alt="eval grid {{.Label}} {{.Mode}}">{{else}}<p class="note">unreadable image</p>{{end}}<figcaption>{{.Label}}, {{.Mode}} mode</figcaption></figure>
{{end}}</div>
{{end}}

<h2 id="curves">Training curves</h2>
{{if .Charts}}
<div class="charts">
{{range .Charts}}<div class="chart">{{if .Empty}}<p class="note">{{.Title}}: not logged by this run.</p>{{else}}{{.SVG}}{{end}}</div>
{{end}}</div>
{{else}}
<p class="note">No committed step yet: no metrics to draw.</p>
{{end}}

<h2 id="samples">Samples</h2>
{{if .Samples}}
{{range .Samples}}
<h3 id="step-{{.Step}}">Step {{.Step}} — {{.Phase}} (policy version {{.PolicyVersion}})</h3>
<p>{{len .Groups}} of the step's {{.Total}} prompts.</p>
{{range .Groups}}
<div class="group">
<div><span class="prompt">{{.Prompt}}</span> <span class="detail">[{{.Scenario}}, group {{.ID}}{{with .Answer}}, answer: {{.}}{{end}}]</span></div>
{{if .RefSrc}}<div><img class="ref" src="{{.RefSrc}}" alt="input image"> <span class="detail">input image</span></div>{{end}}
<div class="samples">
{{range .Samples}}<div class="sample">
{{if .Src}}<img src="{{.Src}}" alt="sample {{.Index}}">{{else}}<p class="note">{{.NoImage}}</p>{{end}}
<div>sample {{.Index}}{{if .Reward}} · reward <b>{{.Reward}}</b>{{end}}</div>
{{with .CoT}}<div class="cot">{{.}}</div>{{end}}
<div class="instr">→ {{with .Instruction}}{{.}}{{else}}<span class="note">no instruction</span>{{end}}</div>
{{with .Detail}}<div class="detail">{{.}}</div>{{end}}
</div>
{{end}}</div>
</div>
{{end}}
{{end}}
{{else}}
<p class="note">No committed step yet: no samples to show.</p>
{{end}}

<h2 id="config">Configuration (from run.json)</h2>
<pre class="config">{{.State.Config}}</pre>
</body>
</html>
`
