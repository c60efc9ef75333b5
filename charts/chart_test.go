package charts

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"testing"
	"time"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/thinkgen/thinkgen/cluster/kuberay"
	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/kubetest"
)

const chartDir = "thinkgen"

// valueSets are the variants every test renders.
var valueSets = []struct {
	name   string
	run    string // the run (and RayJob) name the values give
	resume bool
	values string
}{
	{"defaults", "thinkgen-rel", false, ``},
	{"existing secret, external S3", "exp-42", true, `
secrets: {existingSecret: prod-store}
store:
  bucket: ml-runs
  prefix: team-a/thinkgen
  minio: {enabled: false}
  external: {endpoint: s3.internal:443, region: eu-west-1}
run:
  name: exp-42
  resume: true
  config:
    run: {seed: 7, device: cuda}
    grpo: {group: 8}
cluster:
  workers: {rollout: 4, learner: 2, reward: 2}
  rollout: {cpus: 2.5, gpus: 2, memory: 48Gi}
  reward: {cpus: 1}
  shm_size: ""
  service_account: thinkgen-runner
`},
	{"gpu placement", "exp-43", false, `
run:
  name: exp-43
cluster:
  shm_size: 4Gi
  head: {cpus: 2, memory: 8Gi, node_selector: {thinkgen.io/pool: cpu}, priority_class: thinkgen-high}
  rollout:
    cpus: 8
    gpus: 1
    memory: 80Gi
    gpu_memory_mib: 40000
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}, {key: dedicated, value: ml}]
    shm_size: 16Gi
  learner:
    gpus: 8
    gpu_products: [NVIDIA-A100-SXM4-80GB, NVIDIA-H100-80GB-HBM3]
    node_selector: {cloud.google.com/gke-nodepool: a100, topology.kubernetes.io/zone: us-central1-a}
    priority_class: thinkgen-high
    shm_size: 64Gi
`},
}

func values(t *testing.T, text string) map[string]any {
	t.Helper()
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("values: %v", err)
	}
	return v
}

func TestLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			l := lint.All(chartDir, values(t, vs.values), "ml", false)
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %v", m)
				} else {
					t.Logf("helm lint: %v", m)
				}
			}
		})
	}
}

// render is `helm template <release> charts/thinkgen -n <ns>`: file name →
// rendered text.
func render(t *testing.T, release, ns string, vals map[string]any) (map[string]string, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: release, Namespace: ns, IsInstall: true, Revision: 1}, nil)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, rv)
}

// objects decodes the rendered manifests strictly (unknown fields fail)
// into typed objects, keyed "Kind/name".
func objects(t *testing.T, files map[string]string) map[string]any {
	t.Helper()
	out := map[string]any{}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(files[name], "\n---\n") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var obj interface{ GetName() string }
			switch tm.Kind {
			case "ConfigMap":
				obj = &corev1.ConfigMap{}
			case "Secret":
				obj = &corev1.Secret{}
			case "Service":
				obj = &corev1.Service{}
			case "PersistentVolumeClaim":
				obj = &corev1.PersistentVolumeClaim{}
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "Job":
				obj = &batchv1.Job{}
			case "RayJob":
				obj = &rayv1.RayJob{}
			case "NetworkPolicy":
				obj = &networkingv1.NetworkPolicy{}
			default:
				t.Fatalf("%s: unexpected kind %q", name, tm.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: %s: %v\n%s", name, tm.Kind, err, doc)
			}
			out[tm.Kind+"/"+obj.GetName()] = obj
		}
	}
	return out
}

