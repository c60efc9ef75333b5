package sweep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/thinkgen/thinkgen/cluster/kuberay"
	"github.com/thinkgen/thinkgen/config"
)

// KubeRay runs each trial as a thinkgen launch on Kubernetes: a KubeRay
// RayJob named after the trial (kuberay.Build: the controller on the Ray
// head, rollout, learner and reward worker groups) with the trial's
// resolved configuration in its ConfigMap. The configuration must be
// launchable (cluster.image, cluster.secret, an s3:// store, workers of
// every role); trial names must be valid RayJob names.
type KubeRay struct {
	Client *kuberay.Client
	// Namespace overrides cluster.namespace when not empty.
	Namespace string
	// Config returns a trial's resolved run configuration
	// (Spec.TrialConfig).
	Config func(Trial) (*config.Config, error)
	// EvalRows is each controller's --eval-rows.
	EvalRows int
}

var _ Launcher = (*KubeRay)(nil)

// Objects builds the RayJob and ConfigMap of a trial.
func (k *KubeRay) Objects(t Trial, resume bool) (*kuberay.Objects, error) {
	cfg, err := k.Config(t)
	if err != nil {
		return nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	objs, err := kuberay.Build(cfg, kuberay.Options{Run: t.Name, Namespace: k.Namespace, Resume: resume, EvalRows: k.EvalRows})
	if err != nil {
		return nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	return objs, nil
}

// Start creates the trial's RayJob. A RayJob of the trial's name that is
// still running (left by a sweep killed outright) is adopted; an ended one
// is replaced.
func (k *KubeRay) Start(ctx context.Context, t *TrialState, la Launch) (Handle, error) {
	objs, err := k.Objects(t.Trial, la.Resume)
	if err != nil {
		return nil, err
	}
	ns := objs.RayJob.Namespace
	h := &kubeHandle{k: k, ns: ns, run: t.Name, log: la.Log}
	how, err := k.Client.Apply(ctx, objs, false)
	if how == kuberay.Unchanged || errors.Is(err, kuberay.ErrChanged) {
		st, serr := k.Client.Status(ctx, ns, t.Name)
		if serr == nil && !st.Terminal() {
			h.printf("adopted the running RayJob %s/%s", ns, t.Name)
			return h, nil
		}
		if err = k.Client.Stop(ctx, ns, t.Name); err == nil {
			_, err = k.Client.Apply(ctx, objs, false)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("trial %s: %w", t.Name, err)
	}
	h.printf("created RayJob %s/%s (thinkgen launch logs --run %s follows the controller)", ns, t.Name, t.Name)
	return h, nil
}

type kubeHandle struct {
	k            *KubeRay
	ns, run, log string
}

// Wait follows the RayJob until it ends and returns nil if its job
// succeeded; each status change is appended to the log file. When ctx is
// done, the RayJob is deleted.
func (h *kubeHandle) Wait(ctx context.Context) error {
	st, err := h.k.Client.Follow(ctx, h.ns, h.run, func(s kuberay.Status) { h.printf("%s", s) })
	if ctx.Err() != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		h.Stop(sctx)
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	if st.Failed() {
		return fmt.Errorf("rayjob %s/%s: %s", h.ns, h.run, st)
	}
	return nil
}

// Stop deletes the RayJob and its ConfigMap (KubeRay deletes the Ray
// cluster); the run's committed steps stay in the store.
func (h *kubeHandle) Stop(ctx context.Context) error {
	err := h.k.Client.Stop(ctx, h.ns, h.run)
	if errors.Is(err, kuberay.ErrNotFound) {
		return nil
	}
	return err
}

func (h *kubeHandle) printf(format string, args ...any) {
	f, err := os.OpenFile(h.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}
