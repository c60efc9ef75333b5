// Package kuberay launches a thinkgen run on Kubernetes as a KubeRay RayJob
// and follows it.
//
// # The objects
//
// [Build] turns a run configuration into two objects, both named after the
// run, in cluster.namespace:
//
//   - a ConfigMap <run>-config whose config.yaml is the resolved run
//     configuration, mounted read-only at /etc/thinkgen in every pod;
//   - a RayJob <run> whose entrypoint, run on the Ray head by KubeRay's
//     submitter, is the controller:
//     `thinkgen train --config /etc/thinkgen/config.yaml --run <run>
//     --listen 0.0.0.0:7700 --token-file /var/run/thinkgen/token --store <uri>`.
//     The head container declares port 7700, so KubeRay's head Service
//     <run>-head-svc carries it. Three worker groups, rollout, learner and
//     reward, with cluster.workers.* replicas and cluster.* resources
//     (requests = limits; GPUs as nvidia.com/gpu), each run
//     `thinkgen worker --role R --controller http://<run>-head-svc:7700
//     --config /etc/thinkgen/config.yaml` after joining the Ray cluster:
//     the pod template sets KubeRay's ray.io/overwrite-container-cmd
//     annotation and the container runs KubeRay's generated `ray start`
//     command (from $KUBERAY_GEN_RAY_START_CMD) without --block, then execs
//     the worker.
//
// Secrets never appear in either object. Every pod takes AWS_ACCESS_KEY_ID
// and AWS_SECRET_ACCESS_KEY from the Secret cluster.secret (keys
// [SecretKeyAccessKey], [SecretKeySecretKey]) through secretKeyRef. The
// token never travels in an environment variable: the head and every worker
// mount the Secret's key [SecretKeyToken] alone as /var/run/thinkgen/token
// and the workers find it through THINKGEN_TOKEN_FILE. storage.credentials_file is
// cleared in the ConfigMap's copy of the configuration. Pods run as a
// non-root user (uid 1000, the Ray images' "ray" user) with no privilege
// escalation and all capabilities dropped, and mount a memory-backed
// emptyDir at /dev/shm (cluster.shm_size, or the role's shm_size).
//
// Each role's pods carry its Kubernetes placement from cluster.<role>:
// node_selector, tolerations, priority_class, and a required node affinity
// on the GPU feature discovery labels [LabelGPUProduct] (gpu_products) and
// [LabelGPUMemory] (gpu_memory_mib, at least).
//
// # The life of a launch
//
//  1. [Build] the objects (pure: no cluster needed; [Objects.YAML] prints
//     them for `thinkgen launch --dry-run`).
//  2. [Client.Apply] creates or updates the ConfigMap, then creates the
//     RayJob. It is idempotent: a RayJob of that name with the same
//     configuration is left alone ([Unchanged]); one with another is
//     refused with [ErrChanged] naming the keys that differ ([Changes]),
//     or, with replace, deleted and made anew ([Replaced]).
//  3. [Client.Status] reads the RayJob's status (JobStatus,
//     JobDeploymentStatus, reason, message); [Client.Follow] watches it and
//     reports every change until it is terminal.
//  4. [Client.Logs] streams the logs of the head pod (Ray's own output) or
//     of KubeRay's submitter pod, which tails the entrypoint: the
//     controller's log lines.
//  5. [Client.Stop] deletes the RayJob (KubeRay then deletes its RayCluster
//     and submitter Job, which it owns) and the ConfigMap. Stop deletes
//     rather than suspends: the run's state is in the store, and the next
//     launch continues it on a fresh Ray cluster (the entrypoint runs
//     thinkgen train --resume-if-exists, or --resume with
//     [Options].Resume).
//
// The RayJob spells out the values the API server would default
// (backoffLimit 0, TCP ports, numOfHosts 1), so that what is read back
// equals what was built; tests check that against a real kube-apiserver
// with KubeRay's CRDs (envtest, internal/kubetest).
package kuberay