func TestTemplate(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			vals := values(t, vs.values)
			files, err := render(t, "thinkgen-rel", "ml", vals)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			objs := objects(t, files)
			run := vs.run
			job, ok := objs["RayJob/"+run].(*rayv1.RayJob)
			if !ok {
				t.Fatalf("no RayJob %s among %v", run, slicesKeys(objs))
			}
			checkNetworkPolicy(t, objs, run)
			cm, ok := objs["ConfigMap/"+run+"-config"].(*corev1.ConfigMap)
			if !ok {
				t.Fatalf("no ConfigMap %s-config", run)
			}
			// The rendered configuration is a valid thinkgen configuration …
			cfg, err := config.Parse("config.yaml", []byte(cm.Data["config.yaml"]))
			if err != nil {
				t.Fatalf("the chart's config.yaml is not a valid run configuration: %v\n%s", err, cm.Data["config.yaml"])
			}
			// … and the chart's RayJob is the one thinkgen launch builds from it.
			want, err := kuberay.Build(cfg, kuberay.Options{Run: run, Resume: vs.resume})
			if err != nil {
				t.Fatalf("kuberay.Build from the chart's config: %v", err)
			}
			if !apiequality.Semantic.DeepEqual(job.Spec, want.RayJob.Spec) {
				a, _ := yaml.Marshal(job.Spec)
				b, _ := yaml.Marshal(want.RayJob.Spec)
				t.Errorf("chart RayJob spec differs from kuberay.Build's:\n--- chart\n%s\n--- kuberay.Build\n%s", a, b)
			}
			_, hasSecret := objs["Secret/thinkgen-rel-thinkgen"]
			_, hasMinIO := objs["Deployment/thinkgen-rel-minio"]
			switch vs.name {
			case "defaults":
				if !hasSecret || !hasMinIO {
					t.Errorf("defaults: Secret %v, MinIO %v; want both", hasSecret, hasMinIO)
				}
				if cfg.Storage.Endpoint != "thinkgen-rel-minio.ml.svc:9000" || !cfg.Storage.Insecure || cfg.Storage.URI != "s3://thinkgen/runs" {
					t.Errorf("defaults: storage %+v", cfg.Storage)
				}
				sec := objs["Secret/thinkgen-rel-thinkgen"].(*corev1.Secret)
				for _, k := range []string{kuberay.SecretKeyAccessKey, kuberay.SecretKeySecretKey, kuberay.SecretKeyToken} {
					v := string(sec.Data[k])
					if len(v) < 20 {
						t.Errorf("generated secret %s = %q: too short", k, v)
					}
					for f, text := range files {
						if !strings.HasSuffix(f, "secret.yaml") && strings.Contains(text, v) {
							t.Errorf("%s contains the secret value of %s", f, k)
						}
					}
				}
			case "gpu placement":
				// Not vacuous: the placement keys reach the pods.
				var learner corev1.PodSpec
				for _, g := range job.Spec.RayClusterSpec.WorkerGroupSpecs {
					if g.GroupName == "learner" {
						learner = g.Template.Spec
					}
				}
				if learner.NodeSelector["cloud.google.com/gke-nodepool"] != "a100" || learner.Affinity == nil || learner.PriorityClassName != "thinkgen-high" {
					t.Errorf("gpu placement: learner nodeSelector %v, affinity %v, priority class %q", learner.NodeSelector, learner.Affinity, learner.PriorityClassName)
				}
				if len(cfg.Cluster.Rollout.Tolerations) != 2 || cfg.Cluster.Learner.ShmSize != "64Gi" {
					t.Errorf("gpu placement: config rollout tolerations %+v, learner shm_size %q", cfg.Cluster.Rollout.Tolerations, cfg.Cluster.Learner.ShmSize)
				}
			default:
				if hasSecret || hasMinIO {
					t.Errorf("existing secret, external S3: Secret %v, MinIO %v; want neither", hasSecret, hasMinIO)
				}
				if cfg.Cluster.Secret != "prod-store" || cfg.Storage.Endpoint != "s3.internal:443" || cfg.Storage.URI != "s3://ml-runs/team-a/thinkgen" || cfg.GRPO.Group != 8 {
					t.Errorf("external: config cluster.secret %q, storage %+v, grpo.group %d", cfg.Cluster.Secret, cfg.Storage, cfg.GRPO.Group)
				}
			}
			checkNonRoot(t, objs)
			checkCredentials(t, objs)
		})
	}
}

