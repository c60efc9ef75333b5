package reward

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/datasets"
)

func fastOptions() ClientOptions {
	return ClientOptions{Timeout: 5 * time.Second, RetryMax: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond, BatchSize: 7, Concurrency: 3}
}

func remoteRegistry(t *testing.T, url string, opts ClientOptions, weights map[string]float64) *Registry {
	t.Helper()
	c, err := NewClient(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	scorers := map[string]Scorer{}
	for _, sc := range datasets.AllScenarios {
		scorers[sc] = c
	}
	return NewRegistry(scorers, weights)
}

func testItems(t testing.TB, n int) []Item {
	t.Helper()
	rows, err := datasets.Generate(datasets.Options{Seed: 21, Split: datasets.Eval}, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	items := make([]Item, len(rows))
	for i, r := range rows {
		items[i] = rowItem(t, r)
		if i%3 == 0 { // score some wrong images too: another row's target
			items[i].Image = decode(t, rows[(i+1)%n].Target)
		}
	}
	return items
}

// TestRemoteMatchesInProcess scores the same items in process and through
// the reward-serve handler over loopback HTTP: the results are identical.
func TestRemoteMatchesInProcess(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Builtin(nil)))
	defer srv.Close()
	weights := map[string]float64{datasets.Text: 2, datasets.Editing: 0.5}
	items := testItems(t, 60)
	items = append(items, Item{ID: "bad", Scenario: datasets.Text, Spec: []byte(`{"scene":{"text":"AB"}}`), Image: image.NewRGBA(image.Rect(0, 0, 32, 16))})
	local, err := Builtin(weights).Score(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	remote, err := remoteRegistry(t, srv.URL, fastOptions(), weights).Score(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(local, remote) {
		for i := range local {
			if !reflect.DeepEqual(local[i], remote[i]) {
				t.Errorf("item %s: in process %+v, remote %+v", items[i].ID, local[i], remote[i])
			}
		}
	}
	var sum float64
	for _, r := range local {
		sum += r.Partial
	}
	if sum == 0 || sum == float64(len(local)) {
		t.Errorf("partial scores sum to %v over %d items: the comparison is vacuous", sum, len(local))
	}
}

// flaky fails the first n requests with 503, then serves h.
type flaky struct {
	n, calls atomic.Int64
	h        http.Handler
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.calls.Add(1) <= f.n.Load() {
		http.Error(w, "warming up", http.StatusServiceUnavailable)
		return
	}
	f.h.ServeHTTP(w, r)
}

func TestClientRetriesServerErrors(t *testing.T) {
	items := testItems(t, 5)
	for _, tt := range []struct {
		name              string
		failures, retries int
		ok                bool
	}{{"recovers", 3, 3, true}, {"gives up", 3, 2, false}} {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{h: NewHandler(Builtin(nil))}
			f.n.Store(int64(tt.failures))
			srv := httptest.NewServer(f)
			defer srv.Close()
			opts := fastOptions()
			opts.RetryMax, opts.BatchSize = tt.retries, 10
			c, err := NewClient(srv.URL, opts)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Score(context.Background(), items)
			if tt.ok && (err != nil || len(res) != len(items)) {
				t.Fatalf("after %d failures with %d retries: %v", tt.failures, tt.retries, err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "503")) {
				t.Fatalf("error %v, want a 503 after the retries ran out", err)
			}
			if got, want := f.calls.Load(), int64(min(tt.failures+1, tt.retries+1)); got != want {
				t.Errorf("%d requests, want %d", got, want)
			}
		})
	}
}

func TestClientDoesNotRetryClientErrors(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		NewHandler(Builtin(nil)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Score(context.Background(), []Item{{ID: "x", Scenario: "painting"}})
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), `unknown scenario "painting"`) {
		t.Fatalf("error %v, want 400 naming the scenario", err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d requests for a 400, want 1 (no retry)", calls.Load())
	}
}

func TestClientTimesOutHangingServer(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	opts := fastOptions()
	opts.Timeout, opts.RetryMax = 100*time.Millisecond, 1
	c, err := NewClient(srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Score(context.Background(), testItems(t, 2))
	if err == nil || !strings.Contains(err.Error(), "Timeout") {
		t.Fatalf("error %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("gave up after %v, want about 2 × 100 ms", d)
	}
	if calls.Load() != 2 {
		t.Errorf("%d attempts, want 2 (one retry)", calls.Load())
	}
}

func TestClientConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	opts := fastOptions()
	opts.RetryMax = 2
	c, err := NewClient(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Score(context.Background(), testItems(t, 1)); err == nil || !strings.Contains(err.Error(), "3 attempt") && !strings.Contains(err.Error(), "refused") {
		t.Fatalf("error %v, want connection refused after retries", err)
	}
}

func TestClientBoundsConcurrency(t *testing.T) {
	var inFlight, peak, calls atomic.Int64
	h := NewHandler(Builtin(nil))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		h.ServeHTTP(w, r)
		inFlight.Add(-1)
	}))
	defer srv.Close()
	opts := fastOptions()
	opts.BatchSize, opts.Concurrency = 1, 2
	c, err := NewClient(srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	items := testItems(t, 10)
	res, err := c.Score(context.Background(), items)
	if err != nil || len(res) != 10 {
		t.Fatal(err)
	}
	for i := range res {
		if res[i].ID != items[i].ID {
			t.Errorf("result %d is for %q, want %q", i, res[i].ID, items[i].ID)
		}
	}
	if calls.Load() != 10 || peak.Load() > 2 {
		t.Errorf("%d requests, peak %d in flight; want 10 and at most 2", calls.Load(), peak.Load())
	}
}

func TestHandlerRejects(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Builtin(nil)))
	defer srv.Close()
	post := func(body string) (int, string) {
		resp, err := http.Post(srv.URL+ScorePath, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb errorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, eb.Error
	}
	for _, tt := range []struct {
		body string
		code int
		want string
	}{
		{`{"version":2,"items":[]}`, 400, "protocol version 2"},
		{`{"version":1,"items":[`, 400, "decode request"},
		{`{"version":1,"items":[{"id":"a","scenario":"nope"}]}`, 400, `unknown scenario "nope"`},
	} {
		if code, msg := post(tt.body); code != tt.code || !strings.Contains(msg, tt.want) {
			t.Errorf("POST %s: %d %q, want %d %q", tt.body, code, msg, tt.code, tt.want)
		}
	}
	resp, err := http.Get(srv.URL + ScorePath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d", ScorePath, resp.StatusCode)
	}
	// A corrupt PNG is that item's error, not the batch's.
	body, _ := json.Marshal(ScoreRequest{Version: 1, Items: []WireItem{{ID: "p", Scenario: datasets.Text, Spec: []byte(`{"scene":{"text":"A"}}`), ImagePNG: []byte("not png")}}})
	resp, err = http.Post(srv.URL+ScorePath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var sr ScoreResponse
	err = json.NewDecoder(resp.Body).Decode(&sr)
	resp.Body.Close()
	if err != nil || len(sr.Results) != 1 || !strings.Contains(sr.Results[0].Err, "decode image PNG") {
		t.Errorf("corrupt PNG: %v %+v", err, sr)
	}
}

func TestNewClientRejectsBadURL(t *testing.T) {
	if _, err := NewClient("127.0.0.1:80", ClientOptions{}); err == nil {
		t.Error("URL without scheme: no error")
	}
}

var _ Scorer = (*Client)(nil)
var _ Scorer = (*Registry)(nil)
