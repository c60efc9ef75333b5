package kuberay

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/thinkgen/thinkgen/config"
)

// Keys of the Secret named by cluster.secret.
const (
	SecretKeyAccessKey = "aws-access-key-id"     // the store's access key: AWS_ACCESS_KEY_ID
	SecretKeySecretKey = "aws-secret-access-key" // the store's secret key: AWS_SECRET_ACCESS_KEY
	SecretKeyToken     = "token"                 // the workers' bearer token, mounted as TokenFile
)

// Where things are inside the pods.
const (
	ControllerPort = 7700            // the controller API on the head
	RendezvousPort = 29500           // the learner ranks' rendezvous store, served by the controller
	ConfigDir      = "/etc/thinkgen" // the ConfigMap's mount
	ConfigFile     = ConfigDir + "/config.yaml"
	TokenDir       = "/var/run/thinkgen" // the token's mount, in every Ray pod
	TokenFile      = TokenDir + "/token"
	configKey      = "config.yaml"
	nonRootUID     = 1000 // the "ray" user of the rayproject/ray images
	nonRootGID     = 100
)

// Labels on every object and pod of a launch.
const (
	LabelName = "app.kubernetes.io/name" // always "thinkgen"
	LabelRun  = "thinkgen.io/run"        // the run name
	LabelRole = "thinkgen.io/role"       // head, rollout, learner or reward
)

// MaxRunName is the longest run name a launch accepts: KubeRay names the
// RayCluster <run>-<5 random characters> and that must stay a 53-character
// DNS label.
const MaxRunName = 47

// ErrNotLaunchable means the configuration cannot run on Kubernetes as it
// is (no image, a local store, a role without workers); the error names
// the key.
var ErrNotLaunchable = errors.New("thinkgen/kuberay: configuration cannot be launched")

// Options of a launch beyond the run configuration.
type Options struct {
	// Run names the run, the RayJob and the ConfigMap (<run>-config); a
	// DNS-1035 label of at most MaxRunName characters.
	Run string
	// Namespace overrides cluster.namespace when not empty.
	Namespace string
	// Resume requires the run to be in the store already and continues it
	// (thinkgen train --resume). Without it the controller continues the
	// run if the store has it and starts it otherwise
	// (--resume-if-exists).
	Resume bool
	// EvalRows is the controller's --eval-rows (held-out rows each
	// evaluated version is scored on); zero keeps train's default.
	EvalRows int
}

// Objects are what a launch creates.
type Objects struct {
	ConfigMap *corev1.ConfigMap
	RayJob    *rayv1.RayJob
}

// Roles of the worker groups, in the order of the RayJob's worker groups.
var roles = []string{"rollout", "learner", "reward"}

