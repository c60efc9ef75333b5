package kuberay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	rayclient "github.com/ray-project/kuberay/ray-operator/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/yaml"
)

// Sentinel errors of the client.
var (
	// ErrExists means a RayJob of the run's name is already there.
	ErrExists = errors.New("thinkgen/kuberay: RayJob already exists")
	// ErrNotFound means the run has no RayJob (never launched, or stopped).
	ErrNotFound = errors.New("thinkgen/kuberay: RayJob not found")
	// ErrChanged means the run's RayJob exists with another configuration;
	// the error names the keys that differ.
	ErrChanged = errors.New("thinkgen/kuberay: the run is launched with another configuration")
)

// Client talks to one Kubernetes cluster: the KubeRay clientset for RayJobs
// and client-go for ConfigMaps and pod logs.
type Client struct {
	Ray  rayclient.Interface
	Kube kubernetes.Interface
}

// RESTConfig loads the cluster's address and credentials: the kubeconfig
// file given (the --kubeconfig flag), else the files in $KUBECONFIG, else
// ~/.kube/config, else the in-cluster service account.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return rc, nil
}

// NewClient returns a client of the cluster rc points at.
func NewClient(rc *rest.Config) (*Client, error) {
	ray, err := rayclient.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kuberay client: %w", err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &Client{Ray: ray, Kube: kube}, nil
}

// Applied says what Apply did.
type Applied int

const (
	// Created: the run had no RayJob; its ConfigMap and RayJob were made.
	Created Applied = iota
	// Unchanged: the run's RayJob exists with the same configuration;
	// nothing was changed.
	Unchanged
	// Replaced: the run's RayJob existed with another configuration and
	// was deleted and made anew (replace).
	Replaced
)

func (a Applied) String() string {
	switch a {
	case Created:
		return "created"
	case Unchanged:
		return "unchanged"
	case Replaced:
		return "replaced"
	}
	return fmt.Sprintf("Applied(%d)", int(a))
}

// Apply launches the run idempotently. Without a RayJob of the run's name
// it creates (or updates) the ConfigMap, then creates the RayJob. With one
// it compares: the same configuration and RayJob spec is a no-op
// (Unchanged); another one is refused with ErrChanged naming the keys that
// differ (Changes), unless replace is set: then the old RayJob is deleted
// (its Ray cluster goes with it), Apply waits until it is gone and creates
// the new one. The run's state is in the store either way.
func (c *Client) Apply(ctx context.Context, o *Objects, replace bool) (Applied, error) {
	cm, job := o.ConfigMap, o.RayJob
	jobs := c.Ray.RayV1().RayJobs(job.Namespace)
	how := Created
	old, err := jobs.Get(ctx, job.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return 0, fmt.Errorf("get rayjob %s/%s: %w", job.Namespace, job.Name, err)
	case old.DeletionTimestamp != nil:
		// A stop is under way: let it finish, then launch anew.
		if err := c.deleteAndWait(ctx, job.Namespace, job.Name); err != nil {
			return 0, err
		}
	default:
		oldCM, err := c.Kube.CoreV1().ConfigMaps(cm.Namespace).Get(ctx, cm.Name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("get configmap %s/%s: %w", cm.Namespace, cm.Name, err)
		}
		if apierrors.IsNotFound(err) {
			oldCM = nil
		}
		changes := Changes(&Objects{ConfigMap: oldCM, RayJob: old}, o)
		if len(changes) == 0 {
			return Unchanged, nil
		}
		if !replace {
			return 0, fmt.Errorf("run %s in namespace %s: %w: %s differ (--replace deletes the running RayJob and launches this one; the run resumes from its store)",
				job.Name, job.Namespace, ErrChanged, strings.Join(changes, ", "))
		}
		if err := c.deleteAndWait(ctx, job.Namespace, job.Name); err != nil {
			return 0, err
		}
		how = Replaced
	}
	cms := c.Kube.CoreV1().ConfigMaps(cm.Namespace)
	_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var old *corev1.ConfigMap
		old, err = cms.Get(ctx, cm.Name, metav1.GetOptions{})
		if err == nil {
			old.Data, old.Labels = cm.Data, cm.Labels
			_, err = cms.Update(ctx, old, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return 0, fmt.Errorf("apply configmap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	_, err = jobs.Create(ctx, job, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return 0, fmt.Errorf("create rayjob %s/%s: %w (another launch made it meanwhile)", job.Namespace, job.Name, ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("create rayjob %s/%s: %w", job.Namespace, job.Name, err)
	}
	return how, nil
}

// deleteAndWait deletes a RayJob and polls until the API server no longer
// has it (the operator's finalizer removes its Ray cluster first).
func (c *Client) deleteAndWait(ctx context.Context, namespace, name string) error {
	jobs := c.Ray.RayV1().RayJobs(namespace)
	bg := metav1.DeletePropagationBackground
	if err := jobs.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete rayjob %s/%s: %w", namespace, name, err)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := jobs.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("wait for rayjob %s/%s to go: %w", namespace, name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for rayjob %s/%s to go: %w", namespace, name, ctx.Err())
		case <-tick.C:
		}
	}
}

