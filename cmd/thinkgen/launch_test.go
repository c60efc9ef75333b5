package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/thinkgen/thinkgen/cluster/kuberay"
	"github.com/thinkgen/thinkgen/internal/kubetest"
)

var launchArgs = []string{
	"--store", "s3://runs/thinkgen",
	"--set", "cluster.image=registry.example/thinkgen:1.0",
	"--set", "cluster.workers.rollout=2", "--set", "cluster.workers.reward=1", "--set", "cluster.workers.learner=1",
	"--set", "cluster.rollout.gpus=1", "--set", "cluster.learner.gpus=1",
}

func TestLaunchDryRun(t *testing.T) {
	const access, secret, token = "AKIADRYRUNACCESS", "dry-run-secret-key-value", "dry-run-token-value"
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("THINKGEN_TOKEN", token)
	t.Setenv("KUBECONFIG", "/nonexistent/kubeconfig") // --dry-run must not need a cluster
	code, out, errOut := runCLI(t, append([]string{"launch", "--dry-run", "--run", "dry-1", "--namespace", "ml"}, launchArgs...)...)
	if code != 0 {
		t.Fatalf("launch --dry-run: exit %d: %s", code, errOut)
	}
	for _, leak := range []string{access, secret, token} {
		if strings.Contains(out, leak) {
			t.Errorf("--dry-run output contains the credential %q", leak)
		}
	}
	docs := strings.Split(out, "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("%d YAML documents, want ConfigMap and RayJob:\n%s", len(docs), out)
	}
	var job rayv1.RayJob
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &job); err != nil {
		t.Fatalf("RayJob document does not parse: %v", err)
	}
	if job.Name != "dry-1" || job.Namespace != "ml" || len(job.Spec.RayClusterSpec.WorkerGroupSpecs) != 3 {
		t.Errorf("RayJob %s/%s with %d worker groups", job.Namespace, job.Name, len(job.Spec.RayClusterSpec.WorkerGroupSpecs))
	}
	if !strings.Contains(out, "secretKeyRef:") {
		t.Errorf("--dry-run output has no secretKeyRef")
	}
	// The token is a mounted file: no env var of any pod carries it.
	pods := []corev1.PodSpec{job.Spec.SubmitterPodTemplate.Spec, job.Spec.RayClusterSpec.HeadGroupSpec.Template.Spec}
	for _, g := range job.Spec.RayClusterSpec.WorkerGroupSpecs {
		pods = append(pods, g.Template.Spec)
	}
	for _, p := range pods {
		for _, c := range p.Containers {
			for _, e := range c.Env {
				if e.Name == "THINKGEN_TOKEN" || e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Key == kuberay.SecretKeyToken {
					t.Errorf("container %s: env %s carries the token", c.Name, e.Name)
				}
			}
		}
	}

	// Two learner ranks: a learner group of two pods, and the controller
	// serves their rendezvous store behind the head's Service.
	code, out, errOut = runCLI(t, append(append([]string{"launch", "--dry-run", "--run", "dry-1"}, launchArgs...), "--set", "cluster.workers.learner=2")...)
	if code != 0 {
		t.Fatalf("launch --dry-run with 2 learners: exit %d: %s", code, errOut)
	}
	if want := "--rendezvous dry-1-head-svc:29500"; !strings.Contains(out, want) {
		t.Errorf("launch --dry-run with 2 learners: the entrypoint lacks %q", want)
	}
	var two rayv1.RayJob
	if err := yaml.UnmarshalStrict([]byte(strings.Split(out, "\n---\n")[1]), &two); err != nil {
		t.Fatalf("RayJob document does not parse: %v", err)
	}
	for _, g := range two.Spec.RayClusterSpec.WorkerGroupSpecs {
		if g.GroupName == "learner" && (g.Replicas == nil || *g.Replicas != 2) {
			t.Errorf("launch --dry-run with 2 learners: learner group of %v replicas, want 2", g.Replicas)
		}
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"launch", "--dry-run", "--run", "dry-1", "--set", "cluster.image=x"}, "storage.uri"},
		{append([]string{"launch", "--dry-run", "--run", "Dry_1"}, launchArgs...), "run name"},
		{[]string{"launch", "status"}, "--run is required"},
		{[]string{"launch", "restart", "--run", "x"}, "unknown launch subcommand"},
	}
	for _, b := range bad {
		if code, _, errOut := runCLI(t, b.args...); code != 2 || !strings.Contains(errOut, b.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 naming %q", b.args, code, errOut, b.want)
		}
	}
}

