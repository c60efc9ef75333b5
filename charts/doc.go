// Package charts holds the Helm chart of a cluster deployment,
// charts/thinkgen, and its tests: `helm lint` and `helm template` through
// Helm's Go packages (helm.sh/helm/v3 pkg/lint and pkg/engine, pinned in
// go.mod), the rendered RayJob compared with the one package
// cluster/kuberay builds from the rendered run configuration, and every
// rendered object created in a real kube-apiserver (envtest) with KubeRay's
// CRDs and strict field validation. The package has no Go API.
//
// The chart renders, in the release's namespace:
//
//   - a ConfigMap <run>-config with config.yaml: the values' run.config with
//     storage.* (the store) and cluster.* (workers, resources, image,
//     namespace, secret) set by the chart;
//   - a Secret <release>-thinkgen with aws-access-key-id,
//     aws-secret-access-key and token, unless secrets.existingSecret names
//     one (what production should do: credentials then never pass through
//     Helm values or release history); empty values are generated once and
//     kept across upgrades (lookup);
//   - with store.minio.enabled, a single-node MinIO (Deployment, Service,
//     PersistentVolumeClaim) whose root credentials are the Secret's store
//     keys, and a Job that creates the bucket;
//   - the RayJob <run>, the same shape as `thinkgen launch` builds.
//
// All pods run as non-root users with no privilege escalation and request
// (= limit) their resources.
package charts
