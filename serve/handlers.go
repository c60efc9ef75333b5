package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/thinkgen/thinkgen/tokenizer"
)

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, modelList{Object: "list", Data: []modelObject{s.modelObject()}})
}

func (s *Server) modelByID(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != s.m.ID {
		writeError(w, s.unknownModel(id))
		return
	}
	writeJSON(w, http.StatusOK, s.modelObject())
}

func (s *Server) modelObject() modelObject {
	return modelObject{ID: s.m.ID, Object: "model", Created: s.m.Created.Unix(), OwnedBy: "thinkgen"}
}

func (s *Server) unknownModel(id string) *apiError {
	p := "model"
	return &apiError{status: http.StatusNotFound, Message: fmt.Sprintf("model %q does not exist: this server serves %q", id, s.m.ID), Type: "invalid_request_error", Param: &p, Code: "model_not_found"}
}

// checkModel accepts an empty model field or the served model's id.
func (s *Server) checkModel(id string) *apiError {
	if id != "" && id != s.m.ID {
		return s.unknownModel(id)
	}
	return nil
}

// checkN returns n's value (1 when absent) within the limit.
func (s *Server) checkN(n *int) (int, *apiError) {
	if n == nil {
		return 1, nil
	}
	if *n < 1 || *n > s.o.Limits.MaxN {
		return 0, invalid("n", "invalid_value", "n must be in 1…%d, got %d", s.o.Limits.MaxN, *n)
	}
	return *n, nil
}

// thinkMode maps the mode extension to how the assistant's turn opens.
func thinkMode(mode string) (tokenizer.ThinkMode, string, *apiError) {
	switch mode {
	case "", ModeThink:
		return tokenizer.ThinkOpen, ModeThink, nil
	case ModeDirect:
		return tokenizer.ThinkSkip, ModeDirect, nil
	}
	return 0, "", invalid("mode", "invalid_value", "mode must be %s or %s, got %q", ModeThink, ModeDirect, mode)
}

// checkText refuses text past the length limit, not UTF-8, or holding a
// special token written out (which would become that token's id).
func (s *Server) checkText(param, text string) *apiError {
	if len(text) > s.o.Limits.MaxPromptBytes {
		return invalid(param, "string_above_max_length", "%s is %d bytes long, more than the %d allowed", param, len(text), s.o.Limits.MaxPromptBytes)
	}
	if !utf8.ValidString(text) {
		return invalid(param, "invalid_value", "%s is not valid UTF-8", param)
	}
	for _, sp := range tokenizer.SpecialTokens {
		if strings.Contains(text, sp) {
			return invalid(param, "invalid_value", "%s contains the special token %s", param, sp)
		}
	}
	return nil
}

// encode renders c and encodes it (as model.ChatPrompt does a prompt
// without images), checking that it leaves room for
// newTokens more within max_seq_len.
func (s *Server) encode(param string, c tokenizer.Chat, newTokens int) ([]int, *apiError) {
	text, err := c.Prompt()
	if err != nil {
		return nil, invalid(param, "invalid_value", "%s: %v", param, err)
	}
	ids, err := s.m.Tok.Encode(text)
	if err != nil {
		return nil, invalid(param, "invalid_value", "%s: %v", param, err)
	}
	if len(ids)+newTokens > s.m.MaxSeqLen {
		return nil, invalid(param, "context_length_exceeded", "%s takes %d tokens and up to %d are generated, more than the model's %d (max_seq_len)", param, len(ids), newTokens, s.m.MaxSeqLen)
	}
	return ids, nil
}

// seedOf returns the request's seed, or a random one.
func seedOf(seed *int64) int64 {
	if seed != nil {
		return *seed
	}
	var b [8]byte
	rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]) >> 11) // exact in a float64, for JSON readers
}

func (s *Server) images(w http.ResponseWriter, r *http.Request) {
	answer(w, r, s.generateImages)
}

// answer decodes r's JSON body as a Req, answers it with do and writes
// the 200 reply, or the error that decoding or do returned.
func answer[Req, Resp any](w http.ResponseWriter, r *http.Request, do func(context.Context, *Req) (Resp, *apiError)) {
	var req Req
	if e := decode(r, &req); e != nil {
		writeError(w, e)
		return
	}
	resp, e := do(r.Context(), &req)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) generateImages(ctx context.Context, req *imagesRequest) (*imagesResponse, *apiError) {
	j, seed, mode, e := s.imageJob(req)
	if e != nil {
		return nil, e
	}
	n := len(j.draw)
	res, e := s.submit(ctx, j)
	if e != nil {
		return nil, e
	}
	resp := &imagesResponse{Created: time.Now().Unix(), Data: make([]imageData, n)}
	for i, d := range res.drawn {
		var buf bytes.Buffer
		if err := png.Encode(&buf, d.Image); err != nil {
			return nil, &apiError{status: http.StatusInternalServerError, Message: "encode PNG: " + err.Error(), Type: "server_error", Code: "internal_error"}
		}
		thought, instr := tokenizer.SplitReply(s.m.Tok.Decode(d.Tokens))
		resp.Data[i] = imageData{B64JSON: base64.StdEncoding.EncodeToString(buf.Bytes()), RevisedPrompt: instr, Thinking: thought, Mode: mode, Seed: seed + int64(i)}
	}
	return resp, nil
}

