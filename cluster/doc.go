// Package cluster places workers on a cluster: a client of Ray's Job
// Submission API that runs each worker as a Ray job with its GPU and CPU
// requests, and the builder of the KubeRay RayJob that creates the Ray
// cluster itself.
package cluster