// TestLaunchAPIServer runs launch, status and stop against a real
// kube-apiserver (envtest) through --kubeconfig.
func TestLaunchAPIServer(t *testing.T) {
	kubelet := kubetest.NewKubelet(t) // envtest runs no kubelet: a stand-in serves the pod logs
	kc := kubetest.Start(t, kubelet.Option())
	c, err := kuberay.NewClient(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"launch", "--kubeconfig", kc.Kubeconfig, "--run", "cli-1", "--follow=false"}, launchArgs...)
	if code, out, errOut := runCLI(t, args...); code != 0 || !strings.Contains(out, "RayJob default/cli-1 created") {
		t.Fatalf("launch: exit %d: %s %s", code, out, errOut)
	}
	ctx := context.Background()
	job, err := c.Ray.RayV1().RayJobs("default").Get(ctx, "cli-1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the RayJob is not there: %v", err)
	}
	job.Status.JobStatus, job.Status.JobDeploymentStatus = rayv1.JobStatusFailed, rayv1.JobDeploymentStatusFailed
	job.Status.Reason, job.Status.Message = rayv1.AppFailed, "controller exited 1"
	if _, err := c.Ray.RayV1().RayJobs("default").UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "launch", "status", "--run", "cli-1", "--kubeconfig", kc.Kubeconfig)
	if want := "run cli-1: job FAILED, deployment Failed: AppFailed controller exited 1"; code != 0 || strings.TrimSpace(out) != want {
		t.Errorf("launch status: exit %d, %q %s; want %q", code, out, errOut, want)
	}
	// launch logs reads a worker's log through the API server.
	kubelet.Register(ctx, t, c.Kube, "node-1")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "cli-1-rollout-0", Namespace: "default", Labels: map[string]string{kuberay.LabelRun: "cli-1", kuberay.LabelRole: "rollout"}},
		Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "ray-worker", Image: "x"}}},
	}
	if _, err := c.Kube.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubelet.Logs("default", "cli-1-rollout-0", "ray-worker", func(w http.ResponseWriter, q url.Values) {
		fmt.Fprintf(w, "worker rollout: step 3 (follow=%s)\n", q.Get("follow"))
	})
	code, out, errOut = runCLI(t, "launch", "logs", "--run", "cli-1", "--role", "rollout", "--follow", "--kubeconfig", kc.Kubeconfig)
	if want := "worker rollout: step 3 (follow=true)\n"; code != 0 || out != want {
		t.Errorf("launch logs --role rollout --follow: exit %d, %q %s; want %q", code, out, errOut, want)
	}
	// Launching again with the same configuration is a no-op that prints the run's state …
	code, out, errOut = runCLI(t, args...)
	if code != 0 || !strings.Contains(out, "already launched with this configuration; nothing changed") || !strings.Contains(out, "job FAILED") {
		t.Errorf("second launch: exit %d, %q %s; want exit 0, nothing changed and the status", code, out, errOut)
	}
	// … another configuration is refused, naming the keys, unless --replace.
	changed := append(append([]string(nil), args...), "--set", "cluster.rollout.gpus=2", "--set", "grpo.group=4")
	if code, _, errOut := runCLI(t, changed...); code != 1 || !strings.Contains(errOut, "cluster.rollout.gpus, grpo.group differ") || !strings.Contains(errOut, "--replace") {
		t.Errorf("launch with another configuration: exit %d, %s; want exit 1 naming the keys", code, errOut)
	}
	if code, out, errOut := runCLI(t, append(changed, "--replace")...); code != 0 || !strings.Contains(out, "RayJob default/cli-1 replaced") {
		t.Errorf("launch --replace: exit %d, %q %s", code, out, errOut)
	}
	if job, err := c.Ray.RayV1().RayJobs("default").Get(ctx, "cli-1", metav1.GetOptions{}); err != nil || job.Spec.RayClusterSpec.WorkerGroupSpecs[0].Template.Spec.Containers[0].Resources.Limits.Name("nvidia.com/gpu", "").Value() != 2 {
		t.Errorf("after --replace the rollout group does not have 2 GPUs: %v", err)
	}
	if code, _, errOut := runCLI(t, "launch", "stop", "--run", "cli-1", "--kubeconfig", kc.Kubeconfig); code != 0 {
		t.Fatalf("launch stop: exit %d: %s", code, errOut)
	}
	if _, err := c.Ray.RayV1().RayJobs("default").Get(ctx, "cli-1", metav1.GetOptions{}); err == nil {
		t.Errorf("RayJob still there after launch stop")
	}
	var cms corev1.ConfigMapList
	if l, err := c.Kube.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{LabelSelector: kuberay.LabelRun + "=cli-1"}); err == nil {
		cms = *l
	}
	if len(cms.Items) != 0 {
		t.Errorf("ConfigMap still there after launch stop")
	}
	if code, _, errOut := runCLI(t, "launch", "status", "--run", "cli-1", "--kubeconfig", kc.Kubeconfig); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("launch status after stop: exit %d, %s", code, errOut)
	}
	// Launch after stop: a new RayJob whose controller continues the run
	// from the store (train --resume-if-exists; cmd/thinkgen's resume test
	// trains with it).
	if code, out, errOut := runCLI(t, args...); code != 0 || !strings.Contains(out, "RayJob default/cli-1 created") {
		t.Fatalf("launch after stop: exit %d: %s %s", code, out, errOut)
	}
	job, err = c.Ray.RayV1().RayJobs("default").Get(ctx, "cli-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(job.Spec.Entrypoint, " --resume-if-exists") {
		t.Errorf("launch after stop: entrypoint %q, want --resume-if-exists", job.Spec.Entrypoint)
	}
}