// Build returns the ConfigMap and the RayJob of a run. cfg must be valid
// (config.Validate); Build checks what a cluster needs on top of that.
func Build(cfg *config.Config, opts Options) (*Objects, error) {
	cl := cfg.Cluster
	ns := cl.Namespace
	if opts.Namespace != "" {
		ns = opts.Namespace
	}
	if err := checkLaunchable(cfg, opts.Run, ns); err != nil {
		return nil, err
	}
	run := opts.Run

	// The pods' copy of the configuration: credentials come from the Secret.
	podCfg := *cfg
	podCfg.Run.Name = run
	podCfg.Storage.CredentialsFile = ""
	podCfg.Cluster.Namespace = ns
	data, err := podCfg.YAML()
	if err != nil {
		return nil, fmt.Errorf("render the run configuration: %w", err)
	}
	labels := map[string]string{LabelName: "thinkgen", LabelRun: run}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName(run), Namespace: ns, Labels: labels},
		Data:       map[string]string{configKey: string(data)},
	}

	head, err := headTemplate(cfg, run)
	if err != nil {
		return nil, err
	}
	var groups []rayv1.WorkerGroupSpec
	for _, role := range roles {
		g, err := workerGroup(cfg, run, role)
		if err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	entry := []string{"thinkgen", "train", "--config", ConfigFile, "--run", run,
		"--listen", fmt.Sprintf("0.0.0.0:%d", ControllerPort), "--token-file", TokenFile,
		"--store", cfg.Storage.URI}
	if opts.Resume {
		entry = append(entry, "--resume")
	} else {
		// A launch after `launch stop`, or a head that restarts, continues
		// the run from its store.
		entry = append(entry, "--resume-if-exists")
	}
	if cl.Workers.Learner > 1 {
		// The learner pods reach the controller's rendezvous store
		// through the head's Service.
		entry = append(entry, "--rendezvous", fmt.Sprintf("%s:%d", HeadServiceName(run), RendezvousPort))
	}
	if opts.EvalRows > 0 {
		entry = append(entry, "--eval-rows", strconv.Itoa(opts.EvalRows))
	}
	job := &rayv1.RayJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: rayv1.GroupVersion.String(), Kind: "RayJob"},
		ObjectMeta: metav1.ObjectMeta{Name: run, Namespace: ns, Labels: labels},
		Spec: rayv1.RayJobSpec{
			Entrypoint: strings.Join(entry, " "),
			// The API server's defaults, spelled out so that what is read
			// back equals what was sent: no retry of a failed run as a new
			// Ray cluster (the controller itself resumes), one host per
			// worker replica.
			BackoffLimit:             ptr(int32(0)),
			SubmissionMode:           rayv1.K8sJobMode,
			ShutdownAfterJobFinishes: true,
			TTLSecondsAfterFinished:  300,
			SubmitterPodTemplate:     submitterTemplate(cfg, run),
			RayClusterSpec: &rayv1.RayClusterSpec{
				RayVersion: cl.RayVersion,
				HeadGroupSpec: rayv1.HeadGroupSpec{
					// No Ray tasks on the head: it runs the controller only.
					RayStartParams: map[string]string{"dashboard-host": "0.0.0.0", "num-cpus": "0"},
					Template:       head,
				},
				WorkerGroupSpecs: groups,
			},
		},
	}
	return &Objects{ConfigMap: cm, RayJob: job}, nil
}

// ConfigMapName is the name of a run's ConfigMap.
func ConfigMapName(run string) string { return run + "-config" }

// HeadServiceName is the name of the Service KubeRay creates for the head
// of the RayJob <run>.
func HeadServiceName(run string) string { return run + "-head-svc" }

// ControllerURL is the controller's address inside the cluster.
func ControllerURL(run string) string {
	return fmt.Sprintf("http://%s:%d", HeadServiceName(run), ControllerPort)
}

// CheckRun reports whether run can name a RayJob.
func CheckRun(run string) error {
	if len(run) > MaxRunName {
		return fmt.Errorf("run name %q: longer than %d characters (KubeRay derives the RayCluster's name from it)", run, MaxRunName)
	}
	if errs := validation.IsDNS1035Label(run); len(errs) > 0 {
		return fmt.Errorf("run name %q: %s", run, strings.Join(errs, "; "))
	}
	return nil
}

