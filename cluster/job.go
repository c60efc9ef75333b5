package cluster

import (
	"encoding/json"
	"time"
)

// JobStatus is the state of a Ray job, as Ray's Job Submission API reports
// it (ray.job_submission.JobStatus).
type JobStatus string

// The states of a Ray job. A job starts PENDING (waiting for its resources
// and runtime environment), then RUNNING, and ends in one of the three
// terminal states.
const (
	StatusPending   JobStatus = "PENDING"
	StatusRunning   JobStatus = "RUNNING"
	StatusStopped   JobStatus = "STOPPED"
	StatusSucceeded JobStatus = "SUCCEEDED"
	StatusFailed    JobStatus = "FAILED"
)

// AllJobStatuses lists every JobStatus; it must be kept in sync with the
// constants above (a test checks it).
var AllJobStatuses = []JobStatus{StatusPending, StatusRunning, StatusStopped, StatusSucceeded, StatusFailed}

// Terminal reports whether the status can no longer change: STOPPED,
// SUCCEEDED or FAILED.
func (s JobStatus) Terminal() bool {
	switch s {
	case StatusStopped, StatusSucceeded, StatusFailed:
		return true
	}
	return false
}

// JobRequest is the body of a job submission (POST /api/jobs/). Zero
// resource fields are left out of the request, so Ray applies its defaults
// (no CPUs, GPUs, memory or custom resources reserved for the entrypoint).
type JobRequest struct {
	// Entrypoint is the shell command the job runs.
	Entrypoint string `json:"entrypoint"`
	// SubmissionID names the job; empty lets Ray choose one. Ray refuses a
	// second job with the same id (ErrJobExists).
	SubmissionID string `json:"submission_id,omitempty"`
	// RuntimeEnv sets up the job's environment; nil means none.
	RuntimeEnv *RuntimeEnv `json:"runtime_env,omitempty"`
	// Metadata is stored with the job and returned by Info and List.
	Metadata map[string]string `json:"metadata,omitempty"`
	// EntrypointNumCPUs, EntrypointNumGPUs and EntrypointResources are
	// reserved on the node for the entrypoint command while it runs; Ray
	// starts the job only on a node where they are free.
	EntrypointNumCPUs   float64            `json:"entrypoint_num_cpus,omitempty"`
	EntrypointNumGPUs   float64            `json:"entrypoint_num_gpus,omitempty"`
	EntrypointResources map[string]float64 `json:"entrypoint_resources,omitempty"`
	// EntrypointMemory is the memory in bytes reserved for the entrypoint.
	EntrypointMemory int64 `json:"entrypoint_memory,omitempty"`
	// SecretEnv names the RuntimeEnv.EnvVars whose values are secrets: the
	// client replaces those values with "[redacted]" in every error it
	// returns for this job. It is not sent to Ray.
	SecretEnv []string `json:"-"`
}

// RuntimeEnv is the part of Ray's runtime_env that thinkgen uses.
type RuntimeEnv struct {
	// EnvVars are set in the environment of the job's entrypoint.
	EnvVars map[string]string `json:"env_vars,omitempty"`
}

// secrets returns the values of the request's secret env vars.
func (r *JobRequest) secrets() []string {
	if r.RuntimeEnv == nil {
		return nil
	}
	var s []string
	for _, name := range r.SecretEnv {
		if v := r.RuntimeEnv.EnvVars[name]; v != "" {
			s = append(s, v)
		}
	}
	return s
}

// JobType says how a job was started: "SUBMISSION" for jobs of the Job
// Submission API, "DRIVER" for a driver script that called ray.init itself
// (those have no submission id and cannot be stopped, deleted or read
// through this API).
type JobType string

// The job types Ray reports.
const (
	TypeSubmission JobType = "SUBMISSION"
	TypeDriver     JobType = "DRIVER"
)

// Job is what Ray reports about a job (GET /api/jobs/{id}). The runtime_env
// Ray echoes back holds the env var values, secrets included, so it is
// deliberately not decoded: a Job can be logged as it is. Ray 2.60 does not
// echo the entrypoint resources either.
type Job struct {
	Type JobType `json:"type"`
	// SubmissionID is the id the job was submitted with.
	SubmissionID string `json:"submission_id"`
	// JobID is Ray's internal id of the driver, once it started.
	JobID      string    `json:"job_id"`
	Status     JobStatus `json:"status"`
	Entrypoint string    `json:"entrypoint"`
	// Message says more about the status; for a failed job it holds the
	// exit code and the last lines of the job's logs.
	Message string `json:"message"`
	// ErrorType classifies a failure, e.g. "JOB_ENTRYPOINT_COMMAND_ERROR".
	ErrorType string            `json:"error_type"`
	Metadata  map[string]string `json:"metadata"`
	// StartTime and EndTime are zero until set.
	StartTime time.Time `json:"-"`
	EndTime   time.Time `json:"-"`
	// DriverExitCode is the entrypoint's exit code; nil until it exited.
	DriverExitCode *int `json:"driver_exit_code"`
	// DriverNodeID is the node the entrypoint runs on; empty while PENDING.
	DriverNodeID string `json:"driver_node_id"`
}

// UnmarshalJSON decodes Ray's job details, with its times in Unix
// milliseconds.
func (j *Job) UnmarshalJSON(b []byte) error {
	type plain Job
	var w struct {
		*plain
		Start *int64 `json:"start_time"`
		End   *int64 `json:"end_time"`
	}
	w.plain = (*plain)(j)
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Start != nil {
		j.StartTime = time.UnixMilli(*w.Start)
	}
	if w.End != nil {
		j.EndTime = time.UnixMilli(*w.End)
	}
	return nil
}
