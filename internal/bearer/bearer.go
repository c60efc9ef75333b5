// Package bearer loads and checks the bearer tokens that guard thinkgen's
// HTTP services (the controller API, the reward service and the model
// server): a token is 16 to 4096 printable ASCII bytes, read from a file
// or the environment, sent as "Authorization: Bearer <token>" and
// compared in constant time.
package bearer

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// MinLen and MaxLen bound a token's length in bytes.
const (
	MinLen = 16
	MaxLen = 4096
)

// ErrNone reports that no token was configured.
var ErrNone = errors.New("no bearer token")

// Check reports whether tok is an acceptable token. Its errors never show
// the token.
func Check(tok string) error {
	if len(tok) < MinLen {
		return fmt.Errorf("bearer token shorter than %d characters", MinLen)
	}
	if len(tok) > MaxLen {
		return fmt.Errorf("bearer token longer than %d characters", MaxLen)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("bearer token has a byte other than printable ASCII at offset %d", i)
		}
	}
	return nil
}

// Load returns the token: the contents of file if file is not empty, else
// the value of the environment variable env, else the contents of the file
// named by the environment variable fileEnv; surrounding white space is
// trimmed. It returns an error wrapping ErrNone if none is set. Errors name
// the source, never the token.
func Load(file, env, fileEnv string) (string, error) {
	var tok, src string
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read token: %w", err)
		}
		tok, src = string(b), "token file "+file
	case env != "" && os.Getenv(env) != "":
		tok, src = os.Getenv(env), "$"+env
	case fileEnv != "" && os.Getenv(fileEnv) != "":
		name := os.Getenv(fileEnv)
		b, err := os.ReadFile(name)
		if err != nil {
			return "", fmt.Errorf("read token ($%s): %w", fileEnv, err)
		}
		tok, src = string(b), "token file "+name+" ($"+fileEnv+")"
	default:
		return "", ErrNone
	}
	tok = strings.TrimSpace(tok)
	if err := Check(tok); err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}
	return tok, nil
}

// LoadIfSet is Load for a token that may be left unset: when none is set
// it returns "" and no error.
func LoadIfSet(file, env, fileEnv string) (string, error) {
	tok, err := Load(file, env, fileEnv)
	if errors.Is(err, ErrNone) {
		return "", nil
	}
	return tok, err
}

// A Verifier checks the bearer token of requests. Its zero value accepts
// every request.
type Verifier struct {
	sum [sha256.Size]byte
	set bool
}

// NewVerifier returns a verifier of tok; an empty tok accepts every
// request.
func NewVerifier(tok string) Verifier {
	if tok == "" {
		return Verifier{}
	}
	return Verifier{sum: sha256.Sum256([]byte(tok)), set: true}
}

// Required reports whether the verifier demands a token.
func (v Verifier) Required() bool { return v.set }

// Authorized compares the request's bearer token with the verifier's in
// constant time (over their SHA-256, so not even the length leaks).
func (v Verifier) Authorized(r *http.Request) bool {
	if !v.set {
		return true
	}
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	sum := sha256.Sum256([]byte(h[len(prefix):]))
	return subtle.ConstantTimeCompare(sum[:], v.sum[:]) == 1
}
