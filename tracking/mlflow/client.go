package mlflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/thinkgen/thinkgen/internal/retryhttp"
)

// MLflow's limits on one runs/log-batch request and on its entities, as
// its REST API documents them. Param values are cut to 500 bytes (at a
// character boundary), within the 500 characters that MLflow servers
// before 2.x accepted; newer servers take more, but a value cut the same
// way everywhere reads the same.
const (
	MaxMetricsPerBatch  = 1000
	MaxParamsPerBatch   = 100
	MaxEntitiesPerBatch = 1000
	MaxParamValueLen    = 500
	MaxKeyLen           = 250
)

// Auth is how requests authenticate, as MLflow's own client does from
// MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME and _PASSWORD; the zero
// value sends nothing.
type Auth struct {
	Token              string
	Username, Password string
}

// ClientOptions configure a Client.
type ClientOptions struct {
	Auth Auth
	// Timeout of one attempt (0: 30 s).
	Timeout time.Duration
	// RetryMax retries of a failed call (negative: none; 0: 4), waiting
	// from RetryWaitMin (0: 500 ms) to RetryWaitMax (0: 8 s).
	RetryMax                   int
	RetryWaitMin, RetryWaitMax time.Duration
}

// Client calls one MLflow tracking server's REST API.
type Client struct {
	base string // without a trailing slash
	auth Auth
	hc   *retryablehttp.Client
}

// NewClient returns a client of the tracking server at uri (http or https).
func NewClient(uri string, o ClientOptions) (*Client, error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mlflow: tracking URI %q: want the http(s) URL of a tracking server", uri)
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	switch {
	case o.RetryMax < 0:
		o.RetryMax = 0
	case o.RetryMax == 0:
		o.RetryMax = 4
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = 500 * time.Millisecond
	}
	if o.RetryWaitMax <= 0 {
		o.RetryWaitMax = 8 * time.Second
	}
	return &Client{
		base: strings.TrimRight(uri, "/"),
		auth: o.Auth,
		hc:   retryhttp.New(nil, o.Timeout, o.RetryMax, o.RetryWaitMin, o.RetryWaitMax),
	}, nil
}

// String is the server's URL.
func (c *Client) String() string { return c.base }

// APIError is an error reply of the server.
type APIError struct {
	Op         string // the endpoint, e.g. "runs/log-batch"
	StatusCode int
	Code       string // MLflow's error_code, e.g. RESOURCE_DOES_NOT_EXIST
	Message    string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("mlflow %s: HTTP %d: %s", e.Op, e.StatusCode, e.Message)
	}
	return fmt.Sprintf("mlflow %s: HTTP %d %s: %s", e.Op, e.StatusCode, e.Code, e.Message)
}

// IsCode reports whether err is an APIError with MLflow error code code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// do sends one request of the REST API (path below /api/2.0/mlflow/) and
// decodes the reply into out (nil: discarded). A GET's in is its query.
func (c *Client) do(ctx context.Context, method, op string, in any, out any) error {
	var body []byte
	target := c.base + "/api/2.0/mlflow/" + op
	switch {
	case method == http.MethodGet && in != nil:
		target += "?" + in.(url.Values).Encode()
	case in != nil:
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("mlflow %s: %w", op, err)
		}
		body = b
	}
	return c.send(ctx, method, op, target, "application/json", body, out)
}

