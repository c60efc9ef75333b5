package reward

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/thinkgen/thinkgen/internal/bearer"
	"github.com/thinkgen/thinkgen/internal/retryhttp"
)

// ProtocolVersion is the version of the remote reward protocol. A server
// rejects requests of any other version with 400 Bad Request.
const ProtocolVersion = 1

// Paths of the remote reward protocol.
const (
	ScorePath  = "/v1/score"
	HealthPath = "/v1/health"
)

// ScoreRequest is the body of POST /v1/score (JSON):
//
//	{"version": 1, "items": [{"id": "train-0000001", "scenario": "text",
//	  "spec": {…}, "image_png": "<base64>", "reference_png": "<base64>",
//	  "text": "…", "answer": "…"}, …]}
//
// The response is a ScoreResponse with one result per item, in order:
//
//	{"version": 1, "results": [{"id": …, "scenario": …, "score": 0.75,
//	  "partial": 0.75, "strict": 0, "weight": 1, "aux": {…}, "error": "…"}]}
//
// Errors are {"error": "…"} with 400 (malformed body, wrong version,
// unknown scenario), 405 (not POST), 413 (body too large) or 500 (the
// scorer failed). Images are PNG, so scores through the service equal
// in-process scores bit for bit.
type ScoreRequest struct {
	Version int        `json:"version"`
	Items   []WireItem `json:"items"`
}

// WireItem is an Item on the wire.
type WireItem struct {
	ID           string          `json:"id"`
	Scenario     string          `json:"scenario"`
	Spec         json.RawMessage `json:"spec,omitempty"`
	ImagePNG     []byte          `json:"image_png,omitempty"`
	ReferencePNG []byte          `json:"reference_png,omitempty"`
	Text         string          `json:"text,omitempty"`
	Answer       string          `json:"answer,omitempty"`
}

// ScoreResponse is the body of a successful POST /v1/score.
type ScoreResponse struct {
	Version int      `json:"version"`
	Results []Result `json:"results"`
}

type errorBody struct {
	Error string `json:"error"`
}

// Default limits of a handler (HandlerOptions' zero values).
const (
	// MaxRequestBytes bounds the body a handler reads.
	MaxRequestBytes = 64 << 20
	// DefaultMaxItems bounds the items of one request.
	DefaultMaxItems = 1024
	// DefaultMaxImagePixels bounds the width × height of one image.
	DefaultMaxImagePixels = 4096 * 4096
	// DefaultMaxRequestPixels bounds the width × height summed over the
	// images of one request (256 Mpx: 1 GiB decoded as RGBA).
	DefaultMaxRequestPixels = 256 << 20
)

// HandlerOptions bound what one request may make a handler read and
// allocate. Zero values take the defaults above.
type HandlerOptions struct {
	// MaxBodyBytes bounds the request body (413 beyond).
	MaxBodyBytes int64
	// MaxItems bounds the items of one request (413 beyond).
	MaxItems int
	// MaxImagePixels bounds one image's width × height, read from its
	// PNG header before any pixel is decoded; a larger image is that
	// item's error.
	MaxImagePixels int64
	// MaxRequestPixels bounds the pixels decoded for one request; an
	// image past the budget is that item's error.
	MaxRequestPixels int64
}

func (o HandlerOptions) withDefaults() HandlerOptions {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = MaxRequestBytes
	}
	if o.MaxItems <= 0 {
		o.MaxItems = DefaultMaxItems
	}
	if o.MaxImagePixels <= 0 {
		o.MaxImagePixels = DefaultMaxImagePixels
	}
	if o.MaxRequestPixels <= 0 {
		o.MaxRequestPixels = DefaultMaxRequestPixels
	}
	return o
}

// NewHandler serves s over the remote reward protocol with the default
// limits and no authentication (see NewServer for both).
func NewHandler(s Scorer) http.Handler { return newHandler(s, HandlerOptions{}) }