// checkCredentials: no Ray pod gets MinIO's root credentials or the token
// in an environment variable (the workers read the token from its mounted
// file), and the bucket Job puts no credential on mc's command line.
func checkCredentials(t *testing.T, objs map[string]any) {
	t.Helper()
	for key, o := range objs {
		switch o := o.(type) {
		case *rayv1.RayJob:
			pods := map[string]corev1.PodSpec{"submitter": o.Spec.SubmitterPodTemplate.Spec, "head": o.Spec.RayClusterSpec.HeadGroupSpec.Template.Spec}
			for _, g := range o.Spec.RayClusterSpec.WorkerGroupSpecs {
				pods[g.GroupName] = g.Template.Spec
			}
			for name, pod := range pods {
				for _, c := range pod.Containers {
					for _, e := range c.Env {
						if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil && (strings.HasPrefix(ref.SecretKeyRef.Key, "minio-root") || ref.SecretKeyRef.Key == kuberay.SecretKeyToken) {
							t.Errorf("%s %s: env %s reads the Secret's %s", key, name, e.Name, ref.SecretKeyRef.Key)
						}
						if e.Name == "THINKGEN_TOKEN" || e.Name == "MINIO_ROOT_PASSWORD" {
							t.Errorf("%s %s: env %s", key, name, e.Name)
						}
					}
					if name == "submitter" || name == "head" {
						continue
					}
					if m := kubetest.MountOf(c, "token"); m == nil || m.MountPath != kuberay.TokenDir || !hasEnv(c, "THINKGEN_TOKEN_FILE", kuberay.TokenFile) {
						t.Errorf("%s %s: token mount %+v, THINKGEN_TOKEN_FILE %v; want the mounted file", key, name, m, c.Env)
					}
				}
			}
		case *batchv1.Job:
			script := strings.Join(o.Spec.Template.Spec.Containers[0].Args, "\n")
			if strings.Contains(script, "mc alias set") || !strings.Contains(script, "MC_HOST_store=") || !strings.Contains(script, "mc admin user add") {
				t.Errorf("%s: the script must pass the root credentials through MC_HOST_store and add the scoped user:\n%s", key, script)
			}
		case *corev1.Secret:
			if string(o.Data["minio-root-password"]) == "" || string(o.Data["minio-root-password"]) == string(o.Data[kuberay.SecretKeySecretKey]) {
				t.Errorf("%s: MinIO's root password is empty or the Ray pods' secret key", key)
			}
		}
	}
}

func hasEnv(c corev1.Container, name, value string) bool {
	for _, e := range c.Env {
		if e.Name == name && e.Value == value {
			return true
		}
	}
	return false
}

func slicesKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range maps.Keys(m) {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkNonRoot: every pod template of the chart runs as a non-root user
// and every container requests resources.
func checkNonRoot(t *testing.T, objs map[string]any) {
	t.Helper()
	var pods []struct {
		where string
		spec  corev1.PodSpec
	}
	add := func(where string, s corev1.PodSpec) {
		pods = append(pods, struct {
			where string
			spec  corev1.PodSpec
		}{where, s})
	}
	for key, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			add(key, o.Spec.Template.Spec)
		case *batchv1.Job:
			add(key, o.Spec.Template.Spec)
		case *rayv1.RayJob:
			add(key+" submitter", o.Spec.SubmitterPodTemplate.Spec)
			add(key+" head", o.Spec.RayClusterSpec.HeadGroupSpec.Template.Spec)
			for _, g := range o.Spec.RayClusterSpec.WorkerGroupSpecs {
				add(key+" "+g.GroupName, g.Template.Spec)
			}
		}
	}
	if len(pods) == 0 {
		t.Fatal("no pod templates rendered")
	}
	for _, p := range pods {
		sc := p.spec.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: pod is not runAsNonRoot", p.where)
		}
		for _, c := range p.spec.Containers {
			if len(c.Resources.Requests) == 0 {
				t.Errorf("%s: container %s requests no resources", p.where, c.Name)
			}
			if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				t.Errorf("%s: container %s allows privilege escalation", p.where, c.Name)
			}
		}
	}
}

