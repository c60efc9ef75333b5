package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/tokenizer"
)

const testToken = "0123456789abcdef-serve"

// fakeEngine answers every input with fixed tokens (a thought and an
// instruction) and an image whose colour is the input's seed. It records
// the size of every batch; with gate set, each call waits for a value
// from it after signalling entered.
type fakeEngine struct {
	tok     tokenizer.Tokenizer
	tokens  []int
	size    int
	gate    chan struct{}
	entered chan struct{}

	mu      sync.Mutex
	batches []int
	closed  bool
}

func (f *fakeEngine) wait(n int) {
	f.mu.Lock()
	f.batches = append(f.batches, n)
	f.mu.Unlock()
	if f.gate != nil {
		f.entered <- struct{}{}
		<-f.gate
	}
}

func (f *fakeEngine) Draw(in []DrawInput) ([]Drawn, error) {
	f.wait(len(in))
	out := make([]Drawn, len(in))
	for i, d := range in {
		img := image.NewRGBA(image.Rect(0, 0, f.size, f.size))
		for p := 0; p < len(img.Pix); p += 4 {
			copy(img.Pix[p:], []byte{uint8(d.Seed), uint8(d.Seed >> 8), 7, 255})
		}
		out[i] = Drawn{Tokens: f.tokens, Image: img}
	}
	return out, nil
}

func (f *fakeEngine) Complete(in []CompleteInput, o CompleteOptions) ([]Completion, error) {
	f.wait(len(in))
	out := make([]Completion, len(in))
	for i := range in {
		n := min(len(f.tokens), o.MaxTokens)
		out[i] = Completion{Tokens: f.tokens[:n], Stopped: n == len(f.tokens)}
	}
	return out, nil
}

func (f *fakeEngine) Tokenizer() tokenizer.Tokenizer { return f.tok }

func (f *fakeEngine) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

func testModel(t testing.TB) Model {
	t.Helper()
	c := config.Default()
	tok, err := model.TokenizerFor(c.Model.MLLM)
	if err != nil {
		t.Fatal(err)
	}
	c.Model.DiT.ImageSize, c.Model.MLLM.MaxSeqLen = 16, 128
	s := c.Sampling
	s.MaxNewTokens = 24
	return ModelFor("tiny", c, tok, s)
}

func newFake(t testing.TB, m Model) *fakeEngine {
	t.Helper()
	ids, err := m.Tok.Encode("the square is red " + tokenizer.EndThink + " draw a red square" + tokenizer.ImEnd)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeEngine{tok: m.Tok, tokens: ids, size: m.ImageSize}
}

// running is a server serving on loopback until the test ends.
type running struct {
	url    string
	srv    *Server
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, m Model, o Options, eng Engine) *running {
	t.Helper()
	srv, err := New(m, o)
	if err != nil {
		t.Fatal(err)
	}
	return startWith(t, srv, func() (Engine, error) { return eng, nil })
}

func startWith(t *testing.T, srv *Server, load func() (Engine, error)) *running {
	t.Helper()
	ln := testutil.Listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{url: "http://" + ln.Addr().String(), srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx, ln, load) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return r
}

// call sends a request and returns the status, the Retry-After header and
// the body.
func (r *running) call(t *testing.T, method, path, token, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), b
}