func checkLaunchable(cfg *config.Config, run, ns string) error {
	cl := cfg.Cluster
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if err := CheckRun(run); err != nil {
		add("%v", err)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		add("cluster.namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	if cl.Image == "" {
		add("cluster.image: required (a Ray image with thinkgen on PATH)")
	}
	if cl.Secret == "" {
		add("cluster.secret: required (the Secret with the store credentials and the worker token)")
	}
	if u, err := url.Parse(cfg.Storage.URI); err != nil || u.Scheme != "s3" {
		add("storage.uri %q: the pods share the store, so it must be s3://bucket/prefix", cfg.Storage.URI)
	}
	counts := map[string]int{"rollout": cl.Workers.Rollout, "learner": cl.Workers.Learner, "reward": cl.Workers.Reward}
	for _, role := range roles {
		if counts[role] < 1 {
			add("cluster.workers.%s: at least 1 worker on a cluster, got %d", role, counts[role])
		}
	}
	for _, r := range []struct {
		key string
		res config.Resources
	}{{"cluster.head", cl.Head}, {"cluster.rollout", cl.Rollout}, {"cluster.learner", cl.Learner}, {"cluster.reward", cl.Reward}} {
		if _, err := resources(r.key, r.res); err != nil {
			add("%v", err)
		}
		problems = append(problems, checkPlacement(r.key, r.res)...)
	}
	if cl.ShmSize != "" {
		if _, err := resource.ParseQuantity(cl.ShmSize); err != nil {
			add("cluster.shm_size %q: %v", cl.ShmSize, err)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrNotLaunchable, strings.Join(problems, "; "))
	}
	return nil
}

// resources turns config resources into requests = limits.
func resources(key string, r config.Resources) (corev1.ResourceRequirements, error) {
	list := corev1.ResourceList{}
	if r.CPUs > 0 {
		list[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(math.Round(r.CPUs*1000)), resource.DecimalSI)
	}
	if r.Memory != "" {
		q, err := resource.ParseQuantity(r.Memory)
		if err != nil {
			return corev1.ResourceRequirements{}, fmt.Errorf("%s.memory %q: %v", key, r.Memory, err)
		}
		list[corev1.ResourceMemory] = q
	}
	if r.GPUs > 0 {
		if r.GPUs != math.Trunc(r.GPUs) {
			return corev1.ResourceRequirements{}, fmt.Errorf("%s.gpus %v: Kubernetes schedules whole nvidia.com/gpu devices", key, r.GPUs)
		}
		list["nvidia.com/gpu"] = *resource.NewQuantity(int64(r.GPUs), resource.DecimalSI)
	}
	if len(list) == 0 {
		return corev1.ResourceRequirements{}, nil
	}
	return corev1.ResourceRequirements{Requests: list, Limits: list.DeepCopy()}, nil
}

func secretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key,
	}}}
}

func storeEnv(cfg *config.Config) []corev1.EnvVar {
	return []corev1.EnvVar{
		secretEnv("AWS_ACCESS_KEY_ID", cfg.Cluster.Secret, SecretKeyAccessKey),
		secretEnv("AWS_SECRET_ACCESS_KEY", cfg.Cluster.Secret, SecretKeySecretKey),
	}
}

func podSecurity() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr(true),
		RunAsUser:      ptr(int64(nonRootUID)),
		RunAsGroup:     ptr(int64(nonRootGID)),
		FSGroup:        ptr(int64(nonRootGID)),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func containerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// volumes: the ConfigMap, /dev/shm in memory, and the token.
func volumes(cfg *config.Config, run string) ([]corev1.Volume, []corev1.VolumeMount) {
	shm := &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}
	if cfg.Cluster.ShmSize != "" {
		q := resource.MustParse(cfg.Cluster.ShmSize) // checked in checkLaunchable
		shm.SizeLimit = &q
	}
	vols := []corev1.Volume{
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMapName(run)},
		}}},
		{Name: "shm", VolumeSource: corev1.VolumeSource{EmptyDir: shm}},
		{Name: "token", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  cfg.Cluster.Secret,
			Items:       []corev1.KeyToPath{{Key: SecretKeyToken, Path: "token"}},
			DefaultMode: ptr(int32(0o440)),
		}}},
	}
	mounts := []corev1.VolumeMount{
		{Name: "config", MountPath: ConfigDir, ReadOnly: true},
		{Name: "shm", MountPath: "/dev/shm"},
		{Name: "token", MountPath: TokenDir, ReadOnly: true},
	}
	return vols, mounts
}

func podLabels(run, role string) map[string]string {
	return map[string]string{LabelName: "thinkgen", LabelRun: run, LabelRole: role}
}

func headTemplate(cfg *config.Config, run string) (corev1.PodTemplateSpec, error) {
	res, err := resources("cluster.head", cfg.Cluster.Head)
	if err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	vols, mounts := volumes(cfg, run)
	t := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: podLabels(run, "head")},
		Spec: corev1.PodSpec{
			ServiceAccountName: cfg.Cluster.ServiceAccount,
			SecurityContext:    podSecurity(),
			Volumes:            vols,
			Containers: []corev1.Container{{
				Name:  "ray-head",
				Image: cfg.Cluster.Image,
				Ports: []corev1.ContainerPort{
					{Name: "gcs-server", ContainerPort: 6379, Protocol: corev1.ProtocolTCP},
					{Name: "dashboard", ContainerPort: 8265, Protocol: corev1.ProtocolTCP},
					{Name: "client", ContainerPort: 10001, Protocol: corev1.ProtocolTCP},
					{Name: "controller", ContainerPort: ControllerPort, Protocol: corev1.ProtocolTCP},
					{Name: "rendezvous", ContainerPort: RendezvousPort, Protocol: corev1.ProtocolTCP},
				},
				Env:             storeEnv(cfg),
				Resources:       res,
				VolumeMounts:    mounts,
				SecurityContext: containerSecurity(),
			}},
		},
	}
	place(&t.Spec, cfg.Cluster.Head)
	return t, nil
}

