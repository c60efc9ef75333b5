package sweep

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/thinkgen/thinkgen/cluster/kuberay"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/kubetest"
	"github.com/thinkgen/thinkgen/storage"
)

// TestKubeRayOneRayJobPerTrial runs a sweep of three trials, two at a
// time, as KubeRay RayJobs against a real kube-apiserver (envtest; no
// operator reconciles them): a RayJob per running trial with the trial's
// configuration, a third once one ends, and none left running after an
// interrupt.
func TestKubeRayOneRayJobPerTrial(t *testing.T) {
	kc := kubetest.Start(t)
	client, err := kuberay.NewClient(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := parse(t, "set:\n  storage.uri: s3://runs/sweeps\n  cluster.image: registry.example/thinkgen:1.0\n  cluster.secret: thinkgen\n"+
		"  cluster.workers.rollout: 1\n  cluster.workers.reward: 1\n  cluster.workers.learner: 1\n"+
		"parallel: 2\neval_rows: 7\nspace:\n  grpo.lr: [1.0e-4, 2.0e-4, 3.0e-4]\n")
	if _, err := s.Resolve("sweep.yaml", nil); err != nil {
		t.Fatal(err)
	}
	trials := s.Expand()
	// The sweep's state in a local store (the trials' s3 store is never
	// reached: nothing runs them).
	st, err := storage.Open(ctx, config.Storage{URI: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	state, _, err := LoadState(ctx, st, s, trials)
	if err != nil {
		t.Fatal(err)
	}
	k := &KubeRay{Client: client, Namespace: "default", EvalRows: s.EvalRows,
		Config: func(tr Trial) (*config.Config, error) { return s.TrialConfig(tr, nil) }}
	r := &Runner{Spec: s, Store: st, Launcher: k, LogDir: t.TempDir(), PollInterval: 200 * time.Millisecond, TmpDir: t.TempDir()}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, state) }()

	jobs := client.Ray.RayV1().RayJobs("default")
	waitFor := func(what string, ok func([]rayv1.RayJob) bool) []rayv1.RayJob {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			l, err := jobs.List(ctx, metav1.ListOptions{})
			if err == nil && ok(l.Items) {
				return l.Items
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: %v %v", what, err, l)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	names := func(js []rayv1.RayJob) string {
		var n []string
		for _, j := range js {
			n = append(n, j.Name)
		}
		return strings.Join(n, " ")
	}
	got := waitFor("two RayJobs", func(js []rayv1.RayJob) bool { return len(js) == 2 })
	if names(got) != "s-t001 s-t002" {
		t.Fatalf("RayJobs %s, want s-t001 s-t002", names(got))
	}
	for i, j := range got {
		if !strings.Contains(j.Spec.Entrypoint, "--run "+j.Name) || !strings.Contains(j.Spec.Entrypoint, "--eval-rows 7") {
			t.Errorf("%s entrypoint %q", j.Name, j.Spec.Entrypoint)
		}
		cm, err := client.Kube.CoreV1().ConfigMaps("default").Get(ctx, kuberay.ConfigMapName(j.Name), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Parse(j.Name, []byte(cm.Data["config.yaml"]))
		if err != nil {
			t.Fatal(err)
		}
		if want := []float64{1e-4, 2e-4}[i]; cfg.GRPO.LR != want || cfg.Run.Name != j.Name {
			t.Errorf("%s: the ConfigMap's grpo.lr %g, run.name %q; want %g", j.Name, cfg.GRPO.LR, cfg.Run.Name, want)
		}
	}
	time.Sleep(time.Second)
	if l, _ := jobs.List(ctx, metav1.ListOptions{}); len(l.Items) != 2 {
		t.Fatalf("%d RayJobs with parallel 2", len(l.Items))
	}

	// The first trial's job ends (as KubeRay would report it): the third
	// trial's RayJob is created. The first has no run in the store, so it
	// fails reading its objective.
	j1, err := jobs.Get(ctx, "s-t001", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j1.Status.JobStatus, j1.Status.JobDeploymentStatus = rayv1.JobStatusSucceeded, rayv1.JobDeploymentStatusComplete
	if _, err := jobs.UpdateStatus(ctx, j1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("the third RayJob", func(js []rayv1.RayJob) bool { return strings.Contains(names(js), "s-t003") })

	// An interrupt deletes the running trials' RayJobs and ConfigMaps.
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after the interrupt: %v", err)
	}
	l, err := jobs.List(context.Background(), metav1.ListOptions{})
	if err != nil || names(l.Items) != "s-t001" {
		t.Errorf("RayJobs left: %s (%v); want only the ended s-t001", names(l.Items), err)
	}
	if _, err := client.Kube.CoreV1().ConfigMaps("default").Get(context.Background(), kuberay.ConfigMapName("s-t002"), metav1.GetOptions{}); err == nil {
		t.Error("the interrupted trial's ConfigMap is still there")
	}
	want := []Status{StatusFailed, StatusPending, StatusPending}
	for i, tr := range state.Trials {
		if tr.Status != want[i] {
			t.Errorf("%s: %s (%s), want %s", tr.Name, tr.Status, tr.Error, want[i])
		}
	}
	if !strings.Contains(state.Trials[0].Error, "run s-t001") {
		t.Errorf("trial 1's error: %s", state.Trials[0].Error)
	}
}
