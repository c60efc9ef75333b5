package serve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/thinkgen/thinkgen/internal/bearer"
	"github.com/thinkgen/thinkgen/internal/httpserve"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/tokenizer"
)

// The environment variables LoadToken reads.
const (
	TokenEnv     = "THINKGEN_SERVE_TOKEN"
	TokenFileEnv = "THINKGEN_SERVE_TOKEN_FILE"
)

// LoadToken returns the server's bearer token: the contents of file if
// file is not empty, else $THINKGEN_SERVE_TOKEN, else the contents of the
// file named by $THINKGEN_SERVE_TOKEN_FILE. It returns "" and no error
// when none is set. Errors name the source, never the token.
func LoadToken(file string) (string, error) {
	tok, err := bearer.LoadIfSet(file, TokenEnv, TokenFileEnv)
	if err != nil {
		return "", fmt.Errorf("serve token: %w", err)
	}
	return tok, nil
}

// Model describes the served model to the request handlers.
type Model struct {
	// ID is the model's name in the API (GET /v1/models, "model" fields).
	ID string
	// Created is reported by GET /v1/models.
	Created time.Time
	// Tok encodes the chat prompts and decodes what the model wrote; nil
	// takes the first loaded engine's (Engine.Tokenizer).
	Tok tokenizer.Tokenizer
	// ImageSize is the side of the square images the DiT draws, the one
	// size the images endpoint accepts.
	ImageSize int
	// MaxSeqLen bounds a prompt's tokens plus the tokens it may generate.
	MaxSeqLen int
	// DrawTokens is what the MLLM may write before the DiT draws
	// (sampling.max_new_tokens of the draw settings).
	DrawTokens int
	// DefaultMaxTokens is a chat completion's max_tokens when the request
	// gives none; unset or above Limits.MaxTokens, the smaller of that
	// limit and 256.
	DefaultMaxTokens int
}

// Limits bound what one request may ask for. A zero field takes the
// default named on it.
type Limits struct {
	// MaxBodyBytes bounds a request body (1 MiB); past it the reply is 413.
	MaxBodyBytes int64
	// MaxN bounds n: the images of one request, the choices of one chat
	// completion (4).
	MaxN int
	// MaxPromptBytes bounds an image prompt and each chat message (4096).
	MaxPromptBytes int
	// MaxMessages bounds a chat's messages (32).
	MaxMessages int
	// MaxTokens bounds a chat completion's max_tokens (512); the prompt's
	// tokens plus max_tokens must also fit the model's max_seq_len.
	MaxTokens int
}

func (l *Limits) defaults() {
	orDefault(&l.MaxBodyBytes, 1<<20)
	orDefault(&l.MaxN, 4)
	orDefault(&l.MaxPromptBytes, 4096)
	orDefault(&l.MaxMessages, 32)
	orDefault(&l.MaxTokens, 512)
}

// orDefault sets a zero or negative *v to def.
func orDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Options configure a Server. A zero field takes the default named on it.
type Options struct {
	// Token is the bearer token every request must carry. Without one
	// Serve listens only on loopback addresses.
	Token string
	// CertFile and KeyFile, both set, serve HTTPS (PEM).
	CertFile, KeyFile string
	Limits            Limits
	// Workers is the number of model workers, each with its own engine
	// (1).
	Workers int
	// Queue bounds the requests waiting for a worker (16); a request that
	// finds it full is refused with 503 and Retry-After.
	Queue int
	// MaxBatch bounds the samples (images, or completions) a worker runs
	// in one model pass (8); a worker batches the queued requests of one
	// kind up to it.
	MaxBatch int
	// RequestTimeout bounds a request's wait in the queue plus its model
	// pass (5 min); the server's write timeout is a minute longer.
	RequestTimeout time.Duration
	// Logger receives a line per failed request; nil discards them.
	Logger *slog.Logger
}

// Server serves a Model over OpenAI's Images and Chat Completions APIs.
// Requests wait in a bounded queue that Options.Workers model workers
// serve. It is an http.Handler; the workers run inside Serve.
type Server struct {
	m      Model
	o      Options
	verify bearer.Verifier
	mux    *http.ServeMux
	log    *slog.Logger
	jobs   chan *job
}

