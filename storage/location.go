package storage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/thinkgen/thinkgen/config"
)

// Location is a parsed store URI.
type Location struct {
	// Dir is the directory of a local store; empty for S3.
	Dir string
	// Bucket and Prefix of an S3 store; empty for a local one.
	Bucket, Prefix string
}

// IsS3 reports whether the location is an S3 bucket.
func (l Location) IsS3() bool { return l.Bucket != "" }

func (l Location) String() string {
	if l.IsS3() {
		return "s3://" + l.Bucket + "/" + l.Prefix
	}
	return l.Dir
}

// ParseURI parses a store URI. An empty URI means the local directory "store".
func ParseURI(uri string) (Location, error) {
	if uri == "" {
		return Location{Dir: "store"}, nil
	}
	if !strings.Contains(uri, "://") {
		return Location{Dir: filepath.Clean(uri)}, nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return Location{}, fmt.Errorf("parse store URI %q: %w", uri, err)
	}
	switch u.Scheme {
	case "file":
		if u.Path == "" {
			return Location{}, fmt.Errorf("store URI %q: file:// needs a path", uri)
		}
		return Location{Dir: filepath.Clean(u.Path)}, nil
	case "s3":
		if u.Host == "" {
			return Location{}, fmt.Errorf("store URI %q: s3:// needs a bucket", uri)
		}
		prefix := strings.Trim(u.Path, "/")
		if prefix != "" {
			prefix += "/"
		}
		return Location{Bucket: u.Host, Prefix: prefix}, nil
	default:
		return Location{}, fmt.Errorf("store URI %q: scheme %q is not file or s3", uri, u.Scheme)
	}
}

// Credentials are an S3 access key pair. String never shows the secret.
type Credentials struct {
	AccessKey, SecretKey string
	// Source says where they came from ("env" or the file name).
	Source string
}

func (c Credentials) String() string {
	if c.AccessKey == "" {
		return "anonymous"
	}
	return "access key " + c.AccessKey + " from " + c.Source
}

// ErrNoCredentials means neither a credentials file nor the environment
// gave an S3 key pair.
var ErrNoCredentials = errors.New("thinkgen/storage: no S3 credentials (set storage.credentials_file or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")

// LoadCredentials reads the key pair from cfg.CredentialsFile if set (lines
// "access_key = …" and "secret_key = …"; '#' starts a comment), else from
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func LoadCredentials(cfg config.Storage) (Credentials, error) {
	if cfg.CredentialsFile == "" {
		c := Credentials{AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), Source: "env"}
		if c.AccessKey == "" || c.SecretKey == "" {
			return Credentials{}, ErrNoCredentials
		}
		return c, nil
	}
	data, err := os.ReadFile(cfg.CredentialsFile)
	if err != nil {
		return Credentials{}, fmt.Errorf("read credentials: %w", err)
	}
	c := Credentials{Source: cfg.CredentialsFile}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			return Credentials{}, fmt.Errorf("%s:%d: want key = value", cfg.CredentialsFile, line)
		}
		switch strings.TrimSpace(k) {
		case "access_key":
			c.AccessKey = strings.TrimSpace(v)
		case "secret_key":
			c.SecretKey = strings.TrimSpace(v)
		default:
			return Credentials{}, fmt.Errorf("%s:%d: unknown key %q (want access_key or secret_key)", cfg.CredentialsFile, line, strings.TrimSpace(k))
		}
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return Credentials{}, fmt.Errorf("%s: needs both access_key and secret_key", cfg.CredentialsFile)
	}
	return c, nil
}

// NewS3Client returns a minio-go client for the endpoint of cfg.
func NewS3Client(cfg config.Storage, creds Credentials) (*minio.Client, error) {
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	c, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(creds.AccessKey, creds.SecretKey, ""),
		Secure: !cfg.Insecure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", endpoint, err)
	}
	return c, nil
}

// Probe checks that the store of cfg is reachable and usable and returns a
// one-line description of it. A local directory must exist (or be
// creatable) and be writable; an S3 bucket must exist and answer with the
// configured credentials within the context's deadline.
func Probe(ctx context.Context, cfg config.Storage) (string, error) {
	loc, err := ParseURI(cfg.URI)
	if err != nil {
		return "", err
	}
	if !loc.IsS3() {
		if err := os.MkdirAll(loc.Dir, 0o755); err != nil {
			return "", fmt.Errorf("local store %s: %w", loc.Dir, err)
		}
		f, err := os.CreateTemp(loc.Dir, ".probe-*")
		if err != nil {
			return "", fmt.Errorf("local store %s is not writable: %w", loc.Dir, err)
		}
		name := f.Name()
		f.Close()
		os.Remove(name)
		abs, _ := filepath.Abs(loc.Dir)
		return "local directory " + abs + " (writable)", nil
	}
	creds, err := LoadCredentials(cfg)
	if err != nil {
		return "", err
	}
	client, err := NewS3Client(cfg, creds)
	if err != nil {
		return "", err
	}
	start := time.Now()
	ok, err := client.BucketExists(ctx, loc.Bucket)
	if err != nil {
		return "", fmt.Errorf("s3 store %s at %s: %w", loc, client.EndpointURL().Host, err)
	}
	if !ok {
		return "", fmt.Errorf("s3 store %s at %s: bucket %q does not exist", loc, client.EndpointURL().Host, loc.Bucket)
	}
	return fmt.Sprintf("%s at %s (%s, answered in %s)", loc, client.EndpointURL().Host, creds, time.Since(start).Round(time.Millisecond)), nil
}
