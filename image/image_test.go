package image

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/storage"
	"github.com/thinkgen/thinkgen/storage/runs"
)

// rootfs is the unpacked image's root filesystem (THINKGEN_IMAGE), inside
// the runtime bundle that scripts/image.sh unpacks beside the OCI layout:
// <cache>/image/{bundle/{rootfs,config.json,umoci.json},oci}.
func rootfs(t *testing.T) string {
	t.Helper()
	r := os.Getenv("THINKGEN_IMAGE")
	if r == "" {
		t.Skip("THINKGEN_IMAGE is not set: `make image` builds the image, then `bash scripts/image.sh rootfs` prints the path")
	}
	if os.Geteuid() != 0 {
		t.Skip("running inside the image needs root (unshare, mount, chroot)")
	}
	if _, err := os.Stat(filepath.Join(r, "usr/local/bin/thinkgen")); err != nil {
		t.Fatalf("THINKGEN_IMAGE=%s is not the image's root filesystem: %v", r, err)
	}
	return r
}

// runtimeConfig is what the test reads of the bundle's config.json (the
// OCI runtime spec umoci derived from the image's configuration).
type runtimeConfig struct {
	Process struct {
		User struct {
			UID uint32 `json:"uid"`
			GID uint32 `json:"gid"`
		} `json:"user"`
		Env  []string `json:"env"`
		Cwd  string   `json:"cwd"`
		Args []string `json:"args"`
	} `json:"process"`
}

