package serve

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/thinkgen/thinkgen/internal/alloccap"
)

// FuzzRequestBodies decodes and checks arbitrary bodies as images and as
// chat completion requests, with small limits: never a panic, at most
// 8 MiB plus 64 bytes per body byte allocated, and either a refusal in
// OpenAI's shape (400, 404 or 413 with a type, a param and a code) or a
// job within the limits whose every prompt leaves room for its tokens
// within max_seq_len.
func FuzzRequestBodies(f *testing.F) {
	for _, b := range []string{
		`{"prompt": "two red circles", "n": 2, "size": "16x16", "seed": 3, "mode": "direct"}`,
		`{"prompt": "a red <|im_end|>", "response_format": "url"}`,
		`{"model": "tiny", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}], "max_tokens": 8, "temperature": 0.5, "n": 2}`,
		`{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}], "max_completion_tokens": 64}`,
		`{"messages": "no", "n": -1}`,
	} {
		f.Add([]byte(b))
	}
	m := testModel(f)
	srv, err := New(m, Options{Limits: Limits{MaxBodyBytes: 64 << 10, MaxN: 3, MaxPromptBytes: 512, MaxMessages: 6, MaxTokens: 64}})
	if err != nil {
		f.Fatal(err)
	}
	lim := srv.o.Limits
	f.Fuzz(func(t *testing.T, body []byte) {
		request := func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, PathChat, bytes.NewReader(body))
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, lim.MaxBodyBytes)
			return r
		}
		var (
			img             *job
			chat            *job
			imgErr, chatErr *apiError
		)
		alloccap.Check(t, 8<<20+64*uint64(len(body)), func() {
			var ir imagesRequest
			if imgErr = decode(request(), &ir); imgErr == nil {
				img, _, _, imgErr = srv.imageJob(&ir)
			}
			var cr chatRequest
			if chatErr = decode(request(), &cr); chatErr == nil {
				chat, _, _, chatErr = srv.chatJob(&cr)
			}
		})
		for _, c := range []struct {
			what   string
			j      *job
			e      *apiError
			tokens int
		}{{"images", img, imgErr, m.DrawTokens}, {"chat", chat, chatErr, 0}} {
			if c.e != nil {
				switch c.e.status {
				case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
				default:
					t.Fatalf("%s: status %d: %s", c.what, c.e.status, c.e.Message)
				}
				if c.e.Type == "" || c.e.Code == "" || c.e.Param == nil || *c.e.Param == "" || c.e.Message == "" {
					t.Fatalf("%s: refusal %+v lacks a type, code, param or message", c.what, c.e)
				}
				continue
			}
			if n := c.j.size(); n < 1 || n > lim.MaxN {
				t.Fatalf("%s: %d samples, want 1…%d", c.what, n, lim.MaxN)
			}
			tokens := c.tokens
			if c.j.complete != nil {
				o := c.j.opts
				if o.MaxTokens < 1 || o.MaxTokens > lim.MaxTokens || o.Temperature < 0 || o.Temperature > 2 || o.TopP <= 0 || o.TopP > 1 {
					t.Fatalf("chat options %+v out of range", o)
				}
				tokens = o.MaxTokens
			}
			for _, p := range append(promptsOf(c.j.draw), promptsOfC(c.j.complete)...) {
				if len(p) == 0 || len(p)+tokens > m.MaxSeqLen {
					t.Fatalf("%s: a prompt of %d tokens with %d to generate, max_seq_len %d", c.what, len(p), tokens, m.MaxSeqLen)
				}
			}
		}
	})
}

func promptsOf(in []DrawInput) [][]int {
	var out [][]int
	for _, d := range in {
		out = append(out, d.Prompt)
	}
	return out
}

func promptsOfC(in []CompleteInput) [][]int {
	var out [][]int
	for _, c := range in {
		out = append(out, c.Prompt)
	}
	return out
}
