package controlapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/controlapi"
	"github.com/thinkgen/thinkgen/internal/alloccap"
	"github.com/thinkgen/thinkgen/queue"
)

// FuzzRequestBodies posts arbitrary bodies to every POST endpoint of the
// controller API (the first byte picks the endpoint): a 2xx or 4xx reply,
// never a panic or a 5xx, and at most 4 MiB plus 64 bytes per body byte
// allocated.
func FuzzRequestBodies(f *testing.F) {
	paths := []string{controlapi.PathRegister, controlapi.PathLease, controlapi.PathHeartbeat, controlapi.PathComplete, controlapi.PathFail}
	for i, body := range []string{
		`{"name":"w1","roles":["reward"],"capacity":2}`,
		`{"worker_id":"00ff00ff00ff00ff00ff00ff","timeout_ms":5}`,
		`{"worker_id":"00ff00ff00ff00ff00ff00ff","key":"run1/1/reward/s0","attempt":1}`,
		`{"worker_id":"00ff00ff00ff00ff00ff00ff","key":"run1/1/reward/s0","attempt":1,"result":{}}`,
		`{"worker_id":"00ff00ff00ff00ff00ff00ff","key":"run1/1/reward/s0","attempt":1,"error":"boom","fatal":true}`,
	} {
		f.Add(byte(i), []byte(body))
	}
	token := strings.Repeat("t", controlapi.MinTokenLen)
	srv, err := controlapi.NewServer(queue.New(queue.Options{}), controlapi.ServerOptions{Token: token, MaxLeaseWait: 10 * time.Millisecond, MaxBodyBytes: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which byte, body []byte) {
		req := httptest.NewRequest(http.MethodPost, paths[int(which)%len(paths)], strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		alloccap.Check(t, 4<<20+64*uint64(len(body)), func() { srv.ServeHTTP(w, req) })
		if w.Code >= 500 {
			t.Fatalf("POST %s %q: %d %s", req.URL.Path, body, w.Code, w.Body)
		}
	})
}