// Changes names what differs between a launched run (old, as read back;
// its ConfigMap may be nil) and a new launch of it: the configuration keys
// whose values differ (dotted, e.g. "grpo.group",
// "cluster.rollout.tolerations"), then "entrypoint" when the controller's
// command line differs (--resume, --eval-rows) and "rayjob spec" when
// anything else in the RayJob does (another thinkgen version built it).
// Nothing differs when it is empty.
func Changes(old, new *Objects) []string {
	var keys []string
	if old.ConfigMap == nil {
		keys = append(keys, "config.yaml (the ConfigMap "+new.ConfigMap.Name+" is missing)")
	} else {
		keys = append(keys, yamlChanges(old.ConfigMap.Data[configKey], new.ConfigMap.Data[configKey])...)
	}
	a, b := old.RayJob.Spec, new.RayJob.Spec
	if a.Entrypoint != b.Entrypoint {
		keys = append(keys, "entrypoint")
		a.Entrypoint = b.Entrypoint
	}
	if len(keys) == 0 && !apiequality.Semantic.DeepEqual(a, b) {
		keys = append(keys, "rayjob spec")
	}
	return keys
}

// yamlChanges lists the dotted keys whose values differ between two YAML
// documents; lists compare whole. A document that does not parse counts
// as one change, "config.yaml".
func yamlChanges(a, b string) []string {
	var ma, mb map[string]any
	if yaml.Unmarshal([]byte(a), &ma) != nil || yaml.Unmarshal([]byte(b), &mb) != nil {
		if a == b {
			return nil
		}
		return []string{"config.yaml"}
	}
	fa, fb := map[string]any{}, map[string]any{}
	flatten("", ma, fa)
	flatten("", mb, fb)
	var keys []string
	for k, v := range fa {
		if w, ok := fb[k]; !ok || !reflect.DeepEqual(v, w) {
			keys = append(keys, k)
		}
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			flatten(key, sub, out)
			continue
		}
		out[key] = v
	}
}

// Status is what KubeRay reports about a run's RayJob.
type Status struct {
	Run string
	// JobStatus is the Ray job's state (PENDING, RUNNING, SUCCEEDED, …);
	// empty until KubeRay submitted it.
	JobStatus rayv1.JobStatus
	// Deployment is the RayJob's own state (Initializing, Running,
	// Complete, Failed, …).
	Deployment rayv1.JobDeploymentStatus
	Reason     rayv1.JobFailedReason
	Message    string
	// RayCluster is the name of the RayCluster KubeRay created for the job.
	RayCluster string
	// Dashboard is the Ray dashboard's address inside the cluster.
	Dashboard string
	JobID     string
	// Start and End of the job; zero when not (yet) known.
	Start, End time.Time
}

