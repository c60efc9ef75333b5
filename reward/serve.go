package reward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/thinkgen/thinkgen/internal/bearer"
	"github.com/thinkgen/thinkgen/internal/httpserve"
)

// The environment variables LoadToken reads.
const (
	TokenEnv     = "THINKGEN_REWARD_TOKEN"
	TokenFileEnv = "THINKGEN_REWARD_TOKEN_FILE"
)

// LoadToken returns the reward service's bearer token: the contents of
// file if file is not empty, else $THINKGEN_REWARD_TOKEN, else the
// contents of the file named by $THINKGEN_REWARD_TOKEN_FILE. It returns ""
// and no error when none is set. Errors name the source, never the token.
func LoadToken(file string) (string, error) {
	tok, err := bearer.LoadIfSet(file, TokenEnv, TokenFileEnv)
	if err != nil {
		return "", fmt.Errorf("reward service token: %w", err)
	}
	return tok, nil
}

// ServerOptions configure a Server.
type ServerOptions struct {
	// Token is the bearer token every request must carry (the scheme of
	// the controller API). Without one the server listens only on
	// loopback addresses.
	Token string
	// CertFile and KeyFile, both set, serve HTTPS with that certificate
	// and key (PEM).
	CertFile, KeyFile string
	// Limits bound what one request may make the server read and decode.
	Limits HandlerOptions
}

// Server serves a Scorer over the remote reward protocol, refusing
// requests without the bearer token (401). It is an http.Handler.
type Server struct {
	opts   ServerOptions
	verify bearer.Verifier
	h      http.Handler
}

// NewServer returns a server of s.
func NewServer(s Scorer, o ServerOptions) (*Server, error) {
	if o.Token != "" {
		if err := bearer.Check(o.Token); err != nil {
			return nil, fmt.Errorf("reward service: %w", err)
		}
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("reward service: TLS wants both a certificate and a key file")
	}
	return &Server{opts: o, verify: bearer.NewVerifier(o.Token), h: newHandler(s, o.Limits)}, nil
}

// ServeHTTP authenticates the request and serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.verify.Authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="thinkgen"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{"missing or wrong bearer token"})
		return
	}
	s.h.ServeHTTP(w, r)
}

// Serve serves on ln until ctx ends, then shuts down, waiting up to 30 s
// for the requests in flight. Without a token it accepts only a loopback
// listener. Every phase of a connection is bounded in time: headers
// 10 s, the whole request 2 min, the reply 5 min, an idle connection
// 2 min (package httpserve).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return httpserve.Serve(ctx, ln, s, httpserve.Options{
		Name:          "reward service",
		Authenticated: s.verify.Required(),
		TokenHint:     fmt.Sprintf("--token-file, $%s or $%s", TokenEnv, TokenFileEnv),
		CertFile:      s.opts.CertFile, KeyFile: s.opts.KeyFile,
	})
}