func workerGroup(cfg *config.Config, run, role string) (rayv1.WorkerGroupSpec, error) {
	var (
		r     config.Resources
		count int
	)
	switch role {
	case "rollout":
		r, count = cfg.Cluster.Rollout, cfg.Cluster.Workers.Rollout
	case "learner":
		r, count = cfg.Cluster.Learner, cfg.Cluster.Workers.Learner
	case "reward":
		r, count = cfg.Cluster.Reward, cfg.Cluster.Workers.Reward
	}
	res, err := resources("cluster."+role, r)
	if err != nil {
		return rayv1.WorkerGroupSpec{}, err
	}
	// The token reaches the worker as a file, never in its environment.
	vols, mounts := volumes(cfg, run)
	env := append(storeEnv(cfg), corev1.EnvVar{Name: "THINKGEN_TOKEN_FILE", Value: TokenFile})
	n := int32(count)
	g := rayv1.WorkerGroupSpec{
		GroupName:      role,
		NumOfHosts:     1,
		Replicas:       ptr(n),
		MinReplicas:    ptr(n),
		MaxReplicas:    ptr(n),
		RayStartParams: map[string]string{},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{
				Labels: podLabels(run, role),
				// KubeRay keeps our command and hands its `ray start` in
				// $KUBERAY_GEN_RAY_START_CMD.
				Annotations: map[string]string{"ray.io/overwrite-container-cmd": "true"},
			},
			Spec: corev1.PodSpec{
				ServiceAccountName: cfg.Cluster.ServiceAccount,
				SecurityContext:    podSecurity(),
				Volumes:            vols,
				Containers: []corev1.Container{{
					Name:            "ray-worker",
					Image:           cfg.Cluster.Image,
					Command:         []string{"/bin/bash", "-c"},
					Args:            []string{WorkerScript(run, role)},
					Env:             env,
					Resources:       res,
					VolumeMounts:    mounts,
					SecurityContext: containerSecurity(),
				}},
			},
		},
	}
	place(&g.Template.Spec, r)
	return g, nil
}

// Node labels that NVIDIA's GPU feature discovery puts on GPU nodes.
const (
	LabelGPUProduct = "nvidia.com/gpu.product" // e.g. NVIDIA-A100-SXM4-80GB
	LabelGPUMemory  = "nvidia.com/gpu.memory"  // MiB per GPU, e.g. 81920
)

// place puts a role's Kubernetes placement into its pod spec: the node
// selector, a required node affinity for the GPU product and memory
// labels, the tolerations, the priority class, and the role's own
// /dev/shm bound when it has one. Its values were checked by
// checkLaunchable.
func place(spec *corev1.PodSpec, r config.Resources) {
	if len(r.NodeSelector) > 0 {
		spec.NodeSelector = maps.Clone(r.NodeSelector)
	}
	var match []corev1.NodeSelectorRequirement
	if len(r.GPUProducts) > 0 {
		match = append(match, corev1.NodeSelectorRequirement{
			Key: LabelGPUProduct, Operator: corev1.NodeSelectorOpIn, Values: slices.Clone(r.GPUProducts),
		})
	}
	if r.GPUMemoryMiB > 0 {
		// Gt is strict: at least N MiB is more than N-1.
		match = append(match, corev1.NodeSelectorRequirement{
			Key: LabelGPUMemory, Operator: corev1.NodeSelectorOpGt, Values: []string{strconv.Itoa(r.GPUMemoryMiB - 1)},
		})
	}
	if len(match) > 0 {
		spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: match}},
			},
		}}
	}
	for _, t := range r.Tolerations {
		op := corev1.TolerationOpEqual
		if t.Operator == "Exists" {
			op = corev1.TolerationOpExists
		}
		spec.Tolerations = append(spec.Tolerations, corev1.Toleration{
			Key: t.Key, Operator: op, Value: t.Value, Effect: corev1.TaintEffect(t.Effect),
		})
	}
	spec.PriorityClassName = r.PriorityClass
	if r.ShmSize != "" {
		q := resource.MustParse(r.ShmSize) // checked in checkLaunchable
		for i := range spec.Volumes {
			if ed := spec.Volumes[i].EmptyDir; ed != nil && ed.Medium == corev1.StorageMediumMemory {
				ed.SizeLimit = &q
			}
		}
	}
}