func statusOf(job *rayv1.RayJob) Status {
	s := job.Status
	st := Status{
		Run: job.Name, JobStatus: s.JobStatus, Deployment: s.JobDeploymentStatus,
		Reason: s.Reason, Message: s.Message, RayCluster: s.RayClusterName,
		Dashboard: s.DashboardURL, JobID: s.JobId,
	}
	if s.StartTime != nil {
		st.Start = s.StartTime.Time
	}
	if s.EndTime != nil {
		st.End = s.EndTime.Time
	}
	return st
}

// Terminal reports whether the RayJob will not change any more: its Ray
// job ended (SUCCEEDED, FAILED, STOPPED) or its deployment did (Complete,
// Failed, ValidationFailed).
func (s Status) Terminal() bool {
	return rayv1.IsJobTerminal(s.JobStatus) || rayv1.IsJobDeploymentTerminal(s.Deployment) ||
		s.Deployment == rayv1.JobDeploymentStatusValidationFailed
}

// Failed reports whether the run ended without success.
func (s Status) Failed() bool {
	return s.Terminal() && s.JobStatus != rayv1.JobStatusSucceeded
}

// String is one line: "run r: job RUNNING, deployment Running (cluster r-abcde)".
func (s Status) String() string {
	or := func(v, none string) string {
		if v == "" {
			return none
		}
		return v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "run %s: job %s, deployment %s", s.Run, or(string(s.JobStatus), "(not submitted)"), or(string(s.Deployment), "(new)"))
	if s.RayCluster != "" {
		fmt.Fprintf(&b, " (cluster %s)", s.RayCluster)
	}
	if s.Reason != "" || s.Message != "" {
		fmt.Fprintf(&b, ": %s", strings.TrimSpace(string(s.Reason)+" "+s.Message))
	}
	return b.String()
}

// Status reads the run's RayJob status.
func (c *Client) Status(ctx context.Context, namespace, run string) (Status, error) {
	job, err := c.Ray.RayV1().RayJobs(namespace).Get(ctx, run, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Status{}, fmt.Errorf("run %s in namespace %s: %w", run, namespace, ErrNotFound)
	}
	if err != nil {
		return Status{}, fmt.Errorf("get rayjob %s/%s: %w", namespace, run, err)
	}
	return statusOf(job), nil
}

// Follow watches the run's RayJob and calls report with its status, once
// now and again at every change, until the status is terminal (returned)
// or ctx ends. The watch is re-established (from a fresh list) when the
// API server closes it. A RayJob deleted meanwhile ends Follow with
// ErrNotFound.
func (c *Client) Follow(ctx context.Context, namespace, run string, report func(Status)) (Status, error) {
	jobs := c.Ray.RayV1().RayJobs(namespace)
	byName := fields.OneTermEqualSelector("metadata.name", run).String()
	lw := &cache.ListWatch{
		ListFunc: func(opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = byName
			return jobs.List(ctx, opts)
		},
		WatchFunc: func(opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = byName
			return jobs.Watch(ctx, opts)
		},
	}
	var last *Status
	precondition := func(store cache.Store) (bool, error) {
		if _, ok, err := store.GetByKey(namespace + "/" + run); err != nil || !ok {
			return false, fmt.Errorf("run %s in namespace %s: %w", run, namespace, ErrNotFound)
		}
		return false, nil
	}
	ev, err := watchtools.UntilWithSync(ctx, lw, &rayv1.RayJob{}, precondition, func(ev watch.Event) (bool, error) {
		job, ok := ev.Object.(*rayv1.RayJob)
		if !ok {
			return false, nil
		}
		if ev.Type == watch.Deleted {
			return false, fmt.Errorf("run %s in namespace %s was deleted: %w", run, namespace, ErrNotFound)
		}
		st := statusOf(job)
		if last == nil || !sameStatus(*last, st) {
			report(st)
			last = &st
		}
		return st.Terminal(), nil
	})
	if err != nil {
		if last != nil && ctx.Err() != nil {
			return *last, fmt.Errorf("follow run %s: %w", run, ctx.Err())
		}
		return Status{}, fmt.Errorf("follow run %s: %w", run, err)
	}
	return statusOf(ev.Object.(*rayv1.RayJob)), nil
}

