package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	"github.com/thinkgen/thinkgen/reward"
)

func rewardServeCommand() *command {
	return &command{
		name:  "reward-serve",
		usage: "[--addr HOST:PORT]",
		short: "serve the built-in rule models as a remote reward service",
		long: `Reward-serve serves the five built-in ShapeWorld rule models over the
remote reward protocol (POST /v1/score, GET /v1/health; see the reward
package docs), so that reward workers can reach them through
reward.remote in the run configuration. Scenario weights are applied by
the caller, not by the service. It stops on SIGINT or SIGTERM after
finishing the requests in flight.`,
		setup: func(fs *pflag.FlagSet, e *env) func(context.Context, []string) error {
			addr := fs.String("addr", "127.0.0.1:8700", "listen address, HOST:PORT (port 0 picks a free one)")
			return func(ctx context.Context, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				ln, err := net.Listen("tcp", *addr)
				if err != nil {
					return fmt.Errorf("reward-serve: %w", err)
				}
				srv := &http.Server{Handler: reward.NewHandler(reward.Builtin(nil)), ReadHeaderTimeout: 10 * time.Second}
				fmt.Fprintf(e.stdout, "reward-serve: serving the built-in rule models on http://%s\n", ln.Addr())
				done := make(chan error, 1)
				go func() { done <- srv.Serve(ln) }()
				select {
				case err := <-done:
					return fmt.Errorf("reward-serve: %w", err)
				case <-ctx.Done():
				}
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := srv.Shutdown(sctx); err != nil {
					return fmt.Errorf("reward-serve: shutdown: %w", err)
				}
				if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
					return fmt.Errorf("reward-serve: %w", err)
				}
				return nil
			}
		},
	}
}