// imageJob checks an images request and returns its job, with the seed
// of its first image and its mode.
func (s *Server) imageJob(req *imagesRequest) (*job, int64, string, *apiError) {
	fail := func(e *apiError) (*job, int64, string, *apiError) { return nil, 0, "", e }
	if e := s.checkModel(req.Model); e != nil {
		return fail(e)
	}
	if strings.TrimSpace(req.Prompt) == "" {
		return fail(invalid("prompt", "missing_required_parameter", "prompt is missing or empty"))
	}
	if e := s.checkText("prompt", req.Prompt); e != nil {
		return fail(e)
	}
	n, e := s.checkN(req.N)
	if e != nil {
		return fail(e)
	}
	native := fmt.Sprintf("%dx%d", s.m.ImageSize, s.m.ImageSize)
	if req.Size != "" && req.Size != "auto" && req.Size != native {
		return fail(invalid("size", "unsupported_value", "size %q is not supported: this model draws %s images only", req.Size, native))
	}
	if req.ResponseFormat != "" && req.ResponseFormat != "b64_json" {
		return fail(invalid("response_format", "unsupported_value", "response_format %q is not supported: the server returns b64_json only (it keeps no images to link to)", req.ResponseFormat))
	}
	if req.OutputFormat != "" && req.OutputFormat != "png" {
		return fail(invalid("output_format", "unsupported_value", "output_format %q is not supported: images are PNG", req.OutputFormat))
	}
	think, mode, e := thinkMode(req.Mode)
	if e != nil {
		return fail(e)
	}
	ids, e := s.encode("prompt", tokenizer.Chat{User: req.Prompt, Think: think}, s.m.DrawTokens)
	if e != nil {
		return fail(e)
	}
	seed := seedOf(req.Seed)
	j := &job{key: "draw", draw: make([]DrawInput, n)}
	for i := range j.draw {
		j.draw[i] = DrawInput{Prompt: ids, Seed: uint64(seed) + uint64(i)}
	}
	return j, seed, mode, nil
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	answer(w, r, s.complete)
}

// chatPrompt turns OpenAI messages into the chat the tokenizer renders: an
// optional leading system (or developer) message, then alternating user
// and assistant turns ending with a user message.
func (s *Server) chatPrompt(msgs []chatMessage, think tokenizer.ThinkMode) (tokenizer.Chat, *apiError) {
	c := tokenizer.Chat{Think: think}
	if len(msgs) == 0 {
		return c, invalid("messages", "missing_required_parameter", "messages is missing or empty")
	}
	if len(msgs) > s.o.Limits.MaxMessages {
		return c, invalid("messages", "array_above_max_length", "messages holds %d messages, more than the %d allowed", len(msgs), s.o.Limits.MaxMessages)
	}
	for i, m := range msgs {
		param := fmt.Sprintf("messages[%d].content", i)
		text, e := contentText(param, m.Content)
		if e != nil {
			return c, e
		}
		if e := s.checkText(param, text); e != nil {
			return c, e
		}
		role := fmt.Sprintf("messages[%d].role", i)
		switch {
		case (m.Role == "system" || m.Role == "developer") && i == 0:
			c.System = text
		case m.Role == "system" || m.Role == "developer":
			return c, invalid(role, "invalid_value", "a %s message may only come first", m.Role)
		case m.Role == "user" && i == len(msgs)-1:
			c.User = text
		case m.Role == "user" || m.Role == "assistant":
			if i == len(msgs)-1 {
				return c, invalid(role, "invalid_value", "the last message must be the user's, not %s", m.Role)
			}
			c.History = append(c.History, tokenizer.Message{Role: m.Role, Content: text})
		default:
			return c, invalid(role, "invalid_value", "role %q is not supported: want system, developer, user or assistant", m.Role)
		}
	}
	return c, nil
}

