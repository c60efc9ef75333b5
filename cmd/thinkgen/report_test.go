package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/evaluate"
	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/report"
)

func TestReportRunsUsageErrors(t *testing.T) {
	empty := t.TempDir()
	missing := filepath.Join(t.TempDir(), "nothing")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"report without run", []string{"report", "--run-dir", empty}, []string{"--run is required"}},
		{"report of a missing run", []string{"report", "--run-dir", empty, "--run", "nope"}, []string{"--run", "runs/nope/run.json", "thinkgen runs"}},
		{"report bad run name", []string{"report", "--run-dir", empty, "--run", "a/b"}, []string{"--run"}},
		{"report bad groups", []string{"report", "--run-dir", empty, "--run", "r", "--groups", "0"}, []string{"--groups"}},
		{"report bad steps", []string{"report", "--run-dir", empty, "--run", "r", "--steps", "x"}, []string{"--steps"}},
		{"report missing store", []string{"report", "--run-dir", missing, "--run", "r"}, []string{missing, "no such directory"}},
		{"runs missing store", []string{"runs", "--run-dir", missing}, []string{missing, "no such directory"}},
		{"runs bad stale-after", []string{"runs", "--run-dir", empty, "--stale-after", "-1s"}, []string{"--stale-after"}},
		{"runs argument", []string{"runs", "extra"}, []string{"unexpected arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.html")
			args := tt.args
			if args[0] == "report" {
				args = append(args, "--out", out)
			}
			runRefused(t, tt.want, args...)
			if _, err := os.Stat(out); err == nil {
				t.Error("a report was written")
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a missing store directory was created")
	}
	code, out, _ := runCLI(t, "runs", "--run-dir", empty)
	if code != 0 || !strings.Contains(out, "no runs in") {
		t.Errorf("runs of an empty store: exit %d, %q", code, out)
	}
}

// renderCheck is injected before </body> of a copy of the report: when the
// page has loaded it appends #render-check saying whether every image
// decoded (naturalWidth > 0) and every chart SVG drew something with a
// size, and whether a script error happened.
const renderCheck = `<script>
var renderErrors = [];
window.addEventListener("error", function (e) { renderErrors.push("error: " + e.message); });
window.addEventListener("load", function () {
  var bad = renderErrors.slice(), imgs = document.querySelectorAll("img"), svgs = document.querySelectorAll(".chart svg");
  imgs.forEach(function (im, i) {
    if (!im.complete || im.naturalWidth === 0 || im.getBoundingClientRect().width === 0) bad.push("img " + i + " " + im.alt);
  });
  svgs.forEach(function (s, i) {
    var r = s.getBoundingClientRect(), b = s.getBBox();
    if (s.querySelectorAll("path").length === 0 || r.width === 0 || r.height === 0 || b.width === 0) bad.push("chart " + i);
  });
  var m = document.createElement("div");
  m.id = "render-check";
  m.setAttribute("data-images", imgs.length);
  m.setAttribute("data-charts", svgs.length);
  m.textContent = bad.length ? "FAIL " + bad.join("; ") : "OK";
  document.body.appendChild(m);
});
</script>
</body>`