func sameStatus(a, b Status) bool {
	return a.JobStatus == b.JobStatus && a.Deployment == b.Deployment && a.Reason == b.Reason &&
		a.Message == b.Message && a.RayCluster == b.RayCluster
}

// Stop deletes the run's RayJob (KubeRay deletes the RayCluster and the
// submitter Job it owns; pods get their grace period) and its ConfigMap.
// It does not suspend: the run's state is in the store, and a new launch
// with Resume continues it.
func (c *Client) Stop(ctx context.Context, namespace, run string) error {
	bg := metav1.DeletePropagationBackground
	err := c.Ray.RayV1().RayJobs(namespace).Delete(ctx, run, metav1.DeleteOptions{PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		err = fmt.Errorf("run %s in namespace %s: %w", run, namespace, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("delete rayjob %s/%s: %w", namespace, run, err)
	}
	cmErr := c.Kube.CoreV1().ConfigMaps(namespace).Delete(ctx, ConfigMapName(run), metav1.DeleteOptions{})
	if cmErr != nil && !apierrors.IsNotFound(cmErr) {
		return fmt.Errorf("delete configmap %s/%s: %w", namespace, ConfigMapName(run), cmErr)
	}
	return err
}

// LogOptions choose whose logs Logs streams.
type LogOptions struct {
	// Role is "head" (the Ray head: `ray start` and Ray's own output; the
	// default), "submitter" (KubeRay's submitter pod, which tails the
	// entrypoint: the controller's log), or a worker role (rollout,
	// learner, reward: the thinkgen worker's own output).
	Role string
	// Pod picks one pod by name when the role has several.
	Pod string
	// Follow keeps streaming until the container ends or ctx does.
	Follow bool
	// Tail is the number of last lines to start from; 0 means all.
	Tail int64
}

// Pods lists the run's pods of a role (labels thinkgen.io/run and
// thinkgen.io/role, which KubeRay copies from the templates to the pods),
// newest first.
func (c *Client) Pods(ctx context.Context, namespace, run, role string) ([]corev1.Pod, error) {
	sel := labels.SelectorFromSet(labels.Set{LabelRun: run, LabelRole: role}).String()
	list, err := c.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list pods of run %s (%s): %w", run, sel, err)
	}
	pods := list.Items
	sort.SliceStable(pods, func(i, j int) bool {
		ti, tj := pods[i].CreationTimestamp, pods[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return tj.Before(&ti)
		}
		return pods[i].Name < pods[j].Name
	})
	return pods, nil
}

// Logs copies the logs of one pod of the run to w: the newest pod of
// opts.Role, or opts.Pod. The API server fetches them from the node's
// kubelet.
func (c *Client) Logs(ctx context.Context, namespace, run string, opts LogOptions, w io.Writer) error {
	role := opts.Role
	if role == "" {
		role = "head"
	}
	pods, err := c.Pods(ctx, namespace, run, role)
	if err != nil {
		return err
	}
	if len(pods) == 0 {
		return fmt.Errorf("run %s has no %s pod in namespace %s (yet)", run, role, namespace)
	}
	pod := pods[0]
	if opts.Pod != "" {
		found := false
		var names []string
		for _, p := range pods {
			names = append(names, p.Name)
			if p.Name == opts.Pod {
				pod, found = p, true
			}
		}
		if !found {
			return fmt.Errorf("run %s: no %s pod %q (have %s)", run, role, opts.Pod, strings.Join(names, ", "))
		}
	}
	plo := &corev1.PodLogOptions{Container: pod.Spec.Containers[0].Name, Follow: opts.Follow}
	if opts.Tail > 0 {
		plo.TailLines = &opts.Tail
	}
	rc, err := c.Kube.CoreV1().Pods(namespace).GetLogs(pod.Name, plo).Stream(ctx)
	if err != nil {
		return fmt.Errorf("logs of pod %s/%s: %w", namespace, pod.Name, err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs of pod %s/%s: %w", namespace, pod.Name, err)
	}
	return nil
}
