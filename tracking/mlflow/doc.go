// Package mlflow reports a training run to an MLflow tracking server
// through MLflow's REST API (/api/2.0/mlflow/...), with no MLflow library:
// the experiment is looked up by name and created when missing, one MLflow
// run stands for one thinkgen run, and runs/log-batch carries its params
// (the resolved configuration, flattened) and every committed step's
// metrics; files (the curves, the held-out tables) go through the
// server's artifact proxy (PUT /api/2.0/mlflow-artifacts/artifacts/...,
// which `mlflow server` serves by default since MLflow 2).
//
// A [Tracker] identifies its MLflow run by two tags, thinkgen.run (the
// run's name) and thinkgen.started (when the run was created, from its
// run.json), so that a resumed run finds and continues the same MLflow
// run. It asks the server for the last step the run holds and logs only
// later steps: no step is logged twice, and steps a kill left unlogged
// are logged when the run resumes (the caller hands them over again).
//
// Tracking never stops or slows training: calls run on a goroutine of the
// tracker, each retried by the project's retrying HTTP client
// (internal/retryhttp, go-retryablehttp) on connection errors, 429 and
// 5xx; a call that still fails is dropped, with a warning that counts the
// dropped calls so far, and a step whose metrics were dropped is sent
// again with the next step's. Only [Start] fails outright, so that a
// wrong tracking.mlflow is reported before a run does any work.
package mlflow
