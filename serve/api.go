package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/thinkgen/thinkgen/internal/httpserve"
)

// The paths the server answers.
const (
	PathImages = "/v1/images/generations"
	PathChat   = "/v1/chat/completions"
	PathModels = "/v1/models"
)

// Modes of the think-then-draw pipeline, the mode extension field.
const (
	ModeThink  = "think"
	ModeDirect = "direct"
)

// imagesRequest is the body of POST /v1/images/generations: OpenAI's
// Images API fields the server reads, and thinkgen's extensions (mode,
// seed).
type imagesRequest struct {
	Prompt         string `json:"prompt"`
	Model          string `json:"model"`
	N              *int   `json:"n"`
	Size           string `json:"size"`
	ResponseFormat string `json:"response_format"`
	OutputFormat   string `json:"output_format"`
	User           string `json:"user"`
	// Mode is think (the default: a chain of thought, then the
	// instruction) or direct (the instruction alone).
	Mode string `json:"mode"`
	// Seed draws image i's noise (and sampled tokens) from Seed+i; absent,
	// the server draws one at random.
	Seed *int64 `json:"seed"`
}

// imagesResponse is the reply to POST /v1/images/generations.
type imagesResponse struct {
	Created int64       `json:"created"`
	Data    []imageData `json:"data"`
}

// imageData is one image: the PNG, the instruction the MLLM wrote (as
// OpenAI's revised_prompt) and thinkgen's extensions.
type imageData struct {
	B64JSON       string `json:"b64_json"`
	RevisedPrompt string `json:"revised_prompt"`
	// Thinking is the chain of thought the MLLM wrote in <think>…</think>
	// (empty in direct mode).
	Thinking string `json:"thinking"`
	Mode     string `json:"mode"`
	Seed     int64  `json:"seed"`
}

// chatRequest is the body of POST /v1/chat/completions.
type chatRequest struct {
	Model               string        `json:"model"`
	Messages            []chatMessage `json:"messages"`
	MaxTokens           *int          `json:"max_tokens"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	Temperature         *float64      `json:"temperature"`
	TopP                *float64      `json:"top_p"`
	Seed                *int64        `json:"seed"`
	N                   *int          `json:"n"`
	Stream              bool          `json:"stream"`
	User                string        `json:"user"`
	// Mode is think (the default: the assistant's turn opens <think>) or
	// direct (it opens with an empty think block).
	Mode string `json:"mode"`
}

// chatMessage is one message: content is a string or a list of parts.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	Name    string          `json:"name"`
}

// contentPart is one part of a list content.
type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// chatResponse is the reply to POST /v1/chat/completions.
type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   usage        `json:"usage"`
}

type chatChoice struct {
	Index        int          `json:"index"`
	Message      replyMessage `json:"message"`
	FinishReason string       `json:"finish_reason"`
	Logprobs     *struct{}    `json:"logprobs"`
}

// replyMessage is the assistant's reply. In think mode the chain of
// thought is in Reasoning and, the same, in ReasoningContent: the fields
// vLLM's reasoning parsers fill (reasoning_content, its older name, is
// what most clients read).
type replyMessage struct {
	Role             string `json:"role"`
	Content          string `json:"content"`
	Reasoning        string `json:"reasoning,omitempty"`
	ReasoningContent string `json:"reasoning_content,omitempty"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// modelObject is one entry of GET /v1/models.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

// apiError is an error reply in OpenAI's shape:
// {"error": {"message", "type", "param", "code"}}.
type apiError struct {
	status     int
	retryAfter int     // seconds; 0 for no Retry-After header
	Message    string  `json:"message"`
	Type       string  `json:"type"`
	Param      *string `json:"param"`
	Code       string  `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

// invalid returns a 400 naming param.
func invalid(param, code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...), Type: "invalid_request_error", Param: &param, Code: code}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="thinkgen"`)
	}
	writeJSON(w, e.status, struct {
		Error *apiError `json:"error"`
	}{e})
}

// decode reads r's JSON body into v: a body past the server's limit is a
// 413, malformed JSON, a field of the wrong type or an unknown field a
// 400 naming it.
func decode(r *http.Request, v any) *apiError {
	err := httpserve.DecodeJSON(r.Body, v)
	if err == nil {
		return nil
	}
	var (
		mbe *http.MaxBytesError
		ute *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		p := "body"
		return &apiError{status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body larger than %d bytes", mbe.Limit), Type: "invalid_request_error", Param: &p, Code: "request_too_large"}
	case errors.As(err, &ute) && ute.Field == "":
		return invalid("body", "invalid_json", "request body must be a JSON object, not a %s", ute.Value)
	case errors.As(err, &ute):
		return invalid(ute.Field, "invalid_type", "%s: want a JSON %s, got %s", ute.Field, ute.Type, ute.Value)
	}
	if f, ok := httpserve.UnknownField(err); ok {
		param := f
		if param == "" {
			param = "body"
		}
		return invalid(param, "unknown_parameter", "unrecognized request argument supplied: %q", f)
	}
	return invalid("body", "invalid_json", "request body is not a JSON object: %v", err)
}
