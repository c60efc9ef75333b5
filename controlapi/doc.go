// Package controlapi is the controller ↔ worker protocol of distributed
// mode (docs/sepgrpo.md, "Where the tasks run"): HTTP+JSON over a [queue.Queue].
//
// # Endpoints
//
// All take and return JSON; every request, /metrics included, must carry
// "Authorization: Bearer <token>" (compared in constant time; a missing or
// wrong token gets 401 and changes nothing):
//
//	POST /v1/register   {name, roles, capacity}            → {worker_id, lease_ttl_ms}
//	POST /v1/lease      {worker_id, timeout_ms}            → {key, task, deadline, lease_ttl_ms} | 204 when none came
//	POST /v1/heartbeat  {worker_id, key, attempt}          → {deadline}
//	POST /v1/complete   {worker_id, key, attempt, result}  → {}
//	POST /v1/fail       {worker_id, key, attempt, error, fatal} → {}
//	GET  /v1/status                                        → queue.Status
//	GET  /metrics       Prometheus text format
//
// Errors are {"error", "code", "field"} with 400 (bad JSON or a bad field,
// named), 401, 404 (unknown worker or task), 409 (not the holder, stale
// attempt, expired lease, canceled, at capacity), 413 (body too large).
// /metrics is authenticated too: in a Prometheus scrape config, set
// authorization.credentials_file to the token file.
//
// # The worker's side
//
// [Client] makes every call through go-retryablehttp (connection errors and
// 5xx are retried with backoff, 4xx are not) and turns error replies back
// into the queue's sentinel errors. [Serve] is a worker's whole loop:
// register, lease, heartbeat while the handler runs, complete or fail, and
// register again when the controller no longer knows the worker (it dropped
// it, or restarted). Serve fences its tasks: a task's ctx ends a margin
// before its lease's deadline unless a heartbeat extended it.
//
// # Tokens
//
// [LoadToken] reads the token from a file or from $THINKGEN_TOKEN /
// $THINKGEN_TOKEN_FILE; [NewServer] refuses to run without one unless
// ServerOptions.InsecureLocal is set, and then [Server.Serve] accepts only
// a loopback listener. Tokens never appear in logs or errors.
package controlapi