// exposedPorts reads the image configuration's ExposedPorts through the
// manifest the bundle was unpacked from.
func exposedPorts(t *testing.T, bundle string) []string {
	t.Helper()
	var u struct {
		From struct {
			Walk []struct {
				Digest string `json:"digest"`
			} `json:"descriptor_walk"`
		} `json:"from_descriptor_path"`
	}
	testutil.ReadJSON(t, filepath.Join(bundle, "umoci.json"), &u)
	if len(u.From.Walk) == 0 {
		t.Fatal("umoci.json names no manifest")
	}
	blob := func(digest string) string {
		return filepath.Join(bundle, "..", "oci", "blobs", strings.Replace(digest, ":", "/", 1))
	}
	var manifest struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	testutil.ReadJSON(t, blob(u.From.Walk[len(u.From.Walk)-1].Digest), &manifest)
	var img struct {
		Config struct {
			ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		} `json:"config"`
	}
	testutil.ReadJSON(t, blob(manifest.Config.Digest), &img)
	var ports []string
	for p := range img.Config.ExposedPorts {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports
}

// dockerfile reads the runtime stage's ENV, USER, WORKDIR and EXPOSE.
func dockerfile(t *testing.T) (env map[string]string, user, workdir string, ports []string) {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env = map[string]string{}
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	for _, l := range lines {
		fields := strings.Fields(l)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "ENV":
			for _, kv := range fields[1:] {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case "USER":
			user = fields[1]
		case "WORKDIR":
			workdir = fields[1] // the last one: the runtime stage's
		case "EXPOSE":
			ports = append(ports, fields[1:]...)
		}
	}
	slices.Sort(ports)
	return env, user, workdir, ports
}

// TestImageMatchesDockerfile: the image make image built has the user,
// environment, working directory and ports the Dockerfile declares.
func TestImageMatchesDockerfile(t *testing.T) {
	r := rootfs(t)
	bundle := filepath.Dir(r)
	var rc runtimeConfig
	testutil.ReadJSON(t, filepath.Join(bundle, "config.json"), &rc)
	env, user, workdir, ports := dockerfile(t)
	if got := fmt.Sprintf("%d:%d", rc.Process.User.UID, rc.Process.User.GID); got != user || user != "1000:100" {
		t.Errorf("image user %s, Dockerfile USER %s; want 1000:100 (the RayJob's pods run as uid 1000)", got, user)
	}
	if rc.Process.Cwd != workdir {
		t.Errorf("image working directory %s, Dockerfile WORKDIR %s", rc.Process.Cwd, workdir)
	}
	imageEnv := map[string]string{}
	for _, kv := range rc.Process.Env {
		k, v, _ := strings.Cut(kv, "=")
		imageEnv[k] = v
	}
	for k, v := range env {
		if imageEnv[k] != v {
			t.Errorf("image env %s=%q, Dockerfile ENV %s=%q", k, imageEnv[k], k, v)
		}
	}
	if got := exposedPorts(t, bundle); !slices.Equal(got, ports) || !slices.Contains(got, "7700/tcp") || !slices.Contains(got, "8265/tcp") {
		t.Errorf("image exposes %v, Dockerfile %v; want both with the controller's 7700 and Ray's 8265", got, ports)
	}
	// The files the Dockerfile puts in place.
	for _, p := range []string{"opt/ray/bin/ray", "opt/thinkgen/lib/libtorch_cpu.so", "usr/local/bin/thinkgen", "opt/thinkgen/base/tiny", "home/ray"} {
		if _, err := os.Stat(filepath.Join(r, p)); err != nil {
			t.Errorf("image: %v", err)
		}
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// enter runs the outer half of `run in image`: as root in new mount and PID
// namespaces it mounts /proc, /dev, a fresh /tmp and the test's work
// directory at /home/ray/work inside the root filesystem (/sys too: Ray's
// raylet reads its cgroup limits there), then chroots as
// the image's user with only the image's environment. When the inner shell
// exits, the PID namespace ends and every process it left (Ray's daemons)
// is killed; the mounts go with the mount namespace.
const enter = `set -e
r=$1 w=$2 user=$3
shift 3
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount --rbind /sys "$r/sys"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
mount --bind "$w" "$r/home/ray/work"
exec chroot --userspec="$user" "$r" /usr/bin/env -i "$@"`

// TestImageRunsTrainAsRayJob runs in the image: thinkgen doctor, a Ray head
// (ray start --head), and a two-step embedded train of configs/tiny.yaml
// submitted to it as a Ray job, as the KubeRay submitter submits the
// controller, from the base checkpoint the image ships.
func TestImageRunsTrainAsRayJob(t *testing.T) {
	r := rootfs(t)
	if testing.Short() {
		t.Skip("starts Ray and trains")
	}
	var rc runtimeConfig
	testutil.ReadJSON(t, filepath.Join(filepath.Dir(r), "config.json"), &rc)

	work := t.TempDir()
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "../configs/tiny.yaml", work).CombinedOutput(); err != nil {
		t.Fatalf("copy configs/tiny.yaml: %v: %s", err, out)
	}
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", rc.Process.User.UID, rc.Process.User.GID), work).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}

	p := freePorts(t, 9)
	dash := p[1]
	inner := fmt.Sprintf(`set -eu
cd /home/ray/work
thinkgen doctor
export RAY_USAGE_STATS_ENABLED=0
head() {
  ray start --head --node-ip-address=127.0.0.1 --port=%d \
    --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port=%d \
    --ray-client-server-port=%d --dashboard-agent-listen-port=%d --dashboard-agent-grpc-port=%d \
    --metrics-export-port=%d --runtime-env-agent-port=%d --node-manager-port=%d --object-manager-port=%d \
    --num-cpus=1 --num-gpus=0 --object-store-memory=100000000 --disable-usage-stats
}
# On a loaded machine the raylet can give up on the dashboard agent, and
# ray start on the raylet (a fixed 30 s): the raylet waits longer here, and
# a failed start is retried twice after stopping what it left (ray stop
# sees only this PID namespace).
export RAY_agent_register_timeout_ms=180000
started=
for attempt in 1 2 3; do
  if head; then started=1; break; fi
  ray stop --force || true
  sleep 2
done
if [ -z "$started" ]; then
  tail -n 30 /tmp/ray/session_latest/logs/raylet.out
  exit 1
fi
ray job submit --address http://127.0.0.1:%d --submission-id thinkgen-image-test -- \
  thinkgen train --config tiny.yaml --set run.base=/opt/thinkgen/base/tiny --run-dir store --run image-test \
  --eval-rows 0 --set 'schedule.phases=[{phase: mllm-grpo, steps: 1}, {phase: dit-grpo, steps: 1}]' \
  --set grpo.prompts_per_step=2 --set grpo.group=4 --set grpo.epochs=1 --set grpo.mini_batches=1 \
  --set flow_grpo.prompts_per_step=2 --set flow_grpo.group=4
ray job status --address http://127.0.0.1:%d thinkgen-image-test
`, p[0], dash, p[2], p[3], p[4], p[5], p[6], p[7], p[8], dash, dash)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	args := []string{"--mount", "--pid", "--fork", "--kill-child", "/bin/sh", "-c", enter, "enter",
		r, work, fmt.Sprintf("%d:%d", rc.Process.User.UID, rc.Process.User.GID)}
	args = append(args, rc.Process.Env...)
	args = append(args, "OMP_NUM_THREADS=1", "OMP_WAIT_POLICY=PASSIVE", "/bin/bash", "-c", inner)
	cmd := exec.CommandContext(ctx, "unshare", args...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("in the image (%s):\n%s", time.Since(t0).Round(time.Second), out)
	if err != nil {
		t.Fatalf("in the image: %v", err)
	}
	text := string(out)
	if !strings.Contains(text, "Ray runtime started") {
		t.Errorf("the output lacks ray start's %q", "Ray runtime started")
	}
	// ray job submit (which tails the job) and ray job status both say so.
	if n := strings.Count(text, "Job 'thinkgen-image-test' succeeded"); n != 2 {
		t.Errorf("%q %d times, want 2 (submit, status)", "Job 'thinkgen-image-test' succeeded", n)
	}

	// The run the Ray job trained is in the store, both steps committed.
	st, err := storage.Open(ctx, config.Storage{URI: filepath.Join(work, "store")})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := runs.ReadState(ctx, st, "image-test")
	if err != nil {
		t.Fatalf("the run's state: %v", err)
	}
	if rs.Committed != 2 || rs.Steps != 2 {
		t.Errorf("run image-test: %d of %d steps committed, want 2 of 2", rs.Committed, rs.Steps)
	}
}