func (c *Client) send(ctx context.Context, method, op, target, ctype string, body []byte, out any) error {
	var rb any
	if body != nil {
		rb = body
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, target, rb)
	if err != nil {
		return fmt.Errorf("mlflow %s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	switch {
	case c.auth.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.auth.Token)
	case c.auth.Username != "":
		req.SetBasicAuth(c.auth.Username, c.auth.Password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("mlflow %s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("mlflow %s: read the reply: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Op: op, StatusCode: resp.StatusCode}
		var e struct {
			Code    string `json:"error_code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &e) == nil && (e.Code != "" || e.Message != "") {
			ae.Code, ae.Message = e.Code, e.Message
		} else {
			ae.Message = strings.TrimSpace(string(b[:min(len(b), 300)]))
		}
		return ae
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("mlflow %s: decode the reply: %w", op, err)
	}
	return nil
}

// ExperimentID returns the id of the experiment called name, creating it
// when the server has none (or another client created it meanwhile).
func (c *Client) ExperimentID(ctx context.Context, name string) (string, error) {
	get := func() (string, error) {
		var r struct {
			Experiment struct {
				ID             string `json:"experiment_id"`
				LifecycleStage string `json:"lifecycle_stage"`
			} `json:"experiment"`
		}
		if err := c.do(ctx, http.MethodGet, "experiments/get-by-name", url.Values{"experiment_name": {name}}, &r); err != nil {
			return "", err
		}
		if r.Experiment.LifecycleStage == "deleted" {
			return "", fmt.Errorf("mlflow: experiment %q (id %s) is deleted: restore it or name another (tracking.experiment)", name, r.Experiment.ID)
		}
		return r.Experiment.ID, nil
	}
	id, err := get()
	if !IsCode(err, "RESOURCE_DOES_NOT_EXIST") {
		return id, err
	}
	var r struct {
		ID string `json:"experiment_id"`
	}
	err = c.do(ctx, http.MethodPost, "experiments/create", map[string]string{"name": name}, &r)
	if IsCode(err, "RESOURCE_ALREADY_EXISTS") {
		return get()
	}
	return r.ID, err
}

// RunInfo is what this package reads of an MLflow run.
type RunInfo struct {
	ID          string
	Status      string
	ArtifactURI string
	// Params are the run's params; LastStep the highest step of its
	// metrics (-1: it has none).
	Params   map[string]string
	LastStep int64
}

type wireRun struct {
	Info struct {
		RunID       string `json:"run_id"`
		Status      string `json:"status"`
		ArtifactURI string `json:"artifact_uri"`
	} `json:"info"`
	Data struct {
		Metrics []struct {
			Key  string  `json:"key"`
			Step flexInt `json:"step"`
		} `json:"metrics"`
		Params []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"params"`
	} `json:"data"`
}

func (w wireRun) info() (*RunInfo, error) {
	ri := &RunInfo{ID: w.Info.RunID, Status: w.Info.Status, ArtifactURI: w.Info.ArtifactURI, Params: map[string]string{}, LastStep: -1}
	for _, m := range w.Data.Metrics {
		ri.LastStep = max(ri.LastStep, int64(m.Step))
	}
	for _, p := range w.Data.Params {
		ri.Params[p.Key] = p.Value
	}
	return ri, nil
}

// flexInt is an int64 that the server may send as a JSON number (MLflow's
// handlers do) or as a string (proto3 JSON's spelling of int64).
type flexInt int64

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("int64 %s: %w", b, err)
	}
	*f = flexInt(v)
	return nil
}

// Run returns the run with id.
func (c *Client) Run(ctx context.Context, id string) (*RunInfo, error) {
	var r struct {
		Run wireRun `json:"run"`
	}
	if err := c.do(ctx, http.MethodGet, "runs/get", url.Values{"run_id": {id}}, &r); err != nil {
		return nil, err
	}
	return r.Run.info()
}

// FindRun returns the id of the active run of experiment exp that has
// every tag of tags, or "" when there is none.
func (c *Client) FindRun(ctx context.Context, exp string, tags map[string]string) (string, error) {
	var conds []string
	for k, v := range tags {
		conds = append(conds, fmt.Sprintf("tags.`%s` = '%s'", k, strings.ReplaceAll(v, "'", `\'`)))
	}
	var r struct {
		Runs []wireRun `json:"runs"`
	}
	req := map[string]any{"experiment_ids": []string{exp}, "filter": strings.Join(sortedStrings(conds), " and "), "max_results": 2, "run_view_type": "ACTIVE_ONLY"}
	if err := c.do(ctx, http.MethodPost, "runs/search", req, &r); err != nil {
		return "", err
	}
	switch len(r.Runs) {
	case 0:
		return "", nil
	case 1:
		return r.Runs[0].Info.RunID, nil
	}
	return "", fmt.Errorf("mlflow: experiment %s has %d runs tagged %v: delete all but one", exp, len(r.Runs), tags)
}

