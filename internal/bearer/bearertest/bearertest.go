// Package bearertest checks a token loader of the shape of bearer.Load:
// the file it is given, else the environment variable env, else the file
// that the variable fileEnv names, trimmed and checked, with errors that
// name the source and never the token.
package bearertest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CheckLoad runs load against token files and environments that hold a
// good token, none, a short one, one with a space or a control byte, and
// a missing file. none is the error load returns when no token is set.
func CheckLoad(t *testing.T, load func(file string) (string, error), env, fileEnv string, none error) {
	t.Helper()
	dir := t.TempDir()
	good := "abcdefghijklmnop-0123456789"
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fileGood := write("good", good+"\n")
	tests := []struct {
		name               string
		file, env, fileEnv string
		want               string
		wantErr            error
		errNot             string // text the error must not contain
	}{
		{"file", fileGood, "", "", good, nil, ""},
		{"file wins over env", fileGood, "zzzzzzzzzzzzzzzzzzzz", "", good, nil, ""},
		{"env", "", good, "", good, nil, ""},
		{"env wins over file env", "", good, write("other", "yyyyyyyyyyyyyyyyyyyy"), good, nil, ""},
		{"file env", "", "", fileGood, good, nil, ""},
		{"file env, leading space", "", "", write("good2", " "+good), good, nil, ""},
		{"none", "", "", "", "", none, ""},
		{"short", write("short", "tiny-tok\n"), "", "", "", nil, "tiny-tok"},
		{"inner space", write("space", "abcdefgh ijklmnopqrstu\n"), "", "", "", nil, "ijklmnop"},
		{"control byte", "", "abcdefgh\x01ijklmnopqrstu", "", "", nil, "ijklmnop"},
		{"missing file", filepath.Join(dir, "nope"), "", "", "", os.ErrNotExist, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(env, tc.env)
			t.Setenv(fileEnv, tc.fileEnv)
			got, err := load(tc.file)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("load = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("load = %q, want an error", got)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("load: %v, want %v", err, tc.wantErr)
			}
			if tc.errNot != "" && strings.Contains(err.Error(), tc.errNot) {
				t.Fatalf("error shows the token: %v", err)
			}
		})
	}
}
