package httpserve

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/internal/testutil"
)

func TestServeRefuses(t *testing.T) {
	tests := []struct {
		name string
		addr string
		o    Options
		want string
	}{
		{"open on all interfaces", "0.0.0.0:0", Options{Name: "svc", TokenHint: "--token-file"}, "svc: without a bearer token (--token-file) it listens only on loopback"},
		{"certificate without key", "127.0.0.1:0", Options{Name: "svc", CertFile: "cert.pem"}, "svc: TLS wants both"},
		{"key without certificate", "127.0.0.1:0", Options{Name: "svc", Authenticated: true, KeyFile: "key.pem"}, "svc: TLS wants both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", tc.addr)
			if err != nil {
				t.Skipf("cannot listen on %s: %v", tc.addr, err)
			}
			defer ln.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = Serve(ctx, ln, http.NotFoundHandler(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Serve: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestServerTimeouts(t *testing.T) {
	def := (&Options{}).Server(http.NotFoundHandler())
	if def.ReadHeaderTimeout != 10*time.Second || def.ReadTimeout != 2*time.Minute || def.WriteTimeout != 5*time.Minute || def.IdleTimeout != 2*time.Minute || def.MaxHeaderBytes != 64<<10 {
		t.Errorf("defaults: %+v", def)
	}
	set := (&Options{WriteTimeout: 7 * time.Minute, MaxHeaderBytes: 1024}).Server(http.NotFoundHandler())
	if set.WriteTimeout != 7*time.Minute || set.MaxHeaderBytes != 1024 || set.ReadTimeout != 2*time.Minute {
		t.Errorf("set: %+v", set)
	}
}

// TestServeShutsDownGracefully: a request in flight when ctx ends is
// answered, and Serve then returns nil.
func TestServeShutsDownGracefully(t *testing.T) {
	ln := testutil.Listen(t)
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, h, Options{Name: "svc"}) }()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-started
	cancel()
	time.Sleep(50 * time.Millisecond) // Shutdown has begun
	close(release)
	if s := <-got; s != "done" {
		t.Fatalf("request in flight got %q, want done", s)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
