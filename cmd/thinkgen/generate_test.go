package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shippedBase is the checked-in base checkpoint.
var shippedBase = filepath.Join("..", "..", "base", "tiny")

func writePNG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(4 * x), 200, uint8(4 * y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestGenerateRejectsBadInput: every mistake exits 2 with a message naming
// it, and nothing is written.
func TestGenerateRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.png")
	if err := os.WriteFile(corrupt, []byte("\x89PNG\r\n\x1a\nnot really"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, []byte("# only a comment\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no prompt", []string{"--model", shippedBase}, []string{"no prompt"}},
		{"empty prompt", []string{"--model", shippedBase, "a red circle", " "}, []string{"prompt 2 is empty"}},
		{"no model", []string{"a red circle"}, []string{"--model DIR", "--run RUN"}},
		{"both models", []string{"--model", shippedBase, "--run", "r", "a red circle"}, []string{"give one"}},
		{"missing bundle", []string{"--model", filepath.Join(dir, "nothing"), "a red circle"}, []string{"--model", "nothing"}},
		{"corrupt edit image", []string{"--model", shippedBase, "--edit", corrupt, "make it blue"}, []string{"--edit", "corrupt.png", "not a PNG or JPEG"}},
		{"missing edit image", []string{"--model", shippedBase, "--edit", filepath.Join(dir, "none.png"), "make it blue"}, []string{"--edit", "none.png"}},
		{"zero images", []string{"--model", shippedBase, "--num", "0", "a red circle"}, []string{"--num"}},
		{"bad top-p", []string{"--model", shippedBase, "--top-p", "0", "a red circle"}, []string{"--top-p"}},
		{"negative temperature", []string{"--model", shippedBase, "--temperature", "-1", "a red circle"}, []string{"--temperature"}},
		{"file and arguments", []string{"--model", shippedBase, "--file", empty, "a red circle"}, []string{"not both"}},
		{"file without prompts", []string{"--model", shippedBase, "--file", empty}, []string{"empty.txt", "no prompts"}},
		{"missing file", []string{"--model", shippedBase, "--file", filepath.Join(dir, "none.txt")}, []string{"--file", "none.txt"}},
		{"out is a file", []string{"--model", shippedBase, "--out", notDir, "a red circle"}, []string{"--out", "not a directory"}},
		{"version with model", []string{"--model", shippedBase, "--version", "1", "a red circle"}, []string{"--version goes with --run"}},
		{"unknown run", []string{"--run", "nosuch", "--run-dir", dir, "a red circle"}, []string{"--run nosuch"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"generate"}, tt.args...)
			if !strings.Contains(tt.name, "out is") {
				args = append(args, "--out", out)
			}
			runRefused(t, tt.want, args...)
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("the refused command created %s", out)
			}
		})
	}
}

// TestGenerateFromShippedBase generates with base/tiny: prompts from a
// file, two images each, in thinking mode; the same seed gives the same
// images, another seed others; direct mode has no thought; an edit of an
// image of another size works.
func TestGenerateFromShippedBase(t *testing.T) {
	if testing.Short() {
		t.Skip("generates")
	}
	dir := t.TempDir()
	prompts := filepath.Join(dir, "prompts.txt")
	if err := os.WriteFile(prompts, []byte("# two prompts\ntwo red circles and a blue square\n\nhow many sides has a triangle? draw that many green dots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gen := func(out string, extra ...string) []generatedImage {
		t.Helper()
		args := append([]string{"generate", "--model", shippedBase, "--out", out, "--json", "--steps", "8"}, extra...)
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		var imgs []generatedImage
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			var g generatedImage
			if err := json.Unmarshal([]byte(line), &g); err != nil {
				t.Fatalf("output line %q: %v", line, err)
			}
			imgs = append(imgs, g)
		}
		return imgs
	}
	a := gen(filepath.Join(dir, "a"), "--file", prompts, "--num", "2")
	if len(a) != 4 {
		t.Fatalf("%d images, want 4", len(a))
	}
	for i, g := range a {
		wantName := filepath.Join(dir, "a", []string{"1-1", "1-2", "2-1", "2-2"}[i]+".png")
		if g.Image != wantName || g.Mode != "think" || g.Instruction == "" {
			t.Errorf("image %d: %+v", i, g)
		}
		f, err := os.Open(g.Image)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != 32 || cfg.Height != 32 {
			t.Errorf("%s: %v %dx%d, want a 32x32 PNG", g.Image, err, cfg.Width, cfg.Height)
		}
		written, err := os.ReadFile(strings.TrimSuffix(g.Image, ".png") + ".txt")
		if err != nil || !strings.Contains(string(written), "</think>") || !strings.Contains(string(written), g.Instruction) {
			t.Errorf("%s.txt: %v %q", g.Image, err, written)
		}
	}
	same := func(x, y string) bool {
		bx, err1 := os.ReadFile(x)
		by, err2 := os.ReadFile(y)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		return bytes.Equal(bx, by)
	}
	if same(a[0].Image, a[1].Image) {
		t.Error("two images of one prompt are identical: they should draw their own noise")
	}
	b := gen(filepath.Join(dir, "b"), "--file", prompts, "--num", "2")
	for i := range a {
		if !same(a[i].Image, b[i].Image) {
			t.Errorf("image %d differs between two runs with the same seed", i)
		}
	}
	c := gen(filepath.Join(dir, "c"), "--seed", "99", "two red circles and a blue square")
	if same(a[0].Image, c[0].Image) {
		t.Error("--seed 99 drew the same image as the default seed")
	}
	d := gen(filepath.Join(dir, "d"), "--think=false", "two red circles and a blue square")
	if d[0].Mode != "direct" || d[0].Thought != "" {
		t.Errorf("direct mode: %+v", d[0])
	}
	// An export of the same base generates the same images.
	exp := filepath.Join(dir, "export")
	if code, out, errs := runCLI(t, "export", "--model", shippedBase, "--out", exp); code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, out, errs)
	}
	code, stdout, stderr := runCLI(t, "generate", "--model", exp, "--out", filepath.Join(dir, "x"), "--json", "--steps", "8", "--seed", "99", "two red circles and a blue square")
	if code != 0 {
		t.Fatalf("generate from the export: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !same(c[0].Image, filepath.Join(dir, "x", "1.png")) {
		t.Error("the export of base/tiny drew another image than base/tiny itself")
	}
	src := filepath.Join(dir, "src.png")
	writePNG(t, src, 48, 40)
	e := gen(filepath.Join(dir, "e"), "--edit", src, "make the background blue")
	if len(e) != 1 {
		t.Fatalf("edit: %d images", len(e))
	}
	if _, err := os.Stat(e[0].Image); err != nil {
		t.Error(err)
	}
}

// TestGenerateFromRun generates with a run's committed checkpoint.
func TestGenerateFromRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	dir, _ := trainSmallRun(t)
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runCLI(t, "generate", "--run", "r", "--run-dir", dir, "--out", out, "a red circle")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, w := range []string{"prompt:      a red circle", "thought:", "instruction:", "1.png"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "1.png")); err != nil {
		t.Error(err)
	}
	code, _, stderr = runCLI(t, "generate", "--run", "r", "--run-dir", dir, "--version", "7", "--out", filepath.Join(dir, "out7"), "a red circle")
	if code != 2 || !strings.Contains(stderr, "--version 7") || !strings.Contains(stderr, "keeps checkpoint versions") {
		t.Errorf("unknown version: exit %d\n%s", code, stderr)
	}
}
