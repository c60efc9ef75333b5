package bearer

import (
	"net/http/httptest"
	"testing"

	"github.com/thinkgen/thinkgen/internal/bearer/bearertest"
)

func TestLoad(t *testing.T) {
	const env, fileEnv = "THINKGEN_TEST_BEARER", "THINKGEN_TEST_BEARER_FILE"
	bearertest.CheckLoad(t, func(file string) (string, error) { return Load(file, env, fileEnv) }, env, fileEnv, ErrNone)
}

func TestLoadIfSet(t *testing.T) {
	const env, fileEnv = "THINKGEN_TEST_BEARER", "THINKGEN_TEST_BEARER_FILE"
	t.Setenv(env, "")
	t.Setenv(fileEnv, "")
	if tok, err := LoadIfSet("", env, fileEnv); tok != "" || err != nil {
		t.Errorf("LoadIfSet with none set = %q, %v; want \"\", nil", tok, err)
	}
	good := "abcdefghijklmnop-0123456789"
	t.Setenv(env, good)
	if tok, err := LoadIfSet("", env, fileEnv); tok != good || err != nil {
		t.Errorf("LoadIfSet with $%s set = %q, %v; want %q, nil", env, tok, err, good)
	}
	t.Setenv(env, "short")
	if tok, err := LoadIfSet("", env, fileEnv); err == nil {
		t.Errorf("LoadIfSet with a short token = %q, nil; want an error", tok)
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