func newHandler(s Scorer, o HandlerOptions) http.Handler {
	o = o.withDefaults()
	mux := http.NewServeMux()
	mux.HandleFunc(HealthPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"version": ProtocolVersion, "ok": true})
	})
	mux.HandleFunc(ScorePath, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{"POST only"})
			return
		}
		req, code, err := DecodeScoreRequest(http.MaxBytesReader(w, r.Body, o.MaxBodyBytes), o.MaxItems)
		if err != nil {
			writeJSON(w, code, errorBody{err.Error()})
			return
		}
		items := make([]Item, len(req.Items))
		decodeErrs := make([]error, len(req.Items))
		budget := o.MaxRequestPixels
		for i, wi := range req.Items {
			items[i], decodeErrs[i] = wi.item(o.MaxImagePixels, &budget)
		}
		res, err := s.Score(r.Context(), items)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ErrUnknownScenario) {
				code = http.StatusBadRequest
			}
			writeJSON(w, code, errorBody{err.Error()})
			return
		}
		// An undecodable image is that item's error, as a bad image is in
		// process.
		for i, err := range decodeErrs {
			if err != nil {
				res[i] = Result{ID: res[i].ID, Scenario: res[i].Scenario, Weight: res[i].Weight,
					Err: fmt.Sprintf("%s item %q: %v", res[i].Scenario, res[i].ID, err)}
			}
		}
		writeJSON(w, http.StatusOK, ScoreResponse{Version: ProtocolVersion, Results: res})
	})
	return mux
}

// DecodeScoreRequest reads a ScoreRequest of the current protocol version
// with at most maxItems items from r. On failure it returns the HTTP
// status the error deserves: 413 when r is an http.MaxBytesReader past its
// limit or the request has too many items, else 400. It decodes no image.
func DecodeScoreRequest(r io.Reader, maxItems int) (ScoreRequest, int, error) {
	var req ScoreRequest
	dec := json.NewDecoder(r)
	if err := dec.Decode(&req); err != nil {
		code := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			code = http.StatusRequestEntityTooLarge
		}
		return req, code, fmt.Errorf("decode request: %w", err)
	}
	if req.Version != ProtocolVersion {
		return req, http.StatusBadRequest, fmt.Errorf("protocol version %d, this server speaks %d", req.Version, ProtocolVersion)
	}
	if len(req.Items) > maxItems {
		return req, http.StatusRequestEntityTooLarge, fmt.Errorf("%d items, at most %d per request", len(req.Items), maxItems)
	}
	return req, 0, nil
}

// decodeImage decodes a PNG after checking, from its header alone, that
// it has at most maxPixels pixels and that they fit in *budget, which it
// then spends.
func decodeImage(b []byte, what string, maxPixels int64, budget *int64) (image.Image, error) {
	if len(b) == 0 {
		return nil, nil
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode %s PNG: %w", what, err)
	}
	px := int64(cfg.Width) * int64(cfg.Height)
	if px > maxPixels {
		return nil, fmt.Errorf("%s PNG is %d×%d, more than %d pixels", what, cfg.Width, cfg.Height, maxPixels)
	}
	if px > *budget {
		return nil, fmt.Errorf("%s PNG is %d×%d, past the request's remaining %d pixels", what, cfg.Width, cfg.Height, *budget)
	}
	*budget -= px
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("decode %s PNG: %w", what, err)
	}
	return img, nil
}

