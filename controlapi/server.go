package controlapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/thinkgen/thinkgen/internal/bearer"
	"github.com/thinkgen/thinkgen/internal/httpserve"
	"github.com/thinkgen/thinkgen/queue"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Token is the bearer token every request must carry. Empty is refused
	// unless InsecureLocal is set.
	Token string
	// InsecureLocal accepts requests without a token when Token is empty;
	// Serve then listens only on loopback addresses.
	InsecureLocal bool
	// MaxLeaseWait caps a lease request's timeout_ms; 0 means 60 s.
	MaxLeaseWait time.Duration
	// MaxBodyBytes caps a request body; 0 means 8 MiB.
	MaxBodyBytes int64
	// Logger receives one line per refused or failed request (method, path,
	// status, worker; never a header); nil discards them.
	Logger *slog.Logger
}

// Server serves the API over a queue. It is an http.Handler.
type Server struct {
	q    *queue.Queue
	opts ServerOptions
	auth bearer.Verifier
	mux  *http.ServeMux
	log  *slog.Logger

	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	leaseDur *prometheus.HistogramVec
	train    *Training
}

// NewServer returns a server over q. It fails without a token unless
// o.InsecureLocal is set.
func NewServer(q *queue.Queue, o ServerOptions) (*Server, error) {
	if o.Token == "" && !o.InsecureLocal {
		return nil, ErrNoToken
	}
	if o.Token != "" {
		if err := checkToken(o.Token); err != nil {
			return nil, fmt.Errorf("controlapi server: %w", err)
		}
	}
	if o.MaxLeaseWait <= 0 {
		o.MaxLeaseWait = 60 * time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 8 << 20
	}
	s := &Server{q: q, opts: o, mux: http.NewServeMux(), log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.auth = bearer.NewVerifier(o.Token)
	s.initMetrics()
	s.mux.HandleFunc("POST "+PathRegister, s.register)
	s.mux.HandleFunc("POST "+PathLease, s.lease)
	s.mux.HandleFunc("POST "+PathHeartbeat, s.heartbeat)
	s.mux.HandleFunc("POST "+PathComplete, s.complete)
	s.mux.HandleFunc("POST "+PathFail, s.fail)
	s.mux.HandleFunc("GET "+PathStatus, s.status)
	s.mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return s, nil
}

func (s *Server) initMetrics() {
	s.reg = prometheus.NewRegistry()
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thinkgen_controlapi_requests_total",
		Help: "Requests to the controller API, by endpoint and HTTP status code.",
	}, []string{"endpoint", "code"})
	s.leaseDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "thinkgen_controlapi_lease_seconds",
		Help:    "Time a lease request took in the controller (long-poll wait included), by outcome: task or none.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12), // 100 µs .. ~7 min
	}, []string{"outcome"})
	s.reg.MustRegister(s.requests, s.leaseDur)
	for _, st := range queue.AllStates {
		s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "thinkgen_queue_tasks",
			Help:        "Tasks in the queue, by state.",
			ConstLabels: prometheus.Labels{"state": string(st)},
		}, func() float64 { t, _ := s.q.Counts(); return float64(t[st]) }))
	}
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "thinkgen_queue_workers",
		Help: "Registered workers.",
	}, func() float64 { _, w := s.q.Counts(); return float64(w) }))
	s.train = NewTraining(s.reg)
}

// statusWriter records the status code of a reply.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// statusClientClosed is recorded for a lease whose worker went away while
// it waited (nginx's "client closed request").
const statusClientClosed = 499

var endpoints = map[string]bool{PathRegister: true, PathLease: true, PathHeartbeat: true,
	PathComplete: true, PathFail: true, PathStatus: true, PathMetrics: true}

// ServeHTTP authenticates the request and dispatches it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	endpoint := r.URL.Path
	if !endpoints[endpoint] {
		endpoint = "other"
	}
	defer func() { s.requests.WithLabelValues(endpoint, strconv.Itoa(sw.code)).Inc() }()
	if !s.auth.Authorized(r) {
		s.log.Warn("controlapi: unauthorized request", "method", r.Method, "path", endpoint, "remote", r.RemoteAddr)
		sw.Header().Set("WWW-Authenticate", `Bearer realm="thinkgen"`)
		writeError(sw, http.StatusUnauthorized, errorResponse{Error: "missing or wrong bearer token", Code: "unauthorized"})
		return
	}
	r.Body = http.MaxBytesReader(sw, r.Body, s.opts.MaxBodyBytes)
	s.mux.ServeHTTP(sw, r)
}

// Serve serves the API on ln until ctx ends, then shuts down (waiting up
// to 5 s for requests in flight). Without a token it accepts only a
// loopback listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.opts.Token == "" {
		if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			return fmt.Errorf("controlapi: without a bearer token (--insecure-local) the controller listens only on loopback, not %s", ln.Addr())
		}
	}
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      s.opts.MaxLeaseWait + time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("controlapi: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-errc
	return ctx.Err()
}