// CreateRun creates a run of experiment exp called name, started at
// start, with tags; it returns its id.
func (c *Client) CreateRun(ctx context.Context, exp, name string, start time.Time, tags map[string]string) (string, error) {
	var ts []Tag
	for _, k := range sortedKeys(tags) {
		ts = append(ts, Tag{Key: k, Value: tags[k]})
	}
	req := map[string]any{"experiment_id": exp, "run_name": name, "start_time": start.UnixMilli(), "tags": ts}
	var r struct {
		Run wireRun `json:"run"`
	}
	if err := c.do(ctx, http.MethodPost, "runs/create", req, &r); err != nil {
		return "", err
	}
	return r.Run.Info.RunID, nil
}

// UpdateRun sets a run's status (RUNNING, FINISHED, FAILED, KILLED) and,
// unless end is zero, its end time.
func (c *Client) UpdateRun(ctx context.Context, id, status string, end time.Time) error {
	req := map[string]any{"run_id": id, "status": status}
	if !end.IsZero() {
		req["end_time"] = end.UnixMilli()
	}
	return c.do(ctx, http.MethodPost, "runs/update", req, nil)
}

// Metric is one value of a metric at a step.
type Metric struct {
	Key       string `json:"key"`
	Value     Value  `json:"value"`
	Timestamp int64  `json:"timestamp"` // milliseconds since the epoch
	Step      int64  `json:"step"`
}

// Value is a metric's value; NaN and the infinities go on the wire as
// proto3 JSON spells them ("NaN", "Infinity", "-Infinity"), which MLflow
// stores as such.
type Value float64

// MarshalJSON implements json.Marshaler.
func (v Value) MarshalJSON() ([]byte, error) {
	f := float64(v)
	switch {
	case math.IsNaN(f):
		return []byte(`"NaN"`), nil
	case math.IsInf(f, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Infinity"`), nil
	}
	return json.Marshal(f)
}

// Param is one param of a run.
type Param struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Tag is one tag of a run.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// LogBatch logs metrics and params to run id in as many runs/log-batch
// requests as MLflow's limits need, metrics in the order given.
func (c *Client) LogBatch(ctx context.Context, id string, metrics []Metric, params []Param) error {
	for len(metrics) > 0 || len(params) > 0 {
		np := min(len(params), MaxParamsPerBatch)
		nm := min(len(metrics), MaxMetricsPerBatch, MaxEntitiesPerBatch-np)
		req := struct {
			RunID   string   `json:"run_id"`
			Metrics []Metric `json:"metrics,omitempty"`
			Params  []Param  `json:"params,omitempty"`
		}{id, metrics[:nm], params[:np]}
		if err := c.do(ctx, http.MethodPost, "runs/log-batch", req, nil); err != nil {
			return err
		}
		metrics, params = metrics[nm:], params[np:]
	}
	return nil
}

// ArtifactPath is where the artifact proxy keeps the artifacts of a run
// whose artifact_uri is uri ("mlflow-artifacts:/1/<run>/artifacts" or
// "mlflow-artifacts://host:port/1/<run>/artifacts"): "1/<run>/artifacts".
// It fails for a URI the proxy does not serve (a server started with
// --no-serve-artifacts hands out the store's own, s3://… or a path).
func ArtifactPath(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "mlflow-artifacts" {
		return "", fmt.Errorf("mlflow: artifact URI %q is not served by the tracking server's artifact proxy (start it with --serve-artifacts)", uri)
	}
	p := strings.Trim(u.Path, "/")
	if p == "" || strings.Contains(p, "..") {
		return "", fmt.Errorf("mlflow: artifact URI %q: no path", uri)
	}
	return p, nil
}

// UploadArtifact puts data as the artifact at path (slash-separated,
// relative) under the artifact root root (ArtifactPath) through the
// server's artifact proxy.
func (c *Client) UploadArtifact(ctx context.Context, root, path string, data []byte) error {
	if path == "" || strings.HasPrefix(path, "/") || strings.Contains(path, "..") {
		return fmt.Errorf("mlflow: artifact path %q: want a relative path", path)
	}
	var esc []string
	for _, s := range strings.Split(root+"/"+path, "/") {
		esc = append(esc, url.PathEscape(s))
	}
	target := c.base + "/api/2.0/mlflow-artifacts/artifacts/" + strings.Join(esc, "/")
	return c.send(ctx, http.MethodPut, "mlflow-artifacts/artifacts", target, "application/octet-stream", data, nil)
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}
