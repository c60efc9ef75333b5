package kuberay

import (
	"errors"
	"strings"
	"testing"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/kubetest"
)

// launchSets make the default configuration launchable.
var launchSets = []string{
	"cluster.image=registry.example/thinkgen:1.0",
	"storage.uri=s3://runs/thinkgen",
	"storage.endpoint=minio.store.svc:9000",
	"storage.credentials_file=/home/me/.thinkgen-creds",
	"cluster.workers.rollout=2", "cluster.workers.learner=1", "cluster.workers.reward=1",
	"cluster.rollout.gpus=1", "cluster.rollout.cpus=4", "cluster.rollout.memory=32Gi",
	"cluster.learner.gpus=2", "cluster.learner.cpus=8", "cluster.learner.memory=64Gi",
	"cluster.reward.cpus=2.5", "cluster.reward.memory=4Gi",
	"cluster.shm_size=8Gi", "cluster.service_account=thinkgen-runner",
}

func loadConfig(t *testing.T, extra ...string) *config.Config {
	t.Helper()
	cfg, err := config.Load("", append(append([]string(nil), launchSets...), extra...))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		name string
		run  string
		sets []string
		want string // in the error
	}{
		{"no image", "r1", []string{"cluster.image=\"\""}, "cluster.image"},
		{"local store", "r1", []string{"storage.uri=/data/store"}, "storage.uri"},
		{"no reward workers", "r1", []string{"cluster.workers.reward=0"}, "cluster.workers.reward"},
		{"no learner", "r1", []string{"cluster.workers.learner=0"}, "cluster.workers.learner"},
		{"fractional gpu", "r1", []string{"cluster.rollout.gpus=0.5"}, "cluster.rollout.gpus"},
		{"upper-case run", "Run1", nil, `run name "Run1"`},
		{"run starting with a digit", "1run", nil, `run name "1run"`},
		{"long run", strings.Repeat("r", MaxRunName+1), nil, "longer than 47"},
		{"no secret", "r1", []string{"cluster.secret=\"\""}, "cluster.secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build(loadConfig(t, tt.sets...), Options{Run: tt.run})
			if !errors.Is(err, ErrNotLaunchable) {
				t.Fatalf("Build: error %v, want ErrNotLaunchable", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build: error %q does not name %q", err, tt.want)
			}
		})
	}
	if _, err := Build(loadConfig(t), Options{Run: strings.Repeat("r", MaxRunName)}); err != nil {
		t.Errorf("Build with a %d-character run name: %v", MaxRunName, err)
	}
}