// contentText reads a message's content: a string, or a list of text
// parts (joined).
func contentText(param string, raw json.RawMessage) (string, *apiError) {
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return text, nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", invalid(param, "invalid_type", "%s must be a string or a list of text parts", param)
	}
	var b strings.Builder
	for k, p := range parts {
		if p.Type != "text" {
			return "", invalid(fmt.Sprintf("%s[%d].type", param, k), "unsupported_value", "content part type %q is not supported: text only", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// chatJob checks a chat completion request and returns its job, with
// its prompt's length in tokens and its mode.
func (s *Server) chatJob(req *chatRequest) (*job, int, string, *apiError) {
	fail := func(e *apiError) (*job, int, string, *apiError) { return nil, 0, "", e }
	if e := s.checkModel(req.Model); e != nil {
		return fail(e)
	}
	if req.Stream {
		return fail(invalid("stream", "unsupported_value", "stream is not supported: the server answers a completion whole"))
	}
	n, e := s.checkN(req.N)
	if e != nil {
		return fail(e)
	}
	maxTokens, param := s.m.DefaultMaxTokens, "max_tokens"
	for _, mt := range []struct {
		v    *int
		name string
	}{{req.MaxTokens, "max_tokens"}, {req.MaxCompletionTokens, "max_completion_tokens"}} {
		if mt.v == nil {
			continue
		}
		if *mt.v < 1 || *mt.v > s.o.Limits.MaxTokens {
			return fail(invalid(mt.name, "invalid_value", "%s must be in 1…%d, got %d", mt.name, s.o.Limits.MaxTokens, *mt.v))
		}
		maxTokens, param = *mt.v, mt.name
	}
	o := CompleteOptions{MaxTokens: maxTokens, Temperature: 1, TopP: 1}
	if req.Temperature != nil {
		if *req.Temperature < 0 || *req.Temperature > 2 {
			return fail(invalid("temperature", "invalid_value", "temperature must be in 0…2, got %g", *req.Temperature))
		}
		o.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		if *req.TopP <= 0 || *req.TopP > 1 {
			return fail(invalid("top_p", "invalid_value", "top_p must be in (0, 1], got %g", *req.TopP))
		}
		o.TopP = *req.TopP
	}
	think, mode, e := thinkMode(req.Mode)
	if e != nil {
		return fail(e)
	}
	c, e := s.chatPrompt(req.Messages, think)
	if e != nil {
		return fail(e)
	}
	ids, e := s.encode("messages", c, maxTokens)
	if e != nil {
		if e.Code == "context_length_exceeded" {
			e.Message += fmt.Sprintf("; lower %s or shorten the messages", param)
		}
		return fail(e)
	}
	seed := seedOf(req.Seed)
	j := &job{key: fmt.Sprintf("complete %d %g %g", o.MaxTokens, o.Temperature, o.TopP), opts: o, complete: make([]CompleteInput, n)}
	for i := range j.complete {
		j.complete[i] = CompleteInput{Prompt: ids, Seed: uint64(seed) + uint64(i)}
	}
	return j, len(ids), mode, nil
}

func (s *Server) complete(ctx context.Context, req *chatRequest) (*chatResponse, *apiError) {
	j, promptTokens, mode, e := s.chatJob(req)
	if e != nil {
		return nil, e
	}
	n := len(j.complete)
	res, e := s.submit(ctx, j)
	if e != nil {
		return nil, e
	}
	var id [12]byte
	rand.Read(id[:])
	resp := &chatResponse{ID: "chatcmpl-" + hex.EncodeToString(id[:]), Object: "chat.completion", Created: time.Now().Unix(), Model: s.m.ID,
		Choices: make([]chatChoice, n), Usage: usage{PromptTokens: promptTokens}}
	for i, cpl := range res.completions {
		text := s.m.Tok.Decode(cpl.Tokens)
		msg := replyMessage{Role: "assistant"}
		if mode == ModeThink {
			msg.Reasoning, msg.Content = splitThinking(text)
			msg.ReasoningContent = msg.Reasoning
		} else {
			msg.Content = strings.TrimSpace(strings.ReplaceAll(text, tokenizer.ImEnd, ""))
		}
		finish := "length"
		if cpl.Stopped {
			finish = "stop"
		}
		resp.Choices[i] = chatChoice{Index: i, Message: msg, FinishReason: finish}
		resp.Usage.CompletionTokens += len(cpl.Tokens)
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens + resp.Usage.CompletionTokens
	return resp, nil
}

// splitThinking reads a reply to a prompt that opened <think>: the chain
// of thought and the answer after </think> (tokenizer.SplitReply), or —
// when the reply never closed the block — all of it as thought.
func splitThinking(text string) (thought, answer string) {
	if !strings.Contains(text, tokenizer.EndThink) {
		return strings.TrimSpace(strings.ReplaceAll(text, tokenizer.ImEnd, "")), ""
	}
	return tokenizer.SplitReply(text)
}
