// Package testutil holds the small helpers that the tests of several
// packages share: a free loopback address, a buffer safe for concurrent
// writers, a check that a text mentions what it must, readers of the
// files tests produce or read (JSON, PNG images, files that must be equal
// byte for byte), a certificate to serve HTTPS with and a check that a
// server serves HTTPS only, and a wait for a server a test started to
// answer. It imports no package of the module, so any test may use it.
package testutil

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// FreeAddr returns a 127.0.0.1 address with a port nobody listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Listen returns a listener on a free 127.0.0.1 port, closed when the test
// ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and a polling
// reader (a log sink, a command's output read while it runs).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what has been written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Mentions fails the test (without stopping it) for every one of wants
// that text does not contain; what names the text in the message
// ("stderr", "error").
func Mentions(t testing.TB, what, text string, wants []string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

// JSON returns v encoded as JSON.
func JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ReadJSON decodes the JSON file at path into v.
func ReadJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// ReadPNG decodes the PNG image at path.
func ReadPNG(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// SameFiles checks that each of names is the same, byte for byte, in the
// directories a and b; what says what a difference means.
func SameFiles(t testing.TB, a, b string, names []string, what string) {
	t.Helper()
	for _, name := range names {
		x, err1 := os.ReadFile(filepath.Join(a, name))
		y, err2 := os.ReadFile(filepath.Join(b, name))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s: %s", name, what)
		}
	}
}

// TLSFiles writes a certificate for 127.0.0.1 and its private key as PEM
// files in a temporary directory (net/http/httptest's test certificate)
// and returns their paths with a client that trusts the certificate.
func TLSFiles(t testing.TB) (certFile, keyFile string, client *http.Client) {
	t.Helper()
	hs := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate and key
	cert := hs.TLS.Certificates[0]
	client = &http.Client{Transport: &http.Transport{TLSClientConfig: hs.Client().Transport.(*http.Transport).TLSClientConfig}}
	hs.Close()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, client
}

// ServesTLSOnly checks that the server at addr (host:port) answers GET
// path over HTTPS, through client (TLSFiles') with the bearer token, with
// 200 OK, and that plain HTTP to the same port gets no 200.
func ServesTLSOnly(t testing.TB, client *http.Client, addr, path, token string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET over TLS: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get("http://" + addr + path); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served by the TLS server")
		}
	}
}

// ErrExited reports that a server exited before it answered (WaitOK).
var ErrExited = errors.New("exited before it answered")

// WaitOK polls GET url every poll until it answers 200 OK. It fails with
// ErrExited once exited is closed (the server's process ended), or when
// timeout has passed.
func WaitOK(url string, exited <-chan struct{}, poll, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return ErrExited
		case <-time.After(poll):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 OK from %s within %s", url, timeout)
		}
	}
}