func TestBuild(t *testing.T) {
	cfg := loadConfig(t)
	o, err := Build(cfg, Options{Run: "exp-7", Namespace: "ml"})
	if err != nil {
		t.Fatal(err)
	}
	job, cm := o.RayJob, o.ConfigMap
	if job.Name != "exp-7" || job.Namespace != "ml" || cm.Name != "exp-7-config" || cm.Namespace != "ml" {
		t.Errorf("names: rayjob %s/%s, configmap %s/%s", job.Namespace, job.Name, cm.Namespace, cm.Name)
	}
	wantEntry := "thinkgen train --config /etc/thinkgen/config.yaml --run exp-7 --listen 0.0.0.0:7700 --token-file /var/run/thinkgen/token --store s3://runs/thinkgen --resume-if-exists"
	if job.Spec.Entrypoint != wantEntry {
		t.Errorf("entrypoint %q, want %q", job.Spec.Entrypoint, wantEntry)
	}
	if o2, _ := Build(cfg, Options{Run: "exp-7", Resume: true}); !strings.HasSuffix(o2.RayJob.Spec.Entrypoint, " --resume") {
		t.Errorf("Resume: entrypoint %q lacks --resume", o2.RayJob.Spec.Entrypoint)
	}

	// The pods' configuration is the run's, named, without the local credentials file.
	pc, err := config.Parse("configmap", []byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("configmap config.yaml does not parse: %v", err)
	}
	if pc.Run.Name != "exp-7" || pc.Storage.CredentialsFile != "" || pc.Storage.Endpoint != "minio.store.svc:9000" || pc.Cluster.Namespace != "ml" {
		t.Errorf("configmap config: run.name %q, credentials_file %q, endpoint %q, namespace %q",
			pc.Run.Name, pc.Storage.CredentialsFile, pc.Storage.Endpoint, pc.Cluster.Namespace)
	}

	spec := job.Spec.RayClusterSpec
	head := spec.HeadGroupSpec.Template.Spec
	if !hasPort(head.Containers[0], ControllerPort) {
		t.Errorf("head container does not declare port %d: %+v", ControllerPort, head.Containers[0].Ports)
	}
	checkPod(t, "head", head, false)
	if m := kubetest.MountOf(head.Containers[0], "token"); m == nil || m.MountPath != TokenDir {
		t.Errorf("head: token mount %+v, want at %s", m, TokenDir)
	}

	want := []struct {
		role     string
		replicas int32
		cpu, mem string
		gpus     int64
	}{
		{"rollout", 2, "4", "32Gi", 1},
		{"learner", 1, "8", "64Gi", 2},
		{"reward", 1, "2500m", "4Gi", 0},
	}
	if len(spec.WorkerGroupSpecs) != len(want) {
		t.Fatalf("%d worker groups, want %d", len(spec.WorkerGroupSpecs), len(want))
	}
	for i, w := range want {
		g := spec.WorkerGroupSpecs[i]
		if g.GroupName != w.role || *g.Replicas != w.replicas || *g.MinReplicas != w.replicas || *g.MaxReplicas != w.replicas {
			t.Errorf("group %d: %s replicas %d/%d/%d, want %s ×%d", i, g.GroupName, *g.Replicas, *g.MinReplicas, *g.MaxReplicas, w.role, w.replicas)
		}
		c := g.Template.Spec.Containers[0]
		for _, list := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			if q := list[corev1.ResourceCPU]; q.Cmp(resource.MustParse(w.cpu)) != 0 {
				t.Errorf("%s: cpu %s, want %s", w.role, q.String(), w.cpu)
			}
			if q := list[corev1.ResourceMemory]; q.Cmp(resource.MustParse(w.mem)) != 0 {
				t.Errorf("%s: memory %s, want %s", w.role, q.String(), w.mem)
			}
			q, ok := list["nvidia.com/gpu"]
			if (w.gpus == 0) == ok || (ok && q.Value() != w.gpus) {
				t.Errorf("%s: nvidia.com/gpu %v (set %v), want %d", w.role, q.String(), ok, w.gpus)
			}
		}
		script := strings.Join(c.Args, " ")
		wantCmd := "exec thinkgen worker --role " + w.role + " --controller http://exp-7-head-svc:7700 --config /etc/thinkgen/config.yaml"
		if !strings.Contains(script, wantCmd) || !strings.Contains(script, "${KUBERAY_GEN_RAY_START_CMD/--block/}") {
			t.Errorf("%s: script %q, want ray start then %q", w.role, script, wantCmd)
		}
		if g.Template.Annotations["ray.io/overwrite-container-cmd"] != "true" {
			t.Errorf("%s: no ray.io/overwrite-container-cmd annotation", w.role)
		}
		checkPod(t, w.role, g.Template.Spec, true)
	}
	checkPod(t, "submitter", job.Spec.SubmitterPodTemplate.Spec, false)
}