// checkPlacement checks the Kubernetes placement keys of one role beyond
// what config.Validate checks: exact label-key and quantity syntax.
func checkPlacement(key string, r config.Resources) []string {
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(r.NodeSelector)) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("%s.node_selector key %q: %s", key, k, strings.Join(errs, "; ")))
		}
		if errs := validation.IsValidLabelValue(r.NodeSelector[k]); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("%s.node_selector.%s %q: %s", key, k, r.NodeSelector[k], strings.Join(errs, "; ")))
		}
	}
	for i, t := range r.Tolerations {
		if t.Key == "" {
			continue
		}
		if errs := validation.IsQualifiedName(t.Key); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("%s.tolerations[%d].key %q: %s", key, i, t.Key, strings.Join(errs, "; ")))
		}
	}
	if r.ShmSize != "" {
		if _, err := resource.ParseQuantity(r.ShmSize); err != nil {
			problems = append(problems, fmt.Sprintf("%s.shm_size %q: %v", key, r.ShmSize, err))
		}
	}
	return problems
}

// WorkerScript is the shell command of a worker pod: join the Ray cluster
// (KubeRay's generated `ray start`, without --block so that it returns once
// the raylet runs), then become the thinkgen worker of role.
func WorkerScript(run, role string) string {
	return fmt.Sprintf(`ulimit -n 65536; ${KUBERAY_GEN_RAY_START_CMD/--block/} && exec thinkgen worker --role %s --controller %s --config %s`,
		role, ControllerURL(run), ConfigFile)
}

func submitterTemplate(cfg *config.Config, run string) *corev1.PodTemplateSpec {
	small := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("200m"),
		corev1.ResourceMemory: resource.MustParse("256Mi"),
	}
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: podLabels(run, "submitter")},
		Spec: corev1.PodSpec{
			ServiceAccountName: cfg.Cluster.ServiceAccount,
			RestartPolicy:      corev1.RestartPolicyNever,
			SecurityContext:    podSecurity(),
			Containers: []corev1.Container{{
				// KubeRay fills in `ray job submit … -- <entrypoint>`.
				Name:            "ray-job-submitter",
				Image:           cfg.Cluster.Image,
				Resources:       corev1.ResourceRequirements{Requests: small, Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}},
				SecurityContext: containerSecurity(),
			}},
		},
	}
}

// YAML renders the objects as one multi-document YAML stream (ConfigMap,
// then RayJob), without status and server-set metadata, as `kubectl apply
// -f` takes it.
func (o *Objects) YAML() ([]byte, error) {
	var b strings.Builder
	for i, obj := range []any{o.ConfigMap, o.RayJob} {
		data, err := manifest(obj)
		if err != nil {
			return nil, fmt.Errorf("render %T: %w", obj, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(data)
	}
	return []byte(b.String()), nil
}

// manifest marshals an API object without its status and its
// creationTimestamp, which the API types always marshal (empty).
func manifest(obj any) ([]byte, error) {
	data, err := yaml.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	dropNullTimestamps(m)
	return yaml.Marshal(m)
}

// dropNullTimestamps removes every "creationTimestamp: null", also those
// of the pod templates.
func dropNullTimestamps(v any) {
	switch v := v.(type) {
	case map[string]any:
		if ts, ok := v["creationTimestamp"]; ok && ts == nil {
			delete(v, "creationTimestamp")
		}
		for _, e := range v {
			dropNullTimestamps(e)
		}
	case []any:
		for _, e := range v {
			dropNullTimestamps(e)
		}
	}
}

func ptr[T any](v T) *T { return &v }
