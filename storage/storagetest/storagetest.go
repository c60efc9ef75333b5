// Package storagetest gives tests the stores they run against: a local
// directory store and a real MinIO server (started by scripts/minio.sh,
// found through the environment), each fresh per test.
//
// The environment is
//
//	THINKGEN_TEST_S3_ENDPOINT    host:port of the MinIO server (plain HTTP)
//	THINKGEN_TEST_S3_ACCESS_KEY  its access key
//	THINKGEN_TEST_S3_SECRET_KEY  its secret key
//	THINKGEN_TEST_MINIO_BIN      the MinIO binary (tests that run their own server)
//
// When a variable is unset the tests that need it are skipped, except when
// CI is "true": then they fail, so a CI run cannot pass without MinIO.
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/storage"
)

// Named is a store and the name its subtests run under.
type Named struct {
	Name  string
	Store storage.Store
}

// Stores returns a fresh local store and a fresh MinIO store (a new bucket
// on the server of the environment, removed when the test ends). Without
// MinIO in the environment only the local store is returned and the test
// logs why, or fails when CI is "true".
func Stores(t testing.TB) []Named {
	t.Helper()
	out := []Named{{"local", Local(t)}}
	if s := minioStore(t, false); s != nil {
		out = append(out, Named{"minio", s})
	}
	return out
}

// Each runs f against each of Stores(t), as a subtest named after the
// store.
func Each(t *testing.T, f func(t *testing.T, s storage.Store)) {
	t.Helper()
	for _, st := range Stores(t) {
		t.Run(st.Name, func(t *testing.T) { f(t, st.Store) })
	}
}

// Local returns a store in a fresh temporary directory.
func Local(t testing.TB) *storage.Local {
	t.Helper()
	s, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// MinIO returns a store in a new bucket of the environment's MinIO server;
// it skips the test (fails under CI=true) when there is none.
func MinIO(t testing.TB) *storage.S3 {
	t.Helper()
	return minioStore(t, true)
}

// missing skips or fails the test for a missing environment.
func missing(t testing.TB, skip bool, what string) {
	t.Helper()
	msg := what + " is not set: run the tests under scripts/minio.sh run (e.g. scripts/minio.sh run go test ./storage/...)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	if skip {
		t.Skip(msg)
	}
	t.Log("MinIO store left out: " + msg)
}

// Config returns the config.Storage of the environment's MinIO server for
// bucket, with its credentials in a file in the test's temp dir. ok is
// false when there is no server.
func Config(t testing.TB, bucket string) (cfg config.Storage, ok bool) {
	t.Helper()
	endpoint := os.Getenv("THINKGEN_TEST_S3_ENDPOINT")
	ak, sk := os.Getenv("THINKGEN_TEST_S3_ACCESS_KEY"), os.Getenv("THINKGEN_TEST_S3_SECRET_KEY")
	if endpoint == "" || ak == "" || sk == "" {
		return config.Storage{}, false
	}
	return configFor(t, endpoint, ak, sk, bucket), true
}

func configFor(t testing.TB, endpoint, ak, sk, bucket string) config.Storage {
	creds := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(creds, []byte("access_key = "+ak+"\nsecret_key = "+sk+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Storage{URI: "s3://" + bucket, Endpoint: endpoint, Region: "us-east-1", Insecure: true, CredentialsFile: creds}
}

func minioStore(t testing.TB, skip bool) *storage.S3 {
	t.Helper()
	bucket := BucketName(t)
	cfg, ok := Config(t, bucket)
	if !ok {
		missing(t, skip, "THINKGEN_TEST_S3_ENDPOINT / _ACCESS_KEY / _SECRET_KEY")
		return nil
	}
	return NewBucketStore(t, cfg)
}

// NewBucketStore makes the bucket of cfg.URI (s3://bucket) and returns a
// store in it; the bucket and its objects are removed when the test ends.
func NewBucketStore(t testing.TB, cfg config.Storage) *storage.S3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	loc, err := storage.ParseURI(cfg.URI)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := storage.LoadCredentials(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err := storage.NewS3Client(cfg, creds)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.MakeBucket(ctx, loc.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
		t.Fatalf("make bucket %s at %s: %v", loc.Bucket, cfg.Endpoint, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// ForceDelete removes the bucket with its objects in one call.
		if err := client.RemoveBucketWithOptions(ctx, loc.Bucket, minio.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Logf("remove bucket %s: %v", loc.Bucket, err)
		}
	})
	s, err := storage.NewS3(client, loc.Bucket, loc.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// BucketName returns a valid, unique S3 bucket name derived from the
// test's name.
func BucketName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			if s := b.String(); s != "" && !strings.HasSuffix(s, "-") {
				b.WriteByte('-')
			}
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 40 {
		name = strings.Trim(name[:40], "-")
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	return "t-" + name + "-" + hex.EncodeToString(rnd[:])
}

// Server is a MinIO server process of a test's own, which the test may
// kill and restart (fault tests). Its data directory survives restarts.
type Server struct {
	Endpoint string
	bin, dir string
	logPath  string
	ak, sk   string
	t        testing.TB

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartServer starts a MinIO server from THINKGEN_TEST_MINIO_BIN on a free
// loopback port with a temp data dir; it is killed when the test ends.
// Without the binary the test is skipped (fails under CI=true).
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("THINKGEN_TEST_MINIO_BIN")
	if bin == "" {
		missing(t, true, "THINKGEN_TEST_MINIO_BIN")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := l.Addr().String()
	l.Close()
	var k [16]byte
	rand.Read(k[:])
	s := &Server{
		Endpoint: endpoint, bin: bin, dir: t.TempDir(), logPath: filepath.Join(t.TempDir(), "minio.log"),
		ak: "tg" + hex.EncodeToString(k[:4]), sk: hex.EncodeToString(k[4:]), t: t,
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// Config returns the config.Storage of the server for bucket.
func (s *Server) Config(bucket string) config.Storage {
	return configFor(s.t, s.Endpoint, s.ak, s.sk, bucket)
}

// Start starts the server (again) on the same port and data directory and
// waits until it is live. It may be called from any goroutine.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("%s already running", s.Endpoint)
	}
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.Endpoint, "--console-address", "127.0.0.1:0", s.dir)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.ak, "MINIO_ROOT_PASSWORD="+s.sk, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start minio: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	s.cmd, s.done = cmd, done
	err = testutil.WaitOK("http://"+s.Endpoint+"/minio/health/live", done, 50*time.Millisecond, 30*time.Second)
	if errors.Is(err, testutil.ErrExited) {
		s.cmd = nil
		return fmt.Errorf("minio at %s exited at start (log %s)", s.Endpoint, s.logPath)
	}
	if err != nil {
		return fmt.Errorf("minio at %s not live after 30s (log %s)", s.Endpoint, s.logPath)
	}
	return nil
}

// Kill kills the server process (SIGKILL, by its PID) and waits for it to
// exit. Killing a stopped server does nothing. It may be called from any
// goroutine.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}