// checkPod checks what every pod must have: non-root, the Secret's keys
// through secretKeyRef (never a literal), /dev/shm in memory, the config.
func checkPod(t *testing.T, what string, pod corev1.PodSpec, worker bool) {
	t.Helper()
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: pod security context %+v is not non-root", what, sc)
	}
	c := pod.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("%s: container allows privilege escalation", what)
	}
	if pod.ServiceAccountName != "thinkgen-runner" {
		t.Errorf("%s: service account %q", what, pod.ServiceAccountName)
	}
	if what == "submitter" {
		return
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
		if e.Value != "" && !(worker && e.Name == "THINKGEN_TOKEN_FILE") {
			t.Errorf("%s: env %s has a literal value", what, e.Name)
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Key == SecretKeyToken {
			t.Errorf("%s: env %s carries the token; it must be a mounted file", what, e.Name)
		}
	}
	if m := kubetest.MountOf(c, "token"); m == nil || m.MountPath != TokenDir || !m.ReadOnly {
		t.Errorf("%s: token mount %+v, want read-only at %s", what, m, TokenDir)
	}
	if worker && env["THINKGEN_TOKEN_FILE"].Value != TokenFile {
		t.Errorf("%s: THINKGEN_TOKEN_FILE = %q, want %s", what, env["THINKGEN_TOKEN_FILE"].Value, TokenFile)
	}
	wantKeys := map[string]string{"AWS_ACCESS_KEY_ID": SecretKeyAccessKey, "AWS_SECRET_ACCESS_KEY": SecretKeySecretKey}
	for name, key := range wantKeys {
		ref := env[name].ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "thinkgen" || ref.SecretKeyRef.Key != key {
			t.Errorf("%s: env %s = %+v, want secretKeyRef thinkgen/%s", what, name, env[name], key)
		}
	}
	var shm, cfg bool
	for _, v := range pod.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory && v.EmptyDir.SizeLimit != nil && v.EmptyDir.SizeLimit.String() == "8Gi" {
			shm = kubetest.MountOf(c, v.Name) != nil && kubetest.MountOf(c, v.Name).MountPath == "/dev/shm"
		}
		if v.ConfigMap != nil && v.ConfigMap.Name == "exp-7-config" {
			cfg = kubetest.MountOf(c, v.Name) != nil && kubetest.MountOf(c, v.Name).MountPath == ConfigDir
		}
	}
	if !shm || !cfg {
		t.Errorf("%s: /dev/shm memory emptyDir mounted %v, config map mounted %v", what, shm, cfg)
	}
}

func hasPort(c corev1.Container, port int32) bool {
	for _, p := range c.Ports {
		if p.ContainerPort == port {
			return true
		}
	}
	return false
}

// TestYAML: the dry-run text parses back into the same objects and holds no
// credentials, only references to the Secret.
func TestYAML(t *testing.T) {
	const access, secret = "AKIAEXAMPLEACCESS", "wJalrXUtnFEMIexampleSECRETkey"
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("THINKGEN_TOKEN", "tok-example-123")
	o, err := Build(loadConfig(t), Options{Run: "exp-7"})
	if err != nil {
		t.Fatal(err)
	}
	text, err := o.YAML()
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	for _, leak := range []string{access, secret, "tok-example-123", "/home/me/.thinkgen-creds"} {
		if strings.Contains(s, leak) {
			t.Errorf("dry-run output contains %q", leak)
		}
	}
	// The store's keys, in each of the 4 pod templates; the token is a
	// mounted Secret volume in the head and the 3 worker groups.
	if n := strings.Count(s, "secretKeyRef:"); n != 2*4 {
		t.Errorf("%d secretKeyRef entries, want 8 (2 per pod template ×4)", n)
	}
	if n := strings.Count(s, "secretName: "); n != 4 {
		t.Errorf("%d Secret volumes, want 4 (the token in the head and each worker group)", n)
	}
	if strings.Contains(s, "status:") || strings.Contains(s, "creationTimestamp") {
		t.Errorf("dry-run output has status or creationTimestamp")
	}
	docs := strings.Split(s, "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("%d YAML documents, want 2", len(docs))
	}
	var cm corev1.ConfigMap
	var job rayv1.RayJob
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &cm); err != nil {
		t.Fatalf("configmap document: %v", err)
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &job); err != nil {
		t.Fatalf("rayjob document: %v", err)
	}
	if cm.Kind != "ConfigMap" || job.Kind != "RayJob" || job.APIVersion != "ray.io/v1" {
		t.Errorf("kinds %s, %s %s", cm.Kind, job.APIVersion, job.Kind)
	}
	if cm.Data["config.yaml"] != o.ConfigMap.Data["config.yaml"] {
		t.Errorf("config.yaml changed in the round trip")
	}
	a, _ := yaml.Marshal(job.Spec)
	b, _ := yaml.Marshal(o.RayJob.Spec)
	if string(a) != string(b) {
		t.Errorf("RayJob spec changed in the YAML round trip:\n%s\nvs\n%s", a, b)
	}
}