// errorOf reads an OpenAI-style error body.
func errorOf(t *testing.T, b []byte) apiError {
	t.Helper()
	var e struct {
		Error *apiError `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" || e.Error.Code == "" {
		t.Fatalf("error body %s: %v; want {\"error\": {message, type, param, code}}", b, err)
	}
	return *e.Error
}

func param(e apiError) string {
	if e.Param == nil {
		return ""
	}
	return *e.Param
}

func TestAuth(t *testing.T) {
	m := testModel(t)
	r := start(t, m, Options{Token: testToken}, newFake(t, m))
	tests := []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", testToken + "x", http.StatusUnauthorized},
		{"right token", testToken, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, ep := range []struct{ method, path, body string }{
				{"GET", PathModels, ""},
				{"POST", PathImages, `{"prompt": "a red square"}`},
				{"POST", PathChat, `{"messages": [{"role": "user", "content": "hi"}]}`},
			} {
				code, _, body := r.call(t, ep.method, ep.path, tc.token, ep.body)
				if code != tc.want {
					t.Errorf("%s %s: %d %s, want %d", ep.method, ep.path, code, body, tc.want)
				}
				if tc.want == http.StatusUnauthorized {
					if e := errorOf(t, body); e.Code != "invalid_api_key" {
						t.Errorf("%s %s: code %q, want invalid_api_key", ep.method, ep.path, e.Code)
					}
				}
			}
		})
	}
	if _, err := New(m, Options{Token: "short"}); err == nil || !strings.Contains(err.Error(), "shorter than") {
		t.Errorf("New with a short token: %v, want a refusal", err)
	}
}

func TestModels(t *testing.T) {
	m := testModel(t)
	m.Created = time.Unix(1700000000, 0)
	r := start(t, m, Options{}, newFake(t, m))
	code, _, body := r.call(t, "GET", PathModels, "", "")
	var list modelList
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || list.Object != "list" || len(list.Data) != 1 ||
		list.Data[0] != (modelObject{ID: "tiny", Object: "model", Created: 1700000000, OwnedBy: "thinkgen"}) {
		t.Fatalf("GET %s: %d %s (%v)", PathModels, code, body, err)
	}
	if code, _, body := r.call(t, "GET", PathModels+"/tiny", "", ""); code != 200 || !strings.Contains(string(body), `"id":"tiny"`) {
		t.Errorf("GET %s/tiny: %d %s", PathModels, code, body)
	}
	code, _, body = r.call(t, "GET", PathModels+"/other", "", "")
	if e := errorOf(t, body); code != 404 || e.Code != "model_not_found" || param(e) != "model" {
		t.Errorf("GET %s/other: %d %s", PathModels, code, body)
	}
	code, _, body = r.call(t, "GET", "/v1/embeddings", "", "")
	if e := errorOf(t, body); code != 404 || e.Code != "unknown_url" {
		t.Errorf("GET /v1/embeddings: %d %s", code, body)
	}
}

// TestRefusesBadRequests: every bad request is refused before it reaches
// the model, with the status, param and code it names.
func TestRefusesBadRequests(t *testing.T) {
	m := testModel(t)
	eng := newFake(t, m)
	r := start(t, m, Options{Limits: Limits{MaxBodyBytes: 8 << 10, MaxN: 3, MaxPromptBytes: 200, MaxMessages: 4, MaxTokens: 64}}, eng)
	user := func(s string) string { return `"messages": [{"role": "user", "content": "` + s + `"}]` }
	long := strings.Repeat("red ", 51)
	tests := []struct {
		name, path, body string
		status           int
		param, code      string
	}{
		{"image size", PathImages, `{"prompt": "a red square", "size": "1024x1024"}`, 400, "size", "unsupported_value"},
		{"image url format", PathImages, `{"prompt": "a red square", "response_format": "url"}`, 400, "response_format", "unsupported_value"},
		{"image jpeg", PathImages, `{"prompt": "a red square", "output_format": "jpeg"}`, 400, "output_format", "unsupported_value"},
		{"image n zero", PathImages, `{"prompt": "a red square", "n": 0}`, 400, "n", "invalid_value"},
		{"image n over limit", PathImages, `{"prompt": "a red square", "n": 4}`, 400, "n", "invalid_value"},
		{"image n a string", PathImages, `{"prompt": "a red square", "n": "two"}`, 400, "n", "invalid_type"},
		{"image no prompt", PathImages, `{"n": 1}`, 400, "prompt", "missing_required_parameter"},
		{"image prompt too long", PathImages, `{"prompt": "` + long + `"}`, 400, "prompt", "string_above_max_length"},
		{"image special token", PathImages, `{"prompt": "red <|im_end|>"}`, 400, "prompt", "invalid_value"},
		{"image unknown word byte", PathImages, `{"prompt": "ein rotes Quadrat \u00fc"}`, 400, "prompt", "invalid_value"},
		{"image unknown field", PathImages, `{"prompt": "a red square", "quality": "hd"}`, 400, "quality", "unknown_parameter"},
		{"image bad mode", PathImages, `{"prompt": "a red square", "mode": "dream"}`, 400, "mode", "invalid_value"},
		{"image other model", PathImages, `{"prompt": "a red square", "model": "dall-e-3"}`, 404, "model", "model_not_found"},
		{"image not json", PathImages, `prompt=a red square`, 400, "body", "invalid_json"},
		{"image not an object", PathImages, `[1, 2]`, 400, "body", "invalid_json"},
		{"image body too large", PathImages, `{"prompt": "` + strings.Repeat("a", 9<<10) + `"}`, 413, "body", "request_too_large"},
		{"chat max_tokens over limit", PathChat, `{` + user("hi") + `, "max_tokens": 65}`, 400, "max_tokens", "invalid_value"},
		{"chat max_completion_tokens zero", PathChat, `{` + user("hi") + `, "max_completion_tokens": 0}`, 400, "max_completion_tokens", "invalid_value"},
		{"chat temperature", PathChat, `{` + user("hi") + `, "temperature": 2.5}`, 400, "temperature", "invalid_value"},
		{"chat top_p", PathChat, `{` + user("hi") + `, "top_p": 0}`, 400, "top_p", "invalid_value"},
		{"chat stream", PathChat, `{` + user("hi") + `, "stream": true}`, 400, "stream", "unsupported_value"},
		{"chat n over limit", PathChat, `{` + user("hi") + `, "n": 9}`, 400, "n", "invalid_value"},
		{"chat no messages", PathChat, `{"messages": []}`, 400, "messages", "missing_required_parameter"},
		{"chat too many messages", PathChat, `{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}]}`, 400, "messages", "array_above_max_length"},
		{"chat last is assistant", PathChat, `{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}`, 400, "messages[1].role", "invalid_value"},
		{"chat late system", PathChat, `{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "user", "content": "c"}]}`, 400, "messages[1].role", "invalid_value"},
		{"chat tool role", PathChat, `{"messages": [{"role": "tool", "content": "a"}]}`, 400, "messages[0].role", "invalid_value"},
		{"chat image part", PathChat, `{"messages": [{"role": "user", "content": [{"type": "image_url", "text": ""}]}]}`, 400, "messages[0].content[0].type", "unsupported_value"},
		{"chat content a number", PathChat, `{"messages": [{"role": "user", "content": 3}]}`, 400, "messages[0].content", "invalid_type"},
		{"chat message too long", PathChat, `{` + user(long) + `}`, 400, "messages[0].content", "string_above_max_length"},
		{"chat context exceeded", PathChat, `{` + user(strings.Repeat("red ", 45)) + `, "max_tokens": 64}`, 400, "messages", "context_length_exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := r.call(t, "POST", tc.path, "", tc.body)
			e := errorOf(t, body)
			if code != tc.status || param(e) != tc.param || e.Code != tc.code {
				t.Errorf("%d param %q code %q (%s), want %d param %q code %q", code, param(e), e.Code, e.Message, tc.status, tc.param, tc.code)
			}
		})
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if len(eng.batches) != 0 {
		t.Errorf("the model ran %d batches for refused requests", len(eng.batches))
	}
}

func TestImages(t *testing.T) {
	m := testModel(t)
	r := start(t, m, Options{}, newFake(t, m))
	for _, mode := range []string{"think", "direct"} {
		code, _, body := r.call(t, "POST", PathImages, "", `{"prompt": "a red square", "n": 2, "size": "16x16", "response_format": "b64_json", "seed": 300, "mode": "`+mode+`"}`)
		var resp imagesResponse
		if err := json.Unmarshal(body, &resp); code != 200 || err != nil || len(resp.Data) != 2 {
			t.Fatalf("%s: %d %s (%v)", mode, code, body, err)
		}
		for i, d := range resp.Data {
			raw, err := base64.StdEncoding.DecodeString(d.B64JSON)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(raw))
			if err != nil || img.Bounds().Dx() != 16 || img.Bounds().Dy() != 16 {
				t.Fatalf("image %d: %v, want a 16x16 PNG", i, err)
			}
			seed := int64(300 + i)
			if got := color.RGBAModel.Convert(img.At(3, 3)).(color.RGBA); got != (color.RGBA{uint8(seed), uint8(seed >> 8), 7, 255}) {
				t.Errorf("image %d drawn with seed colour %v, want seed %d", i, got, seed)
			}
			want := imageData{B64JSON: d.B64JSON, RevisedPrompt: "draw a red square", Thinking: "the square is red", Mode: mode, Seed: seed}
			if d != want {
				t.Errorf("image %d: %+v, want %+v", i, d, want)
			}
		}
	}
}

func TestChat(t *testing.T) {
	m := testModel(t)
	eng := newFake(t, m)
	r := start(t, m, Options{}, eng)
	msgs := `[{"role": "system", "content": "you draw shapes"}, {"role": "user", "content": "a red square"}, {"role": "assistant", "content": "red square"}, {"role": "user", "content": [{"type": "text", "text": "a blue "}, {"type": "text", "text": "circle"}]}]`
	const rendered = "<|im_start|>system\nyou draw shapes<|im_end|>\n<|im_start|>user\na red square<|im_end|>\n<|im_start|>assistant\nred square<|im_end|>\n<|im_start|>user\na blue circle<|im_end|>\n<|im_start|>assistant\n<think>\n"
	promptLen := func(text string) int {
		ids, err := m.Tok.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	tests := []struct {
		name, extra string
		want        replyMessage
		finish      string
		completion  int
		prompt      string
	}{
		{"think", ``, replyMessage{Role: "assistant", Content: "draw a red square", Reasoning: "the square is red", ReasoningContent: "the square is red"}, "stop", len(eng.tokens), rendered},
		{"direct", `, "mode": "direct"`, replyMessage{Role: "assistant", Content: "the square is red " + tokenizer.EndThink + " draw a red square"}, "stop", len(eng.tokens), rendered + "\n</think>\n\n"},
		{"cut short", `, "max_tokens": 3`, replyMessage{Role: "assistant", Reasoning: m.Tok.Decode(eng.tokens[:3]), ReasoningContent: m.Tok.Decode(eng.tokens[:3])}, "length", 3, rendered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := r.call(t, "POST", PathChat, "", `{"model": "tiny", "messages": `+msgs+`, "n": 2, "seed": 5, "temperature": 0.5`+tc.extra+`}`)
			var resp chatResponse
			if err := json.Unmarshal(body, &resp); code != 200 || err != nil || len(resp.Choices) != 2 {
				t.Fatalf("%d %s (%v)", code, body, err)
			}
			if resp.Object != "chat.completion" || resp.Model != "tiny" || !strings.HasPrefix(resp.ID, "chatcmpl-") {
				t.Errorf("response %+v", resp)
			}
			for i, c := range resp.Choices {
				if c.Index != i || c.Message != tc.want || c.FinishReason != tc.finish {
					t.Errorf("choice %d: %+v, want %+v finishing %s", i, c, tc.want, tc.finish)
				}
			}
			p := promptLen(tc.prompt)
			want := usage{PromptTokens: p, CompletionTokens: 2 * tc.completion, TotalTokens: p + 2*tc.completion}
			if resp.Usage != want {
				t.Errorf("usage %+v, want %+v", resp.Usage, want)
			}
		})
	}
}

// TestDefaultMaxTokens: a chat completion without max_tokens generates
// up to the model's default, which the limit caps.
func TestDefaultMaxTokens(t *testing.T) {
	m := testModel(t)
	tests := []struct{ def, limit, want int }{{24, 64, 24}, {24, 10, 10}, {0, 512, 256}}
	for _, tc := range tests {
		m.DefaultMaxTokens = tc.def
		srv, err := New(m, Options{Limits: Limits{MaxTokens: tc.limit}})
		if err != nil {
			t.Fatal(err)
		}
		if srv.m.DefaultMaxTokens != tc.want {
			t.Errorf("default %d, limit %d: max_tokens %d, want %d", tc.def, tc.limit, srv.m.DefaultMaxTokens, tc.want)
		}
	}
}

// TestQueue: one worker busy on a request, two more wait in the queue of
// two and run as one batch, and a fourth finds the queue full (503 with
// Retry-After); a request that waits past RequestTimeout is a 503 too.
func TestQueue(t *testing.T) {
	m := testModel(t)
	eng := newFake(t, m)
	eng.gate, eng.entered = make(chan struct{}), make(chan struct{})
	r := start(t, m, Options{Queue: 2, MaxBatch: 8, RequestTimeout: 30 * time.Second}, eng)
	type reply struct {
		code int
		body []byte
	}
	replies := make(chan reply, 3)
	send := func() {
		code, _, body := r.call(t, "POST", PathImages, "", `{"prompt": "a red square"}`)
		replies <- reply{code, body}
	}
	go send()
	<-eng.entered // the worker runs the first request
	go send()
	go send()
	for deadline := time.Now().Add(10 * time.Second); len(r.srv.jobs) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want 2", len(r.srv.jobs))
		}
	}
	code, retry, body := r.call(t, "POST", PathImages, "", `{"prompt": "a red square"}`)
	if e := errorOf(t, body); code != 503 || retry == "" || e.Code != "server_overloaded" {
		t.Errorf("request to a full queue: %d Retry-After %q %s, want 503 with Retry-After", code, retry, body)
	}
	eng.gate <- struct{}{} // the first request
	<-eng.entered          // the two queued ones, together
	eng.gate <- struct{}{}
	for range 3 {
		if rp := <-replies; rp.code != 200 {
			t.Errorf("queued request: %d %s", rp.code, rp.body)
		}
	}
	eng.mu.Lock()
	if fmt.Sprint(eng.batches) != "[1 2]" {
		t.Errorf("batches %v, want [1 2]: the queued requests in one batch", eng.batches)
	}
	eng.mu.Unlock()

	slow := newFake(t, m)
	slow.gate, slow.entered = make(chan struct{}), make(chan struct{}, 1)
	r2 := start(t, m, Options{RequestTimeout: 200 * time.Millisecond}, slow)
	code, retry, body = r2.call(t, "POST", PathChat, "", `{"messages": [{"role": "user", "content": "hi"}]}`)
	if e := errorOf(t, body); code != 503 || retry == "" || e.Code != "timeout" {
		t.Errorf("request past the timeout: %d Retry-After %q %s, want 503 timeout", code, retry, body)
	}
	close(slow.gate)
}

// TestShutdown: a request in flight when the context ends is answered,
// Serve returns nil and the engine is closed.
func TestShutdown(t *testing.T) {
	m := testModel(t)
	eng := newFake(t, m)
	eng.gate, eng.entered = make(chan struct{}), make(chan struct{})
	srv, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln := testutil.Listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, func() (Engine, error) { return eng, nil }) }()
	r := &running{url: "http://" + ln.Addr().String()}
	got := make(chan int, 1)
	go func() {
		code, _, _ := r.call(t, "POST", PathImages, "", `{"prompt": "a red square"}`)
		got <- code
	}()
	<-eng.entered
	cancel()
	time.Sleep(50 * time.Millisecond)
	eng.gate <- struct{}{}
	if code := <-got; code != 200 {
		t.Errorf("request in flight at shutdown: %d, want 200", code)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if !eng.closed {
		t.Error("engine not closed after Serve returned")
	}
}

func TestServeRefusesNonLoopbackWithoutToken(t *testing.T) {
	m := testModel(t)
	srv, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "0.0.0.0:0")
	if err != nil {
		t.Skipf("cannot listen on all interfaces: %v", err)
	}
	defer ln.Close()
	loaded := false
	err = srv.Serve(context.Background(), ln, func() (Engine, error) { loaded = true; return newFake(t, m), nil })
	if err == nil || !strings.Contains(err.Error(), "only on loopback") || loaded {
		t.Fatalf("Serve on %s without a token: %v (loaded %v), want a refusal before loading", ln.Addr(), err, loaded)
	}
}

// TestServeReportsLoadFailure: a worker whose model fails to load, by an
// error or a panic (a failing gotch op), makes Serve return that error
// without serving.
func TestServeReportsLoadFailure(t *testing.T) {
	m := testModel(t)
	tests := []struct {
		name string
		load func() (Engine, error)
		want string
	}{
		{"error", func() (Engine, error) { return nil, fmt.Errorf("no such file mllm.safetensors") }, "no such file mllm.safetensors"},
		{"panic", func() (Engine, error) { panic("gotch: out of memory") }, "gotch: out of memory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(m, Options{Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			err = srv.Serve(context.Background(), testutil.Listen(t), tc.load)
			if err == nil || !strings.Contains(err.Error(), "load the model") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Serve: %v, want the load failure %q", err, tc.want)
			}
		})
	}
}

// TestServeTLS serves HTTPS with a certificate and a token: a client that
// trusts the certificate is served, plain HTTP to the port is not.
func TestServeTLS(t *testing.T) {
	m := testModel(t)
	certFile, keyFile, client := testutil.TLSFiles(t)
	srv, err := New(m, Options{Token: testToken, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	r := startWith(t, srv, func() (Engine, error) { return newFake(t, m), nil })
	addr := strings.TrimPrefix(r.url, "http://")
	testutil.ServesTLSOnly(t, client, addr, PathModels, testToken)
	srv2, err := New(m, Options{CertFile: certFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv2.Serve(context.Background(), testutil.Listen(t), func() (Engine, error) { return newFake(t, m), nil }); err == nil || !strings.Contains(err.Error(), "both a certificate and a key") {
		t.Errorf("Serve with a certificate and no key: %v, want a refusal", err)
	}
}