// New returns a server of m.
func New(m Model, o Options) (*Server, error) {
	if o.Token != "" {
		if err := bearer.Check(o.Token); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	if m.ID == "" || m.ImageSize < 1 || m.MaxSeqLen < 1 {
		return nil, fmt.Errorf("serve: model %q: want an id, an image size and max_seq_len", m.ID)
	}
	o.Limits.defaults()
	orDefault(&o.Workers, 1)
	orDefault(&o.Queue, 16)
	orDefault(&o.MaxBatch, 8)
	orDefault(&o.RequestTimeout, 5*time.Minute)
	if m.DefaultMaxTokens <= 0 || m.DefaultMaxTokens > o.Limits.MaxTokens {
		m.DefaultMaxTokens = min(o.Limits.MaxTokens, 256)
	}
	s := &Server{m: m, o: o, verify: bearer.NewVerifier(o.Token), mux: http.NewServeMux(), log: o.Logger, jobs: make(chan *job, o.Queue)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mux.HandleFunc("POST "+PathImages, s.images)
	s.mux.HandleFunc("POST "+PathChat, s.chat)
	s.mux.HandleFunc("GET "+PathModels, s.models)
	s.mux.HandleFunc("GET "+PathModels+"/{id}", s.modelByID)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		p := "path"
		writeError(w, &apiError{status: http.StatusNotFound, Message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path), Type: "invalid_request_error", Param: &p, Code: "unknown_url"})
	})
	return s, nil
}

// ServeHTTP authenticates the request, bounds its body and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.verify.Authorized(r) {
		writeError(w, &apiError{status: http.StatusUnauthorized, Message: "missing or wrong bearer token (Authorization: Bearer …)", Type: "invalid_request_error", Code: "invalid_api_key"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.o.Limits.MaxBodyBytes)
	s.mux.ServeHTTP(w, r)
}

// httpOptions are the options of the HTTP server Serve runs.
func (s *Server) httpOptions() httpserve.Options {
	return httpserve.Options{
		Name:          "serve",
		Authenticated: s.verify.Required(),
		TokenHint:     fmt.Sprintf("--token-file, $%s or $%s", TokenEnv, TokenFileEnv),
		CertFile:      s.o.CertFile, KeyFile: s.o.KeyFile,
		ReadTimeout:  time.Minute,
		WriteTimeout: s.o.RequestTimeout + time.Minute,
	}
}

// Serve starts the model workers, each on its own OS thread with the
// engine load returns there, and once every one has loaded (the model's
// tokenizer is then the first engine's if Model.Tok is nil) serves on ln
// until ctx ends. Then it stops taking requests, lets those in flight
// finish (up to 30 s), stops the workers and closes their engines. It
// refuses a non-loopback listener without a token, before loading.
func (s *Server) Serve(ctx context.Context, ln net.Listener, load func() (Engine, error)) error {
	ho := s.httpOptions()
	if err := ho.CheckTLS(); err != nil {
		return err
	}
	if err := ho.CheckListener(ln); err != nil {
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loaded := make(chan loadResult, s.o.Workers)
	for i := range s.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reported := false
			report := func(l loadResult) { reported = true; loaded <- l }
			err := libtorch.Run(func() error { return s.work(load, report, stop) })
			if !reported { // load panicked
				loaded <- loadResult{err: err}
				return
			}
			if err != nil {
				s.log.Error("serve: model worker stopped", "worker", i, "err", err)
			}
		}()
	}
	var loadErr error
	for range s.o.Workers {
		l := <-loaded
		if l.err != nil && loadErr == nil {
			loadErr = l.err
		}
		if l.err == nil && s.m.Tok == nil {
			s.m.Tok = l.eng.Tokenizer() // before any request is served
		}
	}
	if loadErr != nil {
		close(stop)
		wg.Wait()
		return fmt.Errorf("serve: load the model: %w", loadErr)
	}
	err := httpserve.Serve(ctx, ln, s, ho)
	close(stop)
	wg.Wait()
	return err
}
