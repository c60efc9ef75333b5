package sweep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/thinkgen/thinkgen/cluster"
)

// Ray runs each trial as a Ray job (Job Submission API) whose entrypoint
// is
//
//	cd <Workdir> && exec <Command> train …
//
// The nodes must reach the trial's store at the same URI (a shared
// directory or S3) and, for relative paths, have the base config and the
// run's base checkpoint under Workdir.
type Ray struct {
	Client *cluster.Client
	// Command is thinkgen on the Ray nodes.
	Command string
	// Workdir is the entrypoint's directory on the nodes.
	Workdir string
	// Env is set in the job's runtime_env (not secret: Ray shows it).
	Env map[string]string
	// CPUs and GPUs are reserved for each job's entrypoint.
	CPUs, GPUs float64
	// PollInterval is how often a job's status is read; zero means 2 s.
	PollInterval time.Duration
}

var _ Launcher = (*Ray)(nil)

// JobID is the submission id of a trial's attempt:
// "thinkgen-sweep-<trial>-a<attempt>".
func JobID(trial string, attempt int) string {
	return fmt.Sprintf("thinkgen-sweep-%s-a%d", trial, attempt)
}

// Start submits the trial's job, or adopts the job of its last attempt if
// that job is still live (a sweep killed without ending its jobs).
func (r *Ray) Start(ctx context.Context, t *TrialState, la Launch) (Handle, error) {
	h := &rayHandle{r: r, logPath: la.Log}
	args := la.Args
	if t.Job != "" {
		if j, err := r.Client.Info(ctx, t.Job); err == nil && !j.Status.Terminal() {
			h.id = t.Job
			t.Attempts-- // the attempt goes on
			return h, nil
		}
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = cluster.ShellQuote(a)
	}
	entry := fmt.Sprintf("cd %s && exec %s %s", cluster.ShellQuote(r.Workdir), cluster.ShellQuote(r.Command), strings.Join(quoted, " "))
	req := cluster.JobRequest{
		Entrypoint:        entry,
		SubmissionID:      JobID(t.Name, t.Attempts),
		RuntimeEnv:        &cluster.RuntimeEnv{EnvVars: r.Env},
		Metadata:          map[string]string{"thinkgen_trial": t.Name},
		EntrypointNumCPUs: r.CPUs,
		EntrypointNumGPUs: r.GPUs,
	}
	id, err := r.Client.Submit(ctx, req)
	if errors.Is(err, cluster.ErrJobExists) {
		id, err = req.SubmissionID, nil // submitted by an earlier sweep that died before recording it
	}
	if err != nil {
		return nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	t.Job, h.id = id, id
	return h, nil
}

type rayHandle struct {
	r       *Ray
	id      string
	logPath string
}

// Wait polls the job until it ends, then writes its logs to the log file.
// When ctx is done, the job is stopped.
func (h *rayHandle) Wait(ctx context.Context) error {
	every := h.r.PollInterval
	if every <= 0 {
		every = 2 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		j, err := h.r.Client.Info(context.WithoutCancel(ctx), h.id)
		if err == nil && j.Status.Terminal() {
			h.saveLogs(context.WithoutCancel(ctx))
			if j.Status == cluster.StatusSucceeded {
				return nil
			}
			msg := j.Message
			if i := strings.IndexByte(msg, '\n'); i >= 0 {
				msg = msg[:i]
			}
			return fmt.Errorf("ray job %s %s: %s", h.id, j.Status, msg)
		}
		select {
		case <-ctx.Done():
			h.Stop(context.WithoutCancel(ctx))
			ctx = context.WithoutCancel(ctx)
		case <-tick.C:
		}
	}
}

// Stop asks Ray to stop the job.
func (h *rayHandle) Stop(ctx context.Context) error {
	_, err := h.r.Client.Stop(ctx, h.id)
	return err
}

func (h *rayHandle) saveLogs(ctx context.Context) {
	logs, err := h.r.Client.Logs(ctx, h.id)
	if err != nil {
		logs = fmt.Sprintf("(logs of ray job %s: %v)\n", h.id, err)
	}
	f, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "--- ray job %s\n%s", h.id, logs)
}
