// Package cluster places workers on a cluster: a client of Ray's Job
// Submission API that runs each worker as a Ray job with its GPU and CPU
// requests, and the placer that keeps a run's workers running as such
// jobs. Its subpackage kuberay builds and follows the KubeRay RayJob that
// creates the Ray cluster itself on Kubernetes.
//
// # Ray jobs
//
// [Client] speaks the Job Submission API of a Ray dashboard
// (http://head:8265): [Client.Submit] (POST /api/jobs/), [Client.Info],
// [Client.List], [Client.Stop], [Client.Logs] and [Client.Delete]. Every
// request goes through go-retryablehttp: connection errors and 5xx answers
// are retried with exponential backoff, 4xx answers never; a failure is an
// [*Error] naming the operation, the job and the endpoint, with Ray's own
// message (the exception line of its traceback). [ErrNotFound] and
// [ErrJobExists] are matched with errors.Is. The values of a request's
// secret env vars ([JobRequest.SecretEnv]) never appear in an error, and
// [Job] does not decode the runtime_env Ray echoes back, so jobs can be
// logged.
//
// # Placing workers
//
// A [Placer] runs the worker processes of a run, one Ray job each, with the
// entrypoint
//
//	<command> worker --role <role> --controller <url>
//
// and the resources of the role from the config ([Groups] reads
// cluster.workers and cluster.rollout/reward/learner: cpus →
// entrypoint_num_cpus, gpus → entrypoint_num_gpus, memory →
// entrypoint_memory, custom → entrypoint_resources). The caller:
//
//  1. builds it with [NewPlacer] (a [Submitter] — a [*Client] — the groups,
//     and the run name, controller URL, worker token and polling options);
//  2. calls [Placer.Start], which submits every worker as generation 1, or
//     takes over the jobs an earlier placer of the same run left (submission
//     ids are deterministic: [JobID]);
//  3. runs [Placer.Follow], which polls the jobs, reports each change as an
//     [Event], and resubmits a worker whose job ended FAILED, or STOPPED
//     without Stop, as the next generation, up to MaxResubmits times;
//  4. calls [Placer.Stop] to stop every worker and wait for their jobs to
//     end; Follow then returns.
//
// The worker token never passes through Ray (which shows a job's
// runtime_env and entrypoint to whoever can read its job info): the job
// carries only the path of the token's file on the Ray nodes
// (PlacerOptions.TokenFile, in the variable named by TokenFileEnv), and the
// placer refuses Env variables whose names say they hold secrets.
package cluster
