package retryhttp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetriesThenHandsOverTheLastReply serves 503 for the first fails
// requests: within retryMax the client returns the 200; beyond it, the last
// 503 with its body, and no error.
func TestRetriesThenHandsOverTheLastReply(t *testing.T) {
	tests := []struct {
		fails, retryMax int
		want            int
		body            string
		calls           int32
	}{
		{fails: 2, retryMax: 4, want: http.StatusOK, body: "ok", calls: 3},
		{fails: 9, retryMax: 2, want: http.StatusServiceUnavailable, body: "busy", calls: 3},
		{fails: 0, retryMax: 0, want: http.StatusOK, body: "ok", calls: 1},
	}
	for _, tt := range tests {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if int(calls.Add(1)) <= tt.fails {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, "busy")
				return
			}
			io.WriteString(w, "ok")
		}))
		c := New(nil, 5*time.Second, tt.retryMax, time.Millisecond, 2*time.Millisecond)
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatalf("%+v: %v", tt, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != tt.want || string(b) != tt.body || calls.Load() != tt.calls {
			t.Errorf("%+v: status %d, body %q after %d calls", tt, resp.StatusCode, b, calls.Load())
		}
	}
}
