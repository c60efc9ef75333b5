package storage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		uri     string
		want    Location
		wantErr string
	}{
		{"", Location{Dir: "store"}, ""},
		{"runs", Location{Dir: "runs"}, ""},
		{"/data/thinkgen/", Location{Dir: "/data/thinkgen"}, ""},
		{"file:///data/x", Location{Dir: "/data/x"}, ""},
		{"s3://bucket", Location{Bucket: "bucket"}, ""},
		{"s3://bucket/a/b/", Location{Bucket: "bucket", Prefix: "a/b/"}, ""},
		{"s3:///nobucket", Location{}, "needs a bucket"},
		{"gs://bucket", Location{}, `scheme "gs"`},
		{"file://", Location{}, "needs a path"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			got, err := ParseURI(tt.uri)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURI(%q) error = %v, want %q", tt.uri, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseURI(%q) = %+v, %v; want %+v", tt.uri, got, err, tt.want)
			}
		})
	}
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "# test keys\naccess_key = AK\nsecret_key = s3cr3t\n")
	half := write("half", "access_key = AK\n")
	unknown := write("unknown", "access_key = AK\ntoken = x\n")
	noeq := write("noeq", "access_key AK\n")

	t.Run("file", func(t *testing.T) {
		c, err := LoadCredentials(config.Storage{CredentialsFile: good})
		if err != nil || c.AccessKey != "AK" || c.SecretKey != "s3cr3t" {
			t.Fatalf("got %+v, %v", c, err)
		}
		if strings.Contains(c.String(), "s3cr3t") {
			t.Fatalf("String() shows the secret: %s", c)
		}
	})
	for _, tt := range []struct{ file, want string }{
		{half, "needs both"}, {unknown, `unknown:2: unknown key "token"`}, {noeq, "noeq:1"}, {filepath.Join(dir, "missing"), "missing"},
	} {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			_, err := LoadCredentials(config.Storage{CredentialsFile: tt.file})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("env", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "EK")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "ES")
		c, err := LoadCredentials(config.Storage{})
		if err != nil || c.AccessKey != "EK" || c.Source != "env" {
			t.Fatalf("got %+v, %v", c, err)
		}
	})
	t.Run("none", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		if _, err := LoadCredentials(config.Storage{}); !errors.Is(err, ErrNoCredentials) {
			t.Fatalf("error %v, want ErrNoCredentials", err)
		}
	})
}

func TestProbeLocal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "store")
	desc, err := Probe(context.Background(), config.Storage{URI: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(desc, "writable") {
		t.Errorf("Probe = %q", desc)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("Probe left files behind: %v", entries)
	}
	if os.Getuid() != 0 { // root writes anywhere
		ro := t.TempDir()
		os.Chmod(ro, 0o500)
		if _, err := Probe(context.Background(), config.Storage{URI: ro}); err == nil {
			t.Error("Probe of a read-only directory succeeded")
		}
	}
}

func TestProbeS3Unreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := Probe(ctx, config.Storage{
		URI: "s3://bucket", Endpoint: "127.0.0.1:1", Insecure: true, Region: "us-east-1",
		CredentialsFile: writeCreds(t),
	})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error %v, want one naming the endpoint", err)
	}
}

func writeCreds(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(p, []byte("access_key = a\nsecret_key = b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