// decode reads a JSON body into v; on failure it replies 400 (or 413) naming
// the field and returns false.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	err := httpserve.DecodeJSON(r.Body, v)
	if err == nil {
		return true
	}
	resp := errorResponse{Code: "bad_request"}
	var (
		mbe *http.MaxBytesError
		ute *json.UnmarshalTypeError
		se  *json.SyntaxError
	)
	status := http.StatusBadRequest
	switch {
	case errors.As(err, &mbe):
		status, resp.Error = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	case errors.As(err, &ute):
		resp.Field = ute.Field
		resp.Error = fmt.Sprintf("field %s: a JSON %s, want %s", ute.Field, ute.Value, ute.Type)
	case errors.As(err, &se):
		resp.Error = fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.Is(err, io.EOF):
		resp.Error = "empty request body, want a JSON object"
	default:
		if f, ok := httpserve.UnknownField(err); ok {
			resp.Field = f
			resp.Error = fmt.Sprintf("unknown field %q", f)
		} else {
			resp.Error = "bad JSON: " + err.Error()
		}
	}
	s.log.Info("controlapi: bad request", "path", r.URL.Path, "status", status, "error", resp.Error)
	writeError(w, status, resp)
	return false
}

// badField replies 400 for a bad field.
func (s *Server) badField(w http.ResponseWriter, r *http.Request, field, msg string) {
	s.log.Info("controlapi: bad request", "path", r.URL.Path, "field", field, "error", msg)
	writeError(w, http.StatusBadRequest, errorResponse{Error: field + ": " + msg, Code: "invalid", Field: field})
}

// checkIDs validates the worker_id, key and attempt fields common to the
// calls of a lease holder.
func (s *Server) checkIDs(w http.ResponseWriter, r *http.Request, worker, key string, attempt int) bool {
	if !validWorkerID(worker) {
		s.badField(w, r, "worker_id", "want the ID /v1/register returned")
		return false
	}
	if err := queue.ValidateKey(key); err != nil {
		s.badField(w, r, "key", err.Error())
		return false
	}
	if attempt < 1 {
		s.badField(w, r, "attempt", fmt.Sprintf("%d, want >= 1", attempt))
		return false
	}
	return true
}

func validWorkerID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// reply writes v as JSON, or the error's status and code.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		status, code := classify(err)
		lvl := slog.LevelInfo
		if status >= 500 {
			lvl = slog.LevelError
		}
		s.log.Log(r.Context(), lvl, "controlapi: request refused", "path", r.URL.Path, "status", status, "error", err.Error())
		writeError(w, status, errorResponse{Error: err.Error(), Code: code})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, e errorResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if !s.decode(w, r, &req) {
		return
	}
	id, err := s.q.Register(req.Name, req.Roles, req.Capacity)
	s.reply(w, r, registerResponse{WorkerID: id, LeaseTTLMS: s.q.LeaseTTL().Milliseconds()}, err)
}

func (s *Server) lease(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req leaseRequest
	if !s.decode(w, r, &req) {
		return
	}
	if !validWorkerID(req.WorkerID) {
		s.badField(w, r, "worker_id", "want the ID /v1/register returned")
		return
	}
	if req.TimeoutMS < 0 {
		s.badField(w, r, "timeout_ms", fmt.Sprintf("%d, want >= 0", req.TimeoutMS))
		return
	}
	wait := min(time.Duration(req.TimeoutMS)*time.Millisecond, s.opts.MaxLeaseWait)
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	t, deadline, err := s.q.Lease(ctx, req.WorkerID)
	if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
		s.leaseDur.WithLabelValues("none").Observe(time.Since(start).Seconds())
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil && r.Context().Err() != nil {
		// The worker went away while it waited; a task granted meanwhile
		// went back to the queue at the same attempt.
		w.WriteHeader(statusClientClosed)
		return
	}
	if err == nil {
		s.leaseDur.WithLabelValues("task").Observe(time.Since(start).Seconds())
	}
	s.reply(w, r, leaseResponse{Key: queue.Key(t), Task: t, Deadline: deadline, LeaseTTLMS: s.q.LeaseTTL().Milliseconds()}, err)
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	var req heartbeatRequest
	if !s.decode(w, r, &req) || !s.checkIDs(w, r, req.WorkerID, req.Key, req.Attempt) {
		return
	}
	d, err := s.q.Heartbeat(req.WorkerID, req.Key, req.Attempt)
	s.reply(w, r, heartbeatResponse{Deadline: d}, err)
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request) {
	var req completeRequest
	if !s.decode(w, r, &req) || !s.checkIDs(w, r, req.WorkerID, req.Key, req.Attempt) {
		return
	}
	err := s.q.Complete(req.WorkerID, req.Key, req.Attempt, req.Result)
	s.reply(w, r, struct{}{}, err)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request) {
	var req failRequest
	if !s.decode(w, r, &req) || !s.checkIDs(w, r, req.WorkerID, req.Key, req.Attempt) {
		return
	}
	err := s.q.Fail(req.WorkerID, req.Key, req.Attempt, req.Error, req.Fatal)
	s.reply(w, r, struct{}{}, err)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, s.q.Status(), nil)
}
