// Package orchestrator is the controller of a SepGRPO run: it turns the
// phase schedule (package schedule) into steps, splits each step into
// rollout, reward and learn tasks, hands them to workers (goroutines in
// embedded mode, processes over HTTP in distributed mode), and commits a
// step in the run manifest only when every output of it is written and
// verified, so that a killed run resumes from its last committed step with
// the same result. What it writes of a run besides the steps' shards
// (run.json, the metrics shard, TensorBoard event files) is laid out by
// package storage/runs.
package orchestrator
