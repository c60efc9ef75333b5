package kubetest

import (
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Kubelet stands in for the kubelet of one node: an HTTPS server on
// 127.0.0.1 that answers the container-log endpoint
// (/containerLogs/<namespace>/<pod>/<container>) to which the API server
// proxies a pod's log subresource (GET …/pods/<pod>/log). envtest runs no
// kubelet, so this is how a test reads pod logs through the real API server
// and client-go. Pass [Kubelet.Option] to [Start] (the API server then
// trusts its certificate) and register the node with [Kubelet.Register].
type Kubelet struct {
	srv *httptest.Server
	ca  string // PEM file of the server's certificate

	mu       sync.Mutex
	logs     map[string]func(w http.ResponseWriter, q url.Values) // namespace/pod/container → writer
	requests []url.URL
}

// NewKubelet starts the server; it stops when the test ends.
func NewKubelet(t testing.TB) *Kubelet {
	t.Helper()
	k := &Kubelet{logs: map[string]func(http.ResponseWriter, url.Values){}}
	k.srv = httptest.NewTLSServer(http.HandlerFunc(k.serve))
	t.Cleanup(k.srv.Close)
	k.ca = filepath.Join(t.TempDir(), "kubelet-ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.srv.Certificate().Raw})
	if err := os.WriteFile(k.ca, block, 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// Option makes the API server trust the kubelet's certificate
// (--kubelet-certificate-authority).
func (k *Kubelet) Option() Option {
	return func(e *environment) { e.apiserverArgs["kubelet-certificate-authority"] = k.ca }
}

// Logs sets what the container's log endpoint writes: write gets the
// response and the request's query (follow, tailLines, …).
func (k *Kubelet) Logs(namespace, pod, container string, write func(w http.ResponseWriter, q url.Values)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.logs[namespace+"/"+pod+"/"+container] = write
}

// Requests returns the URLs the kubelet was asked for, in order.
func (k *Kubelet) Requests() []url.URL {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]url.URL(nil), k.requests...)
}

func (k *Kubelet) serve(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.requests = append(k.requests, *r.URL)
	write := k.logs[strings.TrimPrefix(r.URL.Path, "/containerLogs/")]
	k.mu.Unlock()
	if !strings.HasPrefix(r.URL.Path, "/containerLogs/") || write == nil {
		http.Error(w, "no such container", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	write(w, r.URL.Query())
}

// Register creates the node name whose only address is 127.0.0.1 and
// whose kubelet port is this server's: pods bound to it (spec.nodeName)
// have their logs served here.
func (k *Kubelet) Register(ctx context.Context, t testing.TB, cs kubernetes.Interface, name string) {
	t.Helper()
	_, portText, err := net.SplitHostPort(k.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portText)
	node, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("node %s status: %v", name, err)
	}
}

// String is the server's address, for messages.
func (k *Kubelet) String() string { return fmt.Sprintf("fake kubelet at %s", k.srv.URL) }
