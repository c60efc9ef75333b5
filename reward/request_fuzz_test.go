package reward

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinkgen/thinkgen/internal/alloccap"
)

// FuzzScoreRequest posts arbitrary bytes to the score handler, with small
// limits: a reply of 200, 400 or 413, never a panic, and at most 8 MiB
// plus 64 bytes per body byte allocated (the limits allow 16 items and
// 64 Ki pixels per request, so no PNG in the body, whatever its header
// says, decodes to more).
func FuzzScoreRequest(f *testing.F) {
	items := testItems(f, 2)
	wire, err := EncodeItems(items)
	if err != nil {
		f.Fatal(err)
	}
	body, err := json.Marshal(ScoreRequest{Version: ProtocolVersion, Items: wire})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	bomb, err := os.ReadFile(filepath.Join("testdata", "bomb-8192x8192.png"))
	if err != nil {
		f.Fatal(err)
	}
	wire[0].ImagePNG = bomb[:4096] // the header of a 256 MiB image
	body, err = json.Marshal(ScoreRequest{Version: ProtocolVersion, Items: wire[:1]})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	h := newHandler(Builtin(nil), HandlerOptions{MaxBodyBytes: 1 << 20, MaxItems: 16, MaxImagePixels: 256 * 256, MaxRequestPixels: 64 << 10})
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		alloccap.Check(t, 8<<20+64*uint64(len(body)), func() {
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, ScorePath, bytes.NewReader(body)))
		})
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
