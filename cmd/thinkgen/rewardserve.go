package main

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/reward"
)

func rewardServeCommand() *command {
	return &command{
		name:  "reward-serve",
		usage: "[--addr HOST:PORT] [--token-file FILE] [--tls-cert FILE --tls-key FILE]",
		short: "serve the built-in rule models as a remote reward service",
		long: `Reward-serve serves the five built-in ShapeWorld rule models over the
remote reward protocol (POST /v1/score, GET /v1/health; see the reward
package docs), so that reward workers can reach them through
reward.remote in the run configuration. Scenario weights are applied by
the caller, not by the service. It stops on SIGINT or SIGTERM after
finishing the requests in flight.

Every request must carry the bearer token from --token-file, else
$THINKGEN_REWARD_TOKEN, else the file named by $THINKGEN_REWARD_TOKEN_FILE
(the workers send the token they find the same way). Without a token the
service listens only on a loopback address. --tls-cert and --tls-key serve
HTTPS. A request is refused past --max-body bytes or --max-items items; an
image larger than --max-pixels (read from its PNG header, before decoding)
is that item's error.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			addr := fs.String("addr", "127.0.0.1:8700", "listen address, HOST:PORT (port 0 picks a free one)")
			tokenFile := fs.String("token-file", "", "file holding the bearer token (default $THINKGEN_REWARD_TOKEN, then $THINKGEN_REWARD_TOKEN_FILE)")
			cert := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM; with --tls-key)")
			key := fs.String("tls-key", "", "private key of --tls-cert (PEM)")
			maxBody := fs.Int64("max-body", reward.MaxRequestBytes, "largest request body, in bytes")
			maxItems := fs.Int("max-items", reward.DefaultMaxItems, "most items in one request")
			maxPixels := fs.Int64("max-pixels", reward.DefaultMaxImagePixels, "most pixels (width × height) in one image")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				tok, err := reward.LoadToken(*tokenFile)
				if err != nil {
					return fmt.Errorf("reward-serve: %w", err)
				}
				srv, err := reward.NewServer(reward.Builtin(nil), reward.ServerOptions{
					Token: tok, CertFile: *cert, KeyFile: *key,
					Limits: reward.HandlerOptions{MaxBodyBytes: *maxBody, MaxItems: *maxItems, MaxImagePixels: *maxPixels},
				})
				if err != nil {
					return fmt.Errorf("reward-serve: %w", err)
				}
				ln, err := net.Listen("tcp", *addr)
				if err != nil {
					return fmt.Errorf("reward-serve: %w", err)
				}
				scheme := "http"
				if *cert != "" {
					scheme = "https"
				}
				fmt.Fprintf(e.stdout, "reward-serve: serving the built-in rule models on %s://%s\n", scheme, ln.Addr())
				if err := srv.Serve(ctx, ln); err != nil {
					return fmt.Errorf("reward-serve: %w", err)
				}
				return nil
			}
		},
	}
}
