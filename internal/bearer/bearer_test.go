package bearer

import (
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := "abcdefghijklmnop-0123456789"
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const env, fileEnv = "THINKGEN_TEST_BEARER", "THINKGEN_TEST_BEARER_FILE"
	tests := []struct {
		name               string
		file, env, fileEnv string
		want               string
		wantErr            error
		errNot             string
	}{
		{"file", write("good", good+"\n"), "", "", good, nil, ""},
		{"env", "", good, "", good, nil, ""},
		{"file env", "", "", write("good2", " "+good), good, nil, ""},
		{"none", "", "", "", "", ErrNone, ""},
		{"short", write("short", "tiny-tok\n"), "", "", "", nil, "tiny-tok"},
		{"control byte", "", "abcdefgh\x01ijklmnopqrstu", "", "", nil, "ijklmnop"},
		{"missing file", filepath.Join(dir, "nope"), "", "", "", os.ErrNotExist, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(env, tc.env)
			t.Setenv(fileEnv, tc.fileEnv)
			got, err := Load(tc.file, env, fileEnv)
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("Load = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load = %q, want an error", got)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Load: %v, want %v", err, tc.wantErr)
			}
			if tc.errNot != "" && strings.Contains(err.Error(), tc.errNot) {
				t.Fatalf("error shows the token: %v", err)
			}
		})
	}
}

func TestVerifier(t *testing.T) {
	tok := "0123456789abcdef0123"
	tests := []struct {
		name   string
		verify string
		header string
		want   bool
	}{
		{"right token", tok, "Bearer " + tok, true},
		{"scheme case", tok, "bearer " + tok, true},
		{"wrong token", tok, "Bearer " + tok + "x", false},
		{"prefix of token", tok, "Bearer " + tok[:16], false},
		{"no header", tok, "", false},
		{"basic auth", tok, "Basic " + tok, false},
		{"no token required", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			v := NewVerifier(tc.verify)
			if got := v.Authorized(r); got != tc.want {
				t.Fatalf("Authorized = %v, want %v", got, tc.want)
			}
			if v.Required() != (tc.verify != "") {
				t.Fatalf("Required = %v", v.Required())
			}
		})
	}
}
