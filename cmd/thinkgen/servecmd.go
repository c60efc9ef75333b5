package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/serve"
)

func serveCommand() *command {
	return &command{
		name:  "serve",
		usage: "(--model DIR | --run RUN [--version N]) [--listen HOST:PORT] [--token-file FILE] [--tls-cert FILE --tls-key FILE]",
		short: "serve a model over an OpenAI-compatible API (images, chat completions)",
		long: `Serve serves a model over an OpenAI-compatible HTTP API (docs/serve.md):
POST /v1/images/generations thinks, then draws (each image with the
instruction as revised_prompt and the chain of thought as thinking), POST
/v1/chat/completions runs the MLLM alone, GET /v1/models lists the model.

The model is an export (thinkgen export's folder), a bundle directory
(--model), or a committed checkpoint of a training run in the store
(--run, with --store/--run-dir; --version defaults to the last committed
one), as for generate. Images are drawn with --steps and --cfg (default:
the model configuration's sampling section) after the MLLM wrote with
--temperature and --top-p (default greedy); the only image size is the
model's own.

Every request must carry the bearer token from --token-file, else
$THINKGEN_SERVE_TOKEN, else the file named by $THINKGEN_SERVE_TOKEN_FILE
(clients send it as their API key). Without a token the server listens only
on a loopback address. --tls-cert and --tls-key serve HTTPS. Requests past
the limits are refused with an OpenAI-style error naming the field;
accepted ones wait in a queue of --queue requests that --workers model
workers (each its own copy of the model) serve in batches of up to
--max-batch samples; a full queue is a 503 with Retry-After. It stops on
SIGINT or SIGTERM after finishing the requests in flight.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			rf := addRunFlags(fs)
			mf := addModelFlags(fs, "serve")
			name := fs.String("name", "", "the model's id in the API (default: the directory's or run's name)")
			listen := fs.String("listen", "127.0.0.1:8800", "listen address, HOST:PORT (port 0 picks a free one)")
			tokenFile := fs.String("token-file", "", "file holding the bearer token (default $THINKGEN_SERVE_TOKEN, then $THINKGEN_SERVE_TOKEN_FILE)")
			cert := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM; with --tls-key)")
			key := fs.String("tls-key", "", "private key of --tls-cert (PEM)")
			workers := fs.Int("workers", 1, "model workers, each with its own copy of the model")
			queue := fs.Int("queue", 16, "requests that may wait for a model worker; past it 503")
			maxBatch := fs.Int("max-batch", 8, "most samples (images or completions) in one model pass")
			timeout := fs.Duration("timeout", 5*time.Minute, "longest a request may wait in the queue and run")
			maxBody := fs.Int64("max-body", 1<<20, "largest request body, in bytes (past it 413)")
			maxN := fs.Int("max-n", 4, "most images in one request, or choices in one completion")
			maxPrompt := fs.Int("max-prompt", 4096, "longest image prompt or chat message, in bytes")
			maxMessages := fs.Int("max-messages", 32, "most messages in one chat completion")
			maxTokens := fs.Int("max-tokens", 512, "largest max_tokens of a chat completion")
			sf := addSamplingFlags(fs, " before drawing")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if err := sf.check(); err != nil {
					return &usageError{err}
				}
				switch {
				case *workers < 1 || *queue < 1 || *maxBatch < 1:
					return usagef("--workers, --queue and --max-batch must be at least 1, got %d, %d, %d", *workers, *queue, *maxBatch)
				case *maxBody < 1 || *maxN < 1 || *maxPrompt < 1 || *maxMessages < 1 || *maxTokens < 1:
					return usagef("--max-body, --max-n, --max-prompt, --max-messages and --max-tokens must be at least 1")
				case *timeout <= 0:
					return usagef("--timeout must be positive, got %s", *timeout)
				}
				cfg, load, cleanup, err := mf.open(ctx, rf, "an export or bundle")
				if err != nil {
					return err
				}
				defer cleanup()
				id := mf.run
				if mf.dir != "" {
					id = filepath.Base(filepath.Clean(mf.dir))
				}
				if *name != "" {
					id = *name
				}
				s := sf.apply(cfg.Sampling)
				m := serve.ModelFor(id, cfg, nil, s) // the tokenizer comes with the loaded model
				m.Created = time.Now()
				token, err := serve.LoadToken(*tokenFile)
				if err != nil {
					return &usageError{err}
				}
				srv, err := serve.New(m, serve.Options{
					Token: token, CertFile: *cert, KeyFile: *key,
					Limits:  serve.Limits{MaxBodyBytes: *maxBody, MaxN: *maxN, MaxPromptBytes: *maxPrompt, MaxMessages: *maxMessages, MaxTokens: *maxTokens},
					Workers: *workers, Queue: *queue, MaxBatch: *maxBatch, RequestTimeout: *timeout,
					Logger: slog.New(slog.NewTextHandler(e.stderr, nil)),
				})
				if err != nil {
					return &usageError{err}
				}
				ln, err := net.Listen("tcp", *listen)
				if err != nil {
					return fmt.Errorf("serve: %w", err)
				}
				defer ln.Close()
				var loading sync.Mutex // workers load one at a time (a --run checkpoint's cache is shared)
				var threads sync.Once
				scheme := "http"
				if *cert != "" {
					scheme = "https"
				}
				fmt.Fprintf(e.stdout, "serve: loading %s (%d worker(s)), then serving it on %s://%s/v1\n", id, *workers, scheme, ln.Addr())
				return srv.Serve(ctx, ln, func() (serve.Engine, error) {
					loading.Lock()
					defer loading.Unlock()
					var err error
					threads.Do(func() {
						if th := cfg.Run.Threads; th > 0 {
							err = libtorch.SetThreads(th)
						}
					})
					if err != nil {
						return nil, err
					}
					b, err := placed(cfg, load)
					if err != nil {
						return nil, err
					}
					return serve.NewBundleEngine(b, s), nil
				})
			}
		},
	}
}
