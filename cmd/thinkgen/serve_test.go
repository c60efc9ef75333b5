package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/internal/testutil"
)

func TestServeRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no model", nil, []string{"--model DIR", "--run RUN"}},
		{"both models", []string{"--model", shippedBase, "--run", "r"}, []string{"give one"}},
		{"missing bundle", []string{"--model", filepath.Join(dir, "nothing")}, []string{"--model", "nothing"}},
		{"version with model", []string{"--model", shippedBase, "--version", "1"}, []string{"--version goes with --run"}},
		{"unknown run", []string{"--run", "nosuch", "--run-dir", dir}, []string{"--run nosuch"}},
		{"bad top-p", []string{"--model", shippedBase, "--top-p", "2"}, []string{"--top-p"}},
		{"no workers", []string{"--model", shippedBase, "--workers", "0"}, []string{"--workers"}},
		{"zero limit", []string{"--model", shippedBase, "--max-n", "0"}, []string{"--max-n"}},
		{"short token", []string{"--model", shippedBase, "--token-file", writeToken(t, dir, "short")}, []string{"token file", "shorter than 16"}},
		{"arguments", []string{"--model", shippedBase, "a prompt"}, []string{"unexpected arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runRefused(t, tt.want, append([]string{"serve", "--listen", "127.0.0.1:0"}, tt.args...)...)
		})
	}
	if code, _, errs := runCLI(t, "serve", "--model", shippedBase, "--listen", "0.0.0.0:0"); code != 1 || !strings.Contains(errs, "only on loopback") {
		t.Errorf("serve on all interfaces without a token: exit %d, stderr %q; want 1, refused", code, errs)
	}
}

// startServe runs thinkgen serve with args on a free loopback port until
// ctx ends and returns its base URL once it serves GET /v1/models (with
// token, if not empty), its standard error and a channel that receives
// its exit code.
func startServe(ctx context.Context, t *testing.T, token string, args ...string) (string, *testutil.SyncBuffer, <-chan int) {
	t.Helper()
	stdout, stderr := &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...), &env{stdout: stdout, stderr: stderr, getenv: os.Getenv})
	}()
	addr := regexp.MustCompile(`serving it on (http://[0-9.:]+)/v1`)
	var base string
	for deadline := time.Now().Add(2 * time.Minute); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := addr.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		}
		select {
		case code := <-exited:
			t.Fatalf("serve exited %d before serving\n%s\n%s", code, stdout, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve printed no address\n%s\n%s", stdout, stderr)
		}
	}
	// The listener is open before the model is loaded; wait until served.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest("GET", base+"/v1/models", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base, stderr, exited
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/v1/models never answered 200\n%s", base, stderr)
		}
	}
}

func writeToken(t *testing.T, dir, tok string) string {
	t.Helper()
	f := filepath.Join(dir, "token")
	if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestServeWithOpenAIClient exports base/tiny, serves the export with a
// token, and drives it with the official OpenAI Python client
// (testdata/openai_client.py): images.generate gets decodable PNGs of the
// model's size with the instruction and a chain of thought,
// chat.completions.create gets text with real token counts, a wrong key
// gets 401 and over-limit requests 400 naming the field. Then SIGTERM's
// context ends the server cleanly.
func TestServeWithOpenAIClient(t *testing.T) {
	py := testenv.OpenAIPython(t)
	if testing.Short() {
		t.Skip("serves base/tiny")
	}
	dir := t.TempDir()
	exp := filepath.Join(dir, "tiny-export")
	if code, out, errs := runCLI(t, "export", "--model", shippedBase, "--out", exp); code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, out, errs)
	}
	const token = "serve-test-token-0123456789"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, stderr, exited := startServe(ctx, t, token, "--model", exp, "--token-file", writeToken(t, dir, token), "--steps", "8", "--max-n", "4", "--max-tokens", "64")

	pctx, pcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer pcancel()
	cmd := exec.CommandContext(pctx, py, filepath.Join("testdata", "openai_client.py"), base+"/v1", token, "tiny-export", "32")
	out, err := cmd.Output()
	if err != nil {
		var stderrPy []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderrPy = ee.Stderr
		}
		t.Fatalf("openai client: %v\n%s\n%s\nserver:\n%s", err, out, stderrPy, stderr)
	}
	var seen struct {
		Models []string `json:"models"`
		Images []struct {
			Width, Height int
			RevisedPrompt string `json:"revised_prompt"`
			Thinking      string `json:"thinking"`
			Mode          string `json:"mode"`
			Seed          int64  `json:"seed"`
		} `json:"images"`
		Chat struct {
			Content, Reasoning string
			FinishReason       string `json:"finish_reason"`
			Usage              []int  `json:"usage"`
		} `json:"chat"`
		WrongKey any `json:"wrong_key"`
		Refused  map[string]struct {
			Status      int
			Param, Code string
		} `json:"refused"`
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	t.Logf("openai client saw: %s", out)
	if len(seen.Models) != 1 || seen.Models[0] != "tiny-export" {
		t.Errorf("models.list: %v, want [tiny-export]", seen.Models)
	}
	if len(seen.Images) != 2 {
		t.Fatalf("images.generate: %d images, want 2", len(seen.Images))
	}
	for i, img := range seen.Images {
		if img.Width != 32 || img.Height != 32 || strings.TrimSpace(img.Thinking) == "" || strings.TrimSpace(img.RevisedPrompt) == "" || img.Mode != "think" || img.Seed != int64(11+i) {
			t.Errorf("image %d: %+v, want a 32x32 PNG with a thought and an instruction, seed %d", i, img, 11+i)
		}
	}
	u := seen.Chat.Usage
	if strings.TrimSpace(seen.Chat.Content+seen.Chat.Reasoning) == "" || len(u) != 3 || u[0] < 5 || u[1] < 1 || u[1] > 40 || u[2] != u[0]+u[1] {
		t.Errorf("chat.completions.create: %+v, want text with real token counts", seen.Chat)
	}
	if seen.WrongKey != float64(401) {
		t.Errorf("wrong API key: %v, want 401", seen.WrongKey)
	}
	for _, field := range []string{"n", "size", "max_tokens"} {
		if r := seen.Refused[field]; r.Status != 400 || r.Param != field {
			t.Errorf("over-limit %s: %+v, want 400 naming %s", field, r, field)
		}
	}

	cancel() // as SIGTERM does
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("serve exited %d after its context ended\n%s", code, stderr)
		}
	case <-time.After(time.Minute):
		t.Fatal("serve still running a minute after its context ended")
	}
}

// TestServeFromRun serves a training run's last committed checkpoint with
// two workers (each loading it from the store) and draws an image and a
// completion from it.
func TestServeFromRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	dir, _ := trainSmallRun(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, stderr, exited := startServe(ctx, t, "", "--run", "r", "--run-dir", dir, "--workers", "2", "--steps", "4")
	for _, req := range []struct{ path, body, want string }{
		{"/v1/images/generations", `{"prompt": "a red circle", "n": 2}`, `"b64_json":"iVBORw0KGgo`},
		{"/v1/chat/completions", `{"model": "r", "messages": [{"role": "user", "content": "a red circle"}], "max_tokens": 8}`, `"completion_tokens":`},
	} {
		resp, err := http.Post(base+req.path, "application/json", strings.NewReader(req.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), req.want) {
			t.Errorf("POST %s: %d %.300s, want 200 with %s", req.path, resp.StatusCode, b, req.want)
		}
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("serve exited %d\n%s", code, stderr)
	}
}