// TestReportInChromium trains a short real run from the shipped base/tiny
// (2 GRPO steps, 1 FlowGRPO step, eval on 5 held-out rows), writes its
// report, lists it with `runs`, and renders the report in headless
// Chromium: the screenshot is not blank, every image and chart is drawn,
// and the console stays silent.
func TestReportInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	chromium := testenv.Chromium(t)
	dir := t.TempDir()
	start := time.Now()
	code, out, errs := runCLI(t, "train", "--config", filepath.Join("..", "..", "configs", "tiny.yaml"), "--run-dir", dir, "--run", "rep", "--eval-rows", "5",
		"--set", "run.base="+filepath.Join("..", "..", "base", "tiny"), "--set", "run.threads=1",
		"--set", "schedule.phases.0.steps=2", "--set", "schedule.phases.1.steps=1",
		"--set", "grpo.prompts_per_step=3", "--set", "grpo.group=4", "--set", "grpo.image_steps=4",
		"--set", "flow_grpo.prompts_per_step=2", "--set", "flow_grpo.group=3", "--set", "flow_grpo.steps=4",
		"--set", "sampling.dit_steps=8")
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, out, errs)
	}
	t.Logf("trained 3 steps and evaluated 3 versions in %s", time.Since(start).Round(time.Second))
	// Each stage's gain over the base, paired by row: 5 rows are one per
	// scenario, too few for an interval.
	for _, want := range []string{"stage4@2 against base, paired by row", "stage5@3 against base, paired by row"} {
		if !strings.Contains(out, want) {
			t.Errorf("train's output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^think\s+composition\s+1\s+\d\.\d{3}\s+\d\.\d{3}\s+[+-]\d\.\d{3}\s+—\s+[01]/[01]$`).MatchString(out) {
		t.Errorf("no paired line for think composition:\n%s", out)
	}
	// A section per held-out split, each version's rows kept per split.
	for _, want := range []string{"held-out scores, out of distribution, eval split (5 rows", "held-out scores, in distribution, eval-id split (5 rows"} {
		if !strings.Contains(out, want) {
			t.Errorf("train's output lacks %q:\n%s", want, out)
		}
	}
	for _, c := range []struct{ key, id string }{{"000002-rows.json", "eval-"}, {"000002-id-rows.json", "eval-id-"}} {
		var perRow map[string][]evaluate.RowScore
		if b, err := os.ReadFile(filepath.Join(dir, "runs", "rep", "eval", c.key)); err != nil {
			t.Error(err)
		} else if err := json.Unmarshal(b, &perRow); err != nil || len(perRow["think"]) != 5 || len(perRow["direct"]) != 5 || !strings.HasPrefix(perRow["think"][0].ID, c.id) {
			t.Errorf("eval/%s: %v, %d think and %d direct rows, want 5 and 5 of ids %s…", c.key, err, len(perRow["think"]), len(perRow["direct"]), c.id)
		}
	}

	// runs: the run is finished, with a best eval score.
	code, out, errs = runCLI(t, "runs", "--run-dir", dir, "--json")
	if code != 0 {
		t.Fatalf("runs: exit %d: %s", code, errs)
	}
	var runs []report.Summary
	if err := json.Unmarshal([]byte(out), &runs); err != nil {
		t.Fatalf("runs --json: %v\n%s", err, out)
	}
	if len(runs) != 1 || runs[0].Name != "rep" || runs[0].Status != report.Finished || runs[0].Committed != 3 || runs[0].Best == nil || len(runs[0].BestByScenario) != 5 {
		t.Errorf("runs: %+v", runs)
	}
	if code, out, _ := runCLI(t, "runs", "--run-dir", dir); code != 0 || !regexp.MustCompile(`rep\s+finished\s+3/3\s+dit-grpo\s+\d\.\d{3} (base|stage4@2|stage5@3) (direct|think)`).MatchString(out) {
		t.Errorf("runs table: exit %d\n%s", code, out)
	}

	// report: a bad step is a usage error; the default steps are 1, 2, 3.
	html := filepath.Join(t.TempDir(), "report.html")
	if code, _, errs := runCLI(t, "report", "--run-dir", dir, "--run", "rep", "--out", html, "--steps", "1,9"); code != 2 || !strings.Contains(errs, "step 9: run rep has committed steps 1–3") {
		t.Errorf("--steps 1,9: exit %d: %s", code, errs)
	}
	if code, out, errs := runCLI(t, "report", "--run-dir", dir, "--run", "rep", "--out", html); code != 0 || !strings.Contains(out, "3 evaluated versions, 3 sample steps") {
		t.Fatalf("report: exit %d\n%s\n%s", code, out, errs)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"stage4@2", "stage5@3", "Step 1 — mllm-grpo", "Step 3 — dit-grpo", "KL to the reference", "throughput: images/s"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Every sample (2 GRPO steps × 3 prompts × 4 chains, 1 FlowGRPO step ×
	// 2 prompts × 3 images) shows its reward from the step's reward shard.
	if n := strings.Count(string(page), "· reward <b>"); n != 30 {
		t.Errorf("%d samples with a reward, want 30", n)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(html), ".report.html.tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// Render a copy with the check script in headless Chromium.
	checked := filepath.Join(t.TempDir(), "checked.html")
	if err := os.WriteFile(checked, []byte(strings.Replace(string(page), "</body>", renderCheck, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	dom, logs := runChromium(t, chromium, checked, "--dump-dom")
	m := regexp.MustCompile(`<div id="render-check" data-images="(\d+)" data-charts="(\d+)">([^<]*)</div>`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no render check in the DOM (the page did not load?)\n%.2000s", dom)
	}
	// Chromium saw every image and chart of the page, and drew them all.
	wantImages, wantCharts := strings.Count(string(page), "<img "), strings.Count(string(page), "<svg ")
	if m[3] != "OK" || m[1] != strconv.Itoa(wantImages) || m[2] != strconv.Itoa(wantCharts) || wantImages < 6+24 || wantCharts < 6 {
		t.Errorf("render check: %s (images %s of %d, charts %s of %d; want at least 6 eval grids + 24 samples, 6 charts)", m[3], m[1], wantImages, m[2], wantCharts)
	}
	t.Logf("Chromium drew %s images and %s charts", m[1], m[2])
	shot := filepath.Join(t.TempDir(), "shot.png")
	_, logs2 := runChromium(t, chromium, html, "--screenshot="+shot)
	for _, l := range strings.Split(logs+logs2, "\n") {
		if consoleLine.MatchString(l) {
			t.Errorf("console output: %s", l)
		}
	}
	std, colours := pixelStats(t, shot)
	t.Logf("screenshot: luminance std %.1f, %d distinct colours", std, colours)
	if std < 10 || colours < 64 {
		t.Errorf("screenshot looks blank: luminance std %.1f, %d distinct colours", std, colours)
	}
	if keep := os.Getenv("THINKGEN_KEEP_REPORT"); keep != "" {
		os.WriteFile(filepath.Join(keep, "report.html"), page, 0o644)
		if b, err := os.ReadFile(shot); err == nil {
			os.WriteFile(filepath.Join(keep, "report-screenshot.png"), b, 0o644)
		}
	}
}

// consoleLine matches Chromium's log line for a page's console message or
// uncaught error; the report writes none.
var consoleLine = regexp.MustCompile(`:CONSOLE[(:]`)

// runChromium runs headless Chromium on the file with one more flag
// (--dump-dom or --screenshot=…) and returns stdout and its log.
func runChromium(t *testing.T, chromium, file, flag string) (stdout, log string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--enable-logging=stderr", "--v=0", "--window-size=1400,5000", flag, "file://"+file)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", chromium, flag, err, e.String())
	}
	return o.String(), e.String()
}

// pixelStats returns the standard deviation of the screenshot's luminance
// and its number of distinct colours.
func pixelStats(t *testing.T, path string) (float64, int) {
	t.Helper()
	img := testutil.ReadPNG(t, path)
	var sum, sq float64
	colours := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			l := (0.299*float64(r) + 0.587*float64(g) + 0.114*float64(bl)) / 257
			sum += l
			sq += l * l
		}
	}
	n := float64(b.Dx() * b.Dy())
	mean := sum / n
	return math.Sqrt(max(0, sq/n-mean*mean)), len(colours)
}

// TestReadOnlyCommandsRefuseAMissingStore: the commands that only read a
// store exit 2 naming a local store directory that does not exist, and do
// not create it.
func TestReadOnlyCommandsRefuseAMissingStore(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-store")
	for _, args := range [][]string{
		{"runs", "--run-dir", missing},
		{"report", "--run", "r", "--run-dir", missing, "--out", filepath.Join(t.TempDir(), "r.html")},
		{"export", "--run", "r", "--run-dir", missing, "--out", filepath.Join(t.TempDir(), "out")},
		{"tensorboard", "--run", "r", "--run-dir", missing, "--logdir", filepath.Join(t.TempDir(), "tb")},
		{"generate", "--run", "r", "--run-dir", missing, "--out", filepath.Join(t.TempDir(), "img"), "a red circle"},
		{"gc", "--run", "r", "--run-dir", missing},
	} {
		code, _, errs := runCLI(t, args...)
		if code != 2 || !strings.Contains(errs, "no such directory") || !strings.Contains(errs, missing) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 naming %s", args[0], code, errs, missing)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("%s created the store directory", args[0])
		}
	}
}
