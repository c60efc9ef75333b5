package testutil

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records the failures it is told of.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestMentions(t *testing.T) {
	tests := []struct {
		text  string
		wants []string
		fails []string // the wants reported missing
	}{
		{"--run: bad name", []string{"--run", "bad"}, nil},
		{"--run: bad name", []string{"--run", "--out", "missing"}, []string{`"--out"`, `"missing"`}},
		{"", nil, nil},
	}
	for _, tt := range tests {
		r := &recorder{TB: t}
		Mentions(r, "stderr", tt.text, tt.wants)
		if len(r.errs) != len(tt.fails) {
			t.Fatalf("Mentions(%q, %q) reported %q, want %d failures", tt.text, tt.wants, r.errs, len(tt.fails))
		}
		for i, f := range tt.fails {
			if !strings.HasPrefix(r.errs[i], "stderr lacks "+f) {
				t.Errorf("failure %d = %q, want one naming %s", i, r.errs[i], f)
			}
		}
	}
}

func TestSameFiles(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for dir, files := range map[string]map[string]string{a: {"x": "1", "y": "2"}, b: {"x": "1", "y": "3"}} {
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := &recorder{TB: t}
	SameFiles(r, a, b, []string{"x", "y"}, "differs")
	if len(r.errs) != 1 || r.errs[0] != "y: differs" {
		t.Errorf("SameFiles reported %q, want only y", r.errs)
	}
}

func TestSyncBufferAndReadPNG(t *testing.T) {
	var buf SyncBuffer
	done := make(chan struct{})
	for range 4 {
		go func() {
			fmt.Fprint(&buf, "ab")
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	if got := buf.String(); got != "abababab" {
		t.Errorf("SyncBuffer holds %q", got)
	}

	img := image.NewGray(image.Rect(0, 0, 3, 2))
	img.SetGray(2, 1, color.Gray{Y: 200})
	path := filepath.Join(t.TempDir(), "x.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got := ReadPNG(t, path)
	if got.Bounds() != img.Bounds() || color.GrayModel.Convert(got.At(2, 1)).(color.Gray).Y != 200 {
		t.Errorf("ReadPNG: bounds %v, pixel %v", got.Bounds(), got.At(2, 1))
	}
	if addr := FreeAddr(t); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("FreeAddr = %q", addr)
	}
	if addr := Listen(t).Addr().String(); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("Listen on %q", addr)
	}
}

func TestWaitOK(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	never := make(chan struct{})
	if err := WaitOK(srv.URL, never, time.Millisecond, 10*time.Second); err != nil || calls.Load() != 3 {
		t.Errorf("WaitOK of a server that answers 200 on its third GET = %v after %d GETs; want nil after 3", err, calls.Load())
	}
	down := "http://" + FreeAddr(t)
	exited := make(chan struct{})
	close(exited)
	if err := WaitOK(down, exited, time.Millisecond, 10*time.Second); !errors.Is(err, ErrExited) {
		t.Errorf("WaitOK of an exited server = %v, want ErrExited", err)
	}
	if err := WaitOK(down, never, time.Millisecond, 20*time.Millisecond); err == nil || errors.Is(err, ErrExited) {
		t.Errorf("WaitOK of a server that never answers = %v, want a timeout", err)
	}
}
