// Package kubetest starts a real kube-apiserver and etcd for tests
// (controller-runtime's envtest) with KubeRay's CRDs installed, from the
// binaries in KUBEBUILDER_ASSETS (scripts/kube-assets.sh). Without them the
// test is skipped, or fails under CI (internal/testenv).
package kubetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/thinkgen/thinkgen/internal/testenv"
)

// RayOperatorModule is the module whose config/crd/bases hold the CRDs.
const RayOperatorModule = "github.com/ray-project/kuberay/ray-operator"

// CRDDir returns config/crd/bases of the ray-operator module this
// repository requires, in the module cache.
func CRDDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", RayOperatorModule).Output()
	if err != nil {
		t.Fatalf("locate %s: go list -m: %v", RayOperatorModule, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatalf("locate %s: not in the module cache (go mod download %s)", RayOperatorModule, RayOperatorModule)
	}
	return filepath.Join(dir, "config", "crd", "bases")
}

// Cluster is a running envtest control plane.
type Cluster struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Kubeconfig is a kubeconfig file with the same credentials, for code
	// that loads its own (--kubeconfig, $KUBECONFIG).
	Kubeconfig string
}

// Option changes how Start runs the API server.
type Option func(*environment)

type environment struct {
	apiserverArgs map[string]string
}

// Start runs kube-apiserver and etcd with the RayJob, RayCluster and
// RayService CRDs installed, and stops them when the test ends. There is
// no controller manager, scheduler or kubelet: objects are stored and
// validated, nothing reconciles them ([Kubelet] serves pod logs).
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	// envtest logs through controller-runtime's logger; left unset, it
	// prints a stack trace into the test output after 30 s. Its messages
	// (CRDs installed, control plane started) are not needed.
	ctrllog.SetLogger(logr.Discard())
	env := &envtest.Environment{
		BinaryAssetsDirectory: testenv.KubeAssets(t),
		CRDDirectoryPaths:     []string{CRDDir(t)},
		ErrorIfCRDPathMissing: true,
		// Generous: the machine may be busy (a training run, other tests).
		CRDInstallOptions:        envtest.CRDInstallOptions{MaxTime: 2 * time.Minute},
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	var e environment
	e.apiserverArgs = map[string]string{}
	for _, o := range opts {
		o(&e)
	}
	for k, v := range e.apiserverArgs {
		env.ControlPlane.GetAPIServer().Configure().Set(k, v)
	}
	rc, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd (envtest): %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	admin, err := env.AddUser(envtest.User{Name: "thinkgen-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("envtest admin user: %v", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatalf("envtest kubeconfig: %v", err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return &Cluster{Config: rc, Kubeconfig: path}
}

// MountOf returns c's mount of the named volume, or nil.
func MountOf(c corev1.Container, volume string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == volume {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}
