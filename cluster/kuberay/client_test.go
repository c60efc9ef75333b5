package kuberay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/kubetest"
)

// TestAPIServer runs the client against a real kube-apiserver and etcd
// (envtest) with KubeRay's CRDs: the built RayJob must pass the CRD's
// schema, read back as sent, report the status written through the status
// subresource, and go away on Stop.
func TestAPIServer(t *testing.T) {
	// No kubelet runs under envtest: a stand-in serves the container logs
	// that the API server proxies pods/log to (subtest "logs").
	kubelet := kubetest.NewKubelet(t)
	rc := kubetest.Start(t, kubelet.Option()).Config
	c, err := NewClient(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ml"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	o, err := Build(loadConfig(t), Options{Run: "exp-7", Namespace: "ml"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("apply", func(t *testing.T) {
		if how, err := c.Apply(ctx, o, false); err != nil || how != Created {
			t.Fatalf("Apply: %v, %v; want created", how, err)
		}
		got, err := c.Ray.RayV1().RayJobs("ml").Get(ctx, "exp-7", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(got.Spec, o.RayJob.Spec) {
			a, _ := yaml.Marshal(got.Spec)
			b, _ := yaml.Marshal(o.RayJob.Spec)
			t.Errorf("RayJob spec read back differs:\n%s\nsent:\n%s", a, b)
		}
		if got.Labels[LabelRun] != "exp-7" {
			t.Errorf("labels %v", got.Labels)
		}
		cm, err := c.Kube.CoreV1().ConfigMaps("ml").Get(ctx, "exp-7-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data["config.yaml"] != o.ConfigMap.Data["config.yaml"] {
			t.Errorf("ConfigMap data read back differs")
		}
	})

	t.Run("relaunch", func(t *testing.T) {
		before, err := c.Ray.RayV1().RayJobs("ml").Get(ctx, "exp-7", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The same configuration (built anew) changes nothing.
		same, err := Build(loadConfig(t), Options{Run: "exp-7", Namespace: "ml"})
		if err != nil {
			t.Fatal(err)
		}
		if how, err := c.Apply(ctx, same, false); err != nil || how != Unchanged {
			t.Errorf("Apply of the same configuration: %v, %v; want unchanged", how, err)
		}
		// Another configuration is refused, naming the keys.
		changed, err := Build(loadConfig(t, "grpo.group=4", "cluster.rollout.gpus=2", "cluster.learner.tolerations=[{key: gpu, operator: Exists}]"),
			Options{Run: "exp-7", Namespace: "ml", EvalRows: 9})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Apply(ctx, changed, false)
		if !errors.Is(err, ErrChanged) {
			t.Fatalf("Apply of another configuration: %v, want ErrChanged", err)
		}
		if want := "cluster.learner.tolerations, cluster.rollout.gpus, grpo.group, entrypoint differ"; !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %q", err, want)
		}
		after, err := c.Ray.RayV1().RayJobs("ml").Get(ctx, "exp-7", metav1.GetOptions{})
		if err != nil || after.UID != before.UID || after.ResourceVersion != before.ResourceVersion {
			t.Fatalf("the refused Apply touched the RayJob: %v", err)
		}
		// --replace: deleted and made anew with the new spec.
		if how, err := c.Apply(ctx, changed, true); err != nil || how != Replaced {
			t.Fatalf("Apply with replace: %v, %v; want replaced", how, err)
		}
		after, err = c.Ray.RayV1().RayJobs("ml").Get(ctx, "exp-7", metav1.GetOptions{})
		if err != nil || after.UID == before.UID || !apiequality.Semantic.DeepEqual(after.Spec, changed.RayJob.Spec) {
			t.Errorf("after replace: uid %s (was %s), spec equal %v, %v", after.UID, before.UID, apiequality.Semantic.DeepEqual(after.Spec, changed.RayJob.Spec), err)
		}
		// And back, so that the subtests below see the first launch.
		if how, err := c.Apply(ctx, o, true); err != nil || how != Replaced {
			t.Fatalf("Apply back: %v, %v", how, err)
		}
	})

	t.Run("schema rejects", func(t *testing.T) {
		// The CRD's schema is enforced: a wrong type and an unknown field.
		for _, body := range []string{
			`{"apiVersion":"ray.io/v1","kind":"RayJob","metadata":{"name":"bad-1"},"spec":{"entrypoint":7}}`,
			`{"apiVersion":"ray.io/v1","kind":"RayJob","metadata":{"name":"bad-2"},"spec":{"entrypoint":"x","gpuCount":1}}`,
		} {
			err := c.Ray.RayV1().RESTClient().Post().Namespace("ml").Resource("rayjobs").
				Param("fieldValidation", "Strict").Body([]byte(body)).Do(ctx).Error()
			if err == nil {
				t.Errorf("the apiserver accepted %s", body)
			}
		}
	})

	t.Run("full.yaml placement", func(t *testing.T) {
		cfg, err := config.Load("../../configs/full.yaml", nil)
		if err != nil {
			t.Fatal(err)
		}
		full, err := Build(cfg, Options{Run: "full", Namespace: "ml"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Apply(ctx, full, false); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		defer c.Stop(ctx, "ml", "full")
		got, err := c.Ray.RayV1().RayJobs("ml").Get(ctx, "full", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(got.Spec, full.RayJob.Spec) {
			t.Errorf("full.yaml RayJob read back differs from what was sent")
		}
		spec := got.Spec.RayClusterSpec
		pods := map[string]corev1.PodSpec{"head": spec.HeadGroupSpec.Template.Spec}
		for _, g := range spec.WorkerGroupSpecs {
			pods[g.GroupName] = g.Template.Spec
		}
		gpuToleration := []corev1.Toleration{{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		cpuPool := map[string]string{"thinkgen.io/pool": "cpu"}
		for _, w := range []struct {
			role        string
			gpus        int64
			selector    map[string]string
			tolerations []corev1.Toleration
			affinity    []corev1.NodeSelectorRequirement
			priority    string
			shm         string
		}{
			{"head", 0, cpuPool, nil, nil, "thinkgen-training", "2Gi"},
			{"rollout", 1, nil, gpuToleration, []corev1.NodeSelectorRequirement{
				{Key: LabelGPUMemory, Operator: corev1.NodeSelectorOpGt, Values: []string{"39999"}},
			}, "thinkgen-training", "16Gi"},
			{"learner", 8, nil, gpuToleration, []corev1.NodeSelectorRequirement{
				{Key: LabelGPUProduct, Operator: corev1.NodeSelectorOpIn, Values: []string{"NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"}},
				{Key: LabelGPUMemory, Operator: corev1.NodeSelectorOpGt, Values: []string{"79999"}},
			}, "thinkgen-training", "64Gi"},
			{"reward", 0, cpuPool, nil, nil, "", "2Gi"},
		} {
			pod, ok := pods[w.role]
			if !ok {
				t.Errorf("no %s pod template", w.role)
				continue
			}
			res := pod.Containers[0].Resources
			for _, list := range []corev1.ResourceList{res.Requests, res.Limits} {
				if q, ok := list["nvidia.com/gpu"]; q.Value() != w.gpus || ok != (w.gpus > 0) {
					t.Errorf("%s: nvidia.com/gpu %s (set %v), want %d", w.role, q.String(), ok, w.gpus)
				}
			}
			if !apiequality.Semantic.DeepEqual(pod.NodeSelector, w.selector) {
				t.Errorf("%s: nodeSelector %v, want %v", w.role, pod.NodeSelector, w.selector)
			}
			if !apiequality.Semantic.DeepEqual(pod.Tolerations, w.tolerations) {
				t.Errorf("%s: tolerations %+v, want %+v", w.role, pod.Tolerations, w.tolerations)
			}
			var affinity []corev1.NodeSelectorRequirement
			if a := pod.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
				for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
					affinity = append(affinity, term.MatchExpressions...)
				}
			}
			if !apiequality.Semantic.DeepEqual(affinity, w.affinity) {
				t.Errorf("%s: required node affinity %+v, want %+v", w.role, affinity, w.affinity)
			}
			if pod.PriorityClassName != w.priority {
				t.Errorf("%s: priorityClassName %q, want %q", w.role, pod.PriorityClassName, w.priority)
			}
			var shm string
			for _, v := range pod.Volumes {
				if v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory && v.EmptyDir.SizeLimit != nil {
					shm = v.EmptyDir.SizeLimit.String()
				}
			}
			if shm != w.shm {
				t.Errorf("%s: /dev/shm sizeLimit %q, want %q", w.role, shm, w.shm)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		st, err := c.Status(ctx, "ml", "exp-7")
		if err != nil {
			t.Fatal(err)
		}
		if st.JobStatus != "" || st.Deployment != "" || st.Terminal() {
			t.Errorf("fresh status %+v", st)
		}
		setStatus(t, ctx, c, rayv1.JobStatusRunning, rayv1.JobDeploymentStatusRunning, "exp-7-x2k9q")
		st, err = c.Status(ctx, "ml", "exp-7")
		if err != nil {
			t.Fatal(err)
		}
		if st.JobStatus != rayv1.JobStatusRunning || st.Deployment != rayv1.JobDeploymentStatusRunning || st.RayCluster != "exp-7-x2k9q" || st.Terminal() {
			t.Errorf("status %+v, want RUNNING/Running on exp-7-x2k9q", st)
		}
		if want := "run exp-7: job RUNNING, deployment Running (cluster exp-7-x2k9q)"; st.String() != want {
			t.Errorf("String() = %q, want %q", st.String(), want)
		}
		if _, err := c.Status(ctx, "ml", "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Status of a missing run: %v, want ErrNotFound", err)
		}
	})

	t.Run("follow", func(t *testing.T) {
		var seen []Status
		done := make(chan error, 1)
		var final Status
		go func() {
			var err error
			final, err = c.Follow(ctx, "ml", "exp-7", func(s Status) { seen = append(seen, s) })
			done <- err
		}()
		time.Sleep(500 * time.Millisecond) // let the watch start: the first report is the current status
		setStatus(t, ctx, c, rayv1.JobStatusSucceeded, rayv1.JobDeploymentStatusComplete, "exp-7-x2k9q")
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Follow: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Follow did not return after the job succeeded")
		}
		if final.JobStatus != rayv1.JobStatusSucceeded || !final.Terminal() || final.Failed() {
			t.Errorf("final status %+v", final)
		}
		if len(seen) < 2 || seen[0].JobStatus != rayv1.JobStatusRunning || seen[len(seen)-1].JobStatus != rayv1.JobStatusSucceeded {
			t.Errorf("reports %+v, want RUNNING … SUCCEEDED", seen)
		}
		// A terminal job returns at once.
		if st, err := c.Follow(ctx, "ml", "exp-7", func(Status) {}); err != nil || st.JobStatus != rayv1.JobStatusSucceeded {
			t.Errorf("Follow of a finished job: %+v, %v", st, err)
		}
		if _, err := c.Follow(ctx, "ml", "nope", func(Status) {}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Follow of a missing run: %v, want ErrNotFound", err)
		}
	})

	t.Run("logs pick the pod", func(t *testing.T) {
		if err := c.Logs(ctx, "ml", "exp-7", LogOptions{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no head pod") {
			t.Errorf("Logs without pods: %v", err)
		}
		// No scheduler here: create the pods KubeRay would, with the
		// template labels, bound to the stand-in kubelet's node.
		kubelet.Register(ctx, t, c.Kube, "node-1")
		for _, p := range []struct{ name, role string }{{"exp-7-x2k9q-head-abcde", "head"}, {"exp-7-x2k9q-rollout-worker-1", "rollout"}, {"other-head", "head"}} {
			run := "exp-7"
			if strings.HasPrefix(p.name, "other") {
				run = "other"
			}
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "ml", Labels: podLabels(run, p.role)},
				Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "ray-head", Image: "x"}}},
			}
			if _, err := c.Kube.CoreV1().Pods("ml").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		pods, err := c.Pods(ctx, "ml", "exp-7", "head")
		if err != nil || len(pods) != 1 || pods[0].Name != "exp-7-x2k9q-head-abcde" {
			t.Errorf("head pods of exp-7: %v, %v", names(pods), err)
		}
		err = c.Logs(ctx, "ml", "exp-7", LogOptions{Role: "rollout", Pod: "nope"}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "exp-7-x2k9q-rollout-worker-1") {
			t.Errorf("Logs of a missing pod: %v, want the list of pods", err)
		}
	})

	t.Run("logs", func(t *testing.T) {
		// Through client-go and the real API server's pods/log proxy to the
		// stand-in kubelet. The rollout worker writes a line, then another
		// half a second later, then its container ends: --follow streams
		// both and returns at the end.
		kubelet.Logs("ml", "exp-7-x2k9q-head-abcde", "ray-head", func(w http.ResponseWriter, q url.Values) {
			fmt.Fprint(w, "head line 1\nhead line 2\n")
		})
		kubelet.Logs("ml", "exp-7-x2k9q-rollout-worker-1", "ray-head", func(w http.ResponseWriter, q url.Values) {
			fmt.Fprintf(w, "rollout step 1 (follow=%s tailLines=%s)\n", q.Get("follow"), q.Get("tailLines"))
			w.(http.Flusher).Flush()
			time.Sleep(500 * time.Millisecond)
			fmt.Fprint(w, "rollout step 2\n")
		})
		var head bytes.Buffer
		if err := c.Logs(ctx, "ml", "exp-7", LogOptions{}, &head); err != nil || head.String() != "head line 1\nhead line 2\n" {
			t.Errorf("head logs: %q, %v", head.String(), err)
		}
		var rollout bytes.Buffer
		if err := c.Logs(ctx, "ml", "exp-7", LogOptions{Role: "rollout", Follow: true, Tail: 20}, &rollout); err != nil {
			t.Fatalf("rollout logs: %v", err)
		}
		if want := "rollout step 1 (follow=true tailLines=20)\nrollout step 2\n"; rollout.String() != want {
			t.Errorf("rollout logs %q, want %q", rollout.String(), want)
		}
		var paths []string
		for _, u := range kubelet.Requests() {
			paths = append(paths, u.Path)
		}
		if want := "/containerLogs/ml/exp-7-x2k9q-head-abcde/ray-head /containerLogs/ml/exp-7-x2k9q-rollout-worker-1/ray-head"; strings.Join(paths, " ") != want {
			t.Errorf("the kubelet was asked for %v, want %s", paths, want)
		}
	})

	t.Run("stop", func(t *testing.T) {
		if err := c.Stop(ctx, "ml", "exp-7"); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if _, err := c.Status(ctx, "ml", "exp-7"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Status after Stop: %v, want ErrNotFound", err)
		}
		if _, err := c.Kube.CoreV1().ConfigMaps("ml").Get(ctx, "exp-7-config", metav1.GetOptions{}); err == nil {
			t.Errorf("ConfigMap still there after Stop")
		}
		if err := c.Stop(ctx, "ml", "exp-7"); !errors.Is(err, ErrNotFound) {
			t.Errorf("second Stop: %v, want ErrNotFound", err)
		}
	})
}

// setStatus writes the RayJob's status through the status subresource, as
// the KubeRay operator does.
func setStatus(t *testing.T, ctx context.Context, c *Client, js rayv1.JobStatus, ds rayv1.JobDeploymentStatus, cluster string) {
	t.Helper()
	job, err := c.Ray.RayV1().RayJobs("ml").Get(ctx, "exp-7", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	job.Status.JobStatus, job.Status.JobDeploymentStatus, job.Status.RayClusterName = js, ds, cluster
	if _, err := c.Ray.RayV1().RayJobs("ml").UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update status: %v", err)
	}
}

func names(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}