func TestTemplateRejects(t *testing.T) {
	tests := []struct{ values, want string }{
		{`cluster: {workers: {reward: 0}}`, "cluster.workers.reward"},
		{`cluster: {rollout: {gpus: 0.5}}`, "cluster.rollout.gpus"},
		{`run: {name: Bad_Name}`, `run.name "Bad_Name"`},
		{`run: {name: ` + strings.Repeat("r", 48) + `}`, "longer than 47"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := render(t, "rel", "ml", values(t, tt.values))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("helm template with %s: %v, want an error naming %s", tt.values, err, tt.want)
			}
		})
	}
}

// TestAPIServer creates every rendered object in a real kube-apiserver
// with KubeRay's CRDs, with strict field validation (an unknown or
// misplaced field is an error, not a warning).
func TestAPIServer(t *testing.T) {
	kc := kubetest.Start(t)
	kube, err := kubernetes.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	ray, err := kuberay.NewClient(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, vs := range valueSets {
		ns := fmt.Sprintf("chart-%d", i)
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		files, err := render(t, "thinkgen-rel", ns, values(t, vs.values))
		if err != nil {
			t.Fatalf("%s: helm template: %v", vs.name, err)
		}
		strict := metav1.CreateOptions{FieldValidation: "Strict"}
		for key, o := range objects(t, files) {
			var err error
			switch o := o.(type) {
			case *corev1.ConfigMap:
				_, err = kube.CoreV1().ConfigMaps(ns).Create(ctx, o, strict)
			case *corev1.Secret:
				_, err = kube.CoreV1().Secrets(ns).Create(ctx, o, strict)
			case *corev1.Service:
				_, err = kube.CoreV1().Services(ns).Create(ctx, o, strict)
			case *corev1.PersistentVolumeClaim:
				_, err = kube.CoreV1().PersistentVolumeClaims(ns).Create(ctx, o, strict)
			case *appsv1.Deployment:
				_, err = kube.AppsV1().Deployments(ns).Create(ctx, o, strict)
			case *batchv1.Job:
				_, err = kube.BatchV1().Jobs(ns).Create(ctx, o, strict)
			case *networkingv1.NetworkPolicy:
				_, err = kube.NetworkingV1().NetworkPolicies(ns).Create(ctx, o, strict)
			case *rayv1.RayJob:
				var got *rayv1.RayJob
				got, err = ray.Ray.RayV1().RayJobs(ns).Create(ctx, o, strict)
				if err == nil && !apiequality.Semantic.DeepEqual(got.Spec, o.Spec) {
					t.Errorf("%s: %s read back differs from the rendered spec", vs.name, key)
				}
			}
			if err != nil {
				t.Errorf("%s: the apiserver refused %s: %v", vs.name, key, err)
			}
		}
	}
}

// checkNetworkPolicy: the run's Ray pods admit only each other, plus the
// KubeRay operator on the dashboard port alone.
func checkNetworkPolicy(t *testing.T, objs map[string]any, run string) {
	t.Helper()
	np, ok := objs["NetworkPolicy/"+run+"-ray"].(*networkingv1.NetworkPolicy)
	if !ok {
		t.Fatalf("no NetworkPolicy %s-ray among %v", run, slicesKeys(objs))
	}
	if got := np.Spec.PodSelector.MatchLabels["thinkgen.io/run"]; got != run {
		t.Errorf("NetworkPolicy selects run %q, want %q", got, run)
	}
	if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
		t.Errorf("policy types %v, want Ingress", np.Spec.PolicyTypes)
	}
	for i, rule := range np.Spec.Ingress {
		for _, peer := range rule.From {
			if peer.IPBlock != nil || peer.PodSelector == nil || len(peer.PodSelector.MatchLabels) == 0 {
				t.Errorf("ingress rule %d admits %+v: want pods selected by label only", i, peer)
			}
			if peer.NamespaceSelector != nil && (len(rule.Ports) != 1 || rule.Ports[0].Port.IntValue() != 8265) {
				t.Errorf("ingress rule %d admits other namespaces on %v; want the dashboard port alone", i, rule.Ports)
			}
		}
	}
}
