package controlapi

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/thinkgen/thinkgen/internal/bearer"
)

// The environment variables LoadToken reads.
const (
	TokenEnv     = "THINKGEN_TOKEN"
	TokenFileEnv = "THINKGEN_TOKEN_FILE"
)

// MinTokenLen is the shortest token accepted.
const MinTokenLen = 16

// ErrNoToken reports that no bearer token was configured.
var ErrNoToken = errors.New("thinkgen/controlapi: no bearer token (set " + TokenEnv + " or " + TokenFileEnv + ", or pass --insecure-local to run without one on loopback)")

// LoadToken returns the bearer token: the contents of file if file is not
// empty, else $THINKGEN_TOKEN, else the contents of the file named by
// $THINKGEN_TOKEN_FILE; surrounding white space is trimmed. It returns
// ErrNoToken if none is set. Errors name the source, never the token.
func LoadToken(file string) (string, error) {
	tok, err := bearer.Load(file, TokenEnv, TokenFileEnv)
	if errors.Is(err, bearer.ErrNone) {
		return "", ErrNoToken
	}
	return tok, err
}

func checkToken(tok string) error { return bearer.Check(tok) }

// GenerateToken returns a new random token (64 hex digits), for a
// controller that starts its own workers.
func GenerateToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
