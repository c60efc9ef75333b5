// Package httpserve runs the HTTP servers of thinkgen's services (the
// reward service, the OpenAI-compatible model server) the same hardened
// way: a listener that is not loopback only with a bearer token, optional
// TLS, every phase of a connection bounded in time, a bounded header, and
// a graceful shutdown when the context ends. DecodeJSON reads their JSON
// request bodies (and the controller API's) the same strict way.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Options configure Serve. A zero duration takes the default named on it.
type Options struct {
	// Name prefixes errors, e.g. "reward service".
	Name string
	// Authenticated says that the handler demands a bearer token; without
	// one Serve accepts only a loopback listener. TokenHint says, in that
	// refusal, how to give one (e.g. "--token-file or $THINKGEN_TOKEN").
	Authenticated bool
	TokenHint     string
	// CertFile and KeyFile, both set, serve HTTPS (PEM files).
	CertFile, KeyFile string
	// ReadHeaderTimeout bounds reading a request's headers (10 s);
	// ReadTimeout the whole request (2 min); WriteTimeout the time from
	// the end of the headers to the end of the reply (5 min); IdleTimeout
	// an idle keep-alive connection (2 min); ShutdownTimeout how long the
	// requests in flight may finish once ctx ends (30 s).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, ShutdownTimeout time.Duration
	// MaxHeaderBytes bounds the request headers (64 KiB).
	MaxHeaderBytes int
}

// CheckTLS reports an error unless both or neither of the certificate
// and key files are set.
func (o *Options) CheckTLS() error {
	if (o.CertFile == "") != (o.KeyFile == "") {
		return fmt.Errorf("%s: TLS wants both a certificate and a key file", o.Name)
	}
	return nil
}

// CheckListener refuses a listener that is not on a loopback address
// unless the server is authenticated.
func (o *Options) CheckListener(ln net.Listener) error {
	if o.Authenticated {
		return nil
	}
	if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		return fmt.Errorf("%s: without a bearer token (%s) it listens only on loopback, not %s", o.Name, o.TokenHint, ln.Addr())
	}
	return nil
}

// Server returns the http.Server Serve runs: h behind o's timeouts and
// header bound.
func (o *Options) Server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(o.ReadHeaderTimeout, 10*time.Second),
		ReadTimeout:       or(o.ReadTimeout, 2*time.Minute),
		WriteTimeout:      or(o.WriteTimeout, 5*time.Minute),
		IdleTimeout:       or(o.IdleTimeout, 2*time.Minute),
		MaxHeaderBytes:    cmp0(o.MaxHeaderBytes, 64<<10),
	}
}

// Serve serves h on ln until ctx ends, then shuts down, waiting up to
// o.ShutdownTimeout for the requests in flight before closing their
// connections. It refuses a non-loopback listener when the server is not
// authenticated, and TLS without both files.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, o Options) error {
	if err := o.CheckTLS(); err != nil {
		return err
	}
	if err := o.CheckListener(ln); err != nil {
		return err
	}
	hs := o.Server(h)
	errc := make(chan error, 1)
	go func() {
		if o.CertFile != "" {
			errc <- hs.ServeTLS(ln, o.CertFile, o.KeyFile)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: serve on %s: %w", o.Name, ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), or(o.ShutdownTimeout, 30*time.Second))
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		<-errc
		return fmt.Errorf("%s: shutdown: %w", o.Name, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", o.Name, err)
	}
	return nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func cmp0(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}
