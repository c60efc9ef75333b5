package reward

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/testutil"
)

const testToken = "0123456789abcdef-reward-token"

func TestServerRefusesWithoutToken(t *testing.T) {
	srv, err := NewServer(Builtin(nil), ServerOptions{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	body, err := json.Marshal(ScoreRequest{Version: ProtocolVersion, Items: mustWire(t, testItems(t, 3))})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, header string
		want         int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer " + strings.Repeat("x", len(testToken)), http.StatusUnauthorized},
		{"right token", "Bearer " + testToken, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, hs.URL+ScorePath, bytes.NewReader(body))
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	// The client sends the token it is given.
	opts := fastOptions()
	opts.Token = testToken
	if _, err := remoteRegistry(t, hs.URL, opts, nil).Score(context.Background(), testItems(t, 4)); err != nil {
		t.Fatalf("client with the token: %v", err)
	}
	opts.Token = ""
	if _, err := remoteRegistry(t, hs.URL, opts, nil).Score(context.Background(), testItems(t, 4)); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("client without the token: %v, want 401", err)
	}
}

func mustWire(t *testing.T, items []Item) []WireItem {
	t.Helper()
	w, err := EncodeItems(items)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestServeRefusesNonLoopbackWithoutToken(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skipf("cannot listen on all interfaces: %v", err)
	}
	defer ln.Close()
	srv, err := NewServer(Builtin(nil), ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Serve(ctx, ln); err == nil || !strings.Contains(err.Error(), "only on loopback") {
		t.Fatalf("Serve on %s without a token: %v, want a refusal", ln.Addr(), err)
	}
}

// TestServeTLS serves HTTPS with a certificate from testdata and scores
// through it.
func TestServeTLS(t *testing.T) {
	certFile, keyFile, client := testutil.TLSFiles(t)
	srv, err := NewServer(Builtin(nil), ServerOptions{Token: testToken, CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	ln := testutil.Listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	testutil.ServesTLSOnly(t, client, ln.Addr().String(), HealthPath, testToken)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestNewServerRejects(t *testing.T) {
	for _, o := range []ServerOptions{
		{Token: "short"},
		{Token: testToken, CertFile: "cert.pem"},
	} {
		if _, err := NewServer(Builtin(nil), o); err == nil {
			t.Errorf("NewServer(%+v): no error", o)
		}
	}
}

// TestHandlerLimits: an oversized body and too many items are refused
// with 413 before any scoring.
func TestHandlerLimits(t *testing.T) {
	srv, err := NewServer(Builtin(nil), ServerOptions{Limits: HandlerOptions{MaxBodyBytes: 64 << 10, MaxItems: 8}})
	if err != nil {
		t.Fatal(err)
	}
	items := mustWire(t, testItems(t, 9))
	big := mustWire(t, testItems(t, 1))
	big[0].Text = strings.Repeat("A", 100<<10)
	for _, tc := range []struct {
		name  string
		items []WireItem
		want  int
		msg   string
	}{
		{"within limits", items[:8], http.StatusOK, ""},
		{"too many items", items, http.StatusRequestEntityTooLarge, "9 items, at most 8"},
		{"body too large", big, http.StatusRequestEntityTooLarge, "request body too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(ScoreRequest{Version: ProtocolVersion, Items: tc.items})
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, ScorePath, bytes.NewReader(body)))
			if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.msg) {
				t.Fatalf("status %d %s, want %d %q", w.Code, w.Body, tc.want, tc.msg)
			}
		})
	}
}

// TestHandlerRefusesDecompressionBomb posts a 255 KiB PNG whose header
// says 8192×8192 (256 MiB as RGBA): the item fails from its header alone
// and the request allocates far less than the decoded image would take.
// The default limits apply.
func TestHandlerRefusesDecompressionBomb(t *testing.T) {
	bomb, err := os.ReadFile(filepath.Join("testdata", "bomb-8192x8192.png"))
	if err != nil {
		t.Fatal(err)
	}
	items := mustWire(t, testItems(t, 2))
	items[0].ImagePNG = bomb
	items[1].ReferencePNG = bomb
	body, err := json.Marshal(ScoreRequest{Version: ProtocolVersion, Items: items})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(Builtin(nil))
	const capBytes = 16 << 20 // the body is 350 KB; the image would be 256 MiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, ScorePath, bytes.NewReader(body)))
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > capBytes {
		t.Errorf("the request allocated %d MiB, cap %d MiB", got>>20, capBytes>>20)
	}
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var sr ScoreResponse
	if err := json.Unmarshal(w.Body.Bytes(), &sr); err != nil {
		t.Fatal(err)
	}
	for i, r := range sr.Results {
		if !strings.Contains(r.Err, "8192×8192, more than") {
			t.Errorf("item %d: error %q, want the bomb refused by its size", i, r.Err)
		}
	}
}

// TestHandlerPixelBudget: images within the per-image limit are refused
// once the request's pixel budget is spent.
func TestHandlerPixelBudget(t *testing.T) {
	items := testItems(t, 3)
	for i := range items {
		items[i].Scenario = datasets.Text
	}
	px := int64(items[0].Image.Bounds().Dx() * items[0].Image.Bounds().Dy())
	srv, err := NewServer(Builtin(nil), ServerOptions{Limits: HandlerOptions{MaxRequestPixels: 2*px + px/2}})
	if err != nil {
		t.Fatal(err)
	}
	wire := mustWire(t, items)
	for i := range wire {
		wire[i].ReferencePNG = nil
	}
	body, _ := json.Marshal(ScoreRequest{Version: ProtocolVersion, Items: wire})
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, ScorePath, bytes.NewReader(body)))
	var sr ScoreResponse
	if err := json.Unmarshal(w.Body.Bytes(), &sr); err != nil || len(sr.Results) != 3 {
		t.Fatalf("status %d %s: %v", w.Code, w.Body, err)
	}
	for i, r := range sr.Results {
		refused := strings.Contains(r.Err, "past the request's remaining")
		if refused != (i == 2) {
			t.Errorf("item %d: error %q; want only item 2 refused by the budget", i, r.Err)
		}
	}
}