func (wi WireItem) item(maxPixels int64, budget *int64) (Item, error) {
	it := Item{ID: wi.ID, Scenario: wi.Scenario, Spec: wi.Spec, Text: wi.Text, Answer: wi.Answer}
	img, err := decodeImage(wi.ImagePNG, "image", maxPixels, budget)
	if err != nil {
		return it, err
	}
	ref, err := decodeImage(wi.ReferencePNG, "reference", maxPixels, budget)
	if err != nil {
		return it, err
	}
	it.Image, it.Reference = img, ref
	return it, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// ClientOptions configure a Client. Zero values take the defaults.
type ClientOptions struct {
	// Timeout of one HTTP attempt; 0 means 30 s.
	Timeout time.Duration
	// RetryMax is the number of retries after the first attempt, on
	// connection errors, 429 and 5xx (never on other 4xx); 0 means 4, and
	// a negative value disables retries.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts; 0 means 100 ms and 5 s.
	RetryWaitMin, RetryWaitMax time.Duration
	// BatchSize is the number of items per request; 0 means 64.
	BatchSize int
	// Concurrency bounds the requests in flight; 0 means 4.
	Concurrency int
	// Token is the bearer token sent with every request ("" for a
	// service without one).
	Token string
}

// Client scores items through a remote reward service. It is a Scorer and
// safe for concurrent use.
type Client struct {
	url  string
	http *retryablehttp.Client
	opts ClientOptions
}

// NewClient returns a client of the service at baseURL
// (e.g. "http://127.0.0.1:8700").
func NewClient(baseURL string, opts ClientOptions) (*Client, error) {
	if !strings.HasPrefix(baseURL, "http://") && !strings.HasPrefix(baseURL, "https://") {
		return nil, fmt.Errorf("reward service URL %q: want http:// or https://", baseURL)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 4
	} else if opts.RetryMax < 0 {
		opts.RetryMax = 0
	}
	opts.RetryWaitMin = cmp.Or(opts.RetryWaitMin, 100*time.Millisecond)
	opts.RetryWaitMax = cmp.Or(opts.RetryWaitMax, 5*time.Second)
	if opts.BatchSize <= 0 {
		opts.BatchSize = 64
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Token != "" {
		if err := bearer.Check(opts.Token); err != nil {
			return nil, fmt.Errorf("reward service client: %w", err)
		}
	}
	rc := retryhttp.New(nil, opts.Timeout, opts.RetryMax, opts.RetryWaitMin, opts.RetryWaitMax)
	return &Client{url: strings.TrimRight(baseURL, "/"), http: rc, opts: opts}, nil
}

// Score implements Scorer: it sends the items in batches of BatchSize, at
// most Concurrency at a time, and fails if any batch fails after its
// retries.
func (c *Client) Score(ctx context.Context, items []Item) ([]Result, error) {
	out := make([]Result, len(items))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, c.opts.Concurrency)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for start := 0; start < len(items); start += c.opts.BatchSize {
		end := min(len(items), start+c.opts.BatchSize)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, err := c.scoreBatch(ctx, items[start:end])
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("score items %d..%d at %s: %w", start, end-1, c.url, err)
				}
				mu.Unlock()
				cancel()
				return
			}
			copy(out[start:end], res)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// pngPool recycles PNG encoder buffers (their flate writers are the
// costly part of encoding small images).
type pngPool struct{ p sync.Pool }

func (p *pngPool) Get() *png.EncoderBuffer {
	b, _ := p.p.Get().(*png.EncoderBuffer)
	return b
}

func (p *pngPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }

// EncodeItems turns items into their wire form (images as PNG).
func EncodeItems(items []Item) ([]WireItem, error) {
	enc := &png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngPool{}}
	out := make([]WireItem, len(items))
	for i, it := range items {
		wi := WireItem{ID: it.ID, Scenario: it.Scenario, Spec: it.Spec, Text: it.Text, Answer: it.Answer}
		for _, p := range []struct {
			img image.Image
			dst *[]byte
		}{{it.Image, &wi.ImagePNG}, {it.Reference, &wi.ReferencePNG}} {
			if p.img == nil || p.img.Bounds().Empty() {
				continue
			}
			var buf bytes.Buffer
			if err := enc.Encode(&buf, p.img); err != nil {
				return nil, fmt.Errorf("item %q: encode PNG: %w", it.ID, err)
			}
			*p.dst = buf.Bytes()
		}
		if len(wi.Spec) > 0 && !json.Valid(wi.Spec) {
			// Keep the request valid JSON; the server reports the bad spec.
			wi.Spec, _ = json.Marshal(string(wi.Spec))
		}
		out[i] = wi
	}
	return out, nil
}

func (c *Client) scoreBatch(ctx context.Context, items []Item) ([]Result, error) {
	wire, err := EncodeItems(items)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(ScoreRequest{Version: ProtocolVersion, Items: wire})
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, c.url+ScorePath, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			return nil, fmt.Errorf("%s: %s", resp.Status, eb.Error)
		}
		return nil, fmt.Errorf("%s", resp.Status)
	}
	var sr ScoreResponse
	if err := json.Unmarshal(data, &sr); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if sr.Version != ProtocolVersion || len(sr.Results) != len(items) {
		return nil, fmt.Errorf("response version %d with %d results for %d items", sr.Version, len(sr.Results), len(items))
	}
	return sr.Results, nil
}
