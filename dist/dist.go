package dist

// The shim compiles against the libtorch that scripts/setup-libtorch.sh
// prepares in third_party/libtorch (the one gotch links) with the same
// pre-C++11 ABI, and against Debian's gloo headers (scripts/gloo.sh);
// the gloo code itself is libtorch's own copy inside libtorch_cpu.so.

// #cgo CXXFLAGS: -std=c++17 -D_GLIBCXX_USE_CXX11_ABI=0 -DUSE_C10D_GLOO -O2 -Wno-deprecated-declarations
// #cgo CXXFLAGS: -I${SRCDIR}/../third_party/libtorch/include -I${SRCDIR}/../third_party/libtorch/include/torch/csrc/api/include
// #cgo LDFLAGS: -L${SRCDIR}/../third_party/libtorch/lib -Wl,-rpath,${SRCDIR}/../third_party/libtorch/lib -ltorch_cpu -lc10 -lstdc++
// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
	"unsafe"

	lib "github.com/sugarme/gotch/libtch"
	"github.com/sugarme/gotch/ts"
)

// Backend names the c10d process group that carries the collectives.
type Backend string

const (
	// Gloo is ProcessGroupGloo: CPU tensors over TCP.
	Gloo Backend = "gloo"
	// NCCL is ProcessGroupNCCL: CUDA tensors. Only binaries built with the
	// cuda tag (DEVICE=cuda make build) have it; it compiles (make
	// cuda-check) but has never run.
	NCCL Backend = "nccl"
)

// Config says how one rank joins a group.
type Config struct {
	// Addr is the host:port of the TCPStore that rank 0 hosts and every
	// rank connects to, e.g. "127.0.0.1:29500".
	Addr string
	// World is the number of ranks; Rank is this process's, in [0, World).
	World, Rank int
	// Timeout bounds every collective (and the rendezvous, unless
	// JoinTimeout is set).
	Timeout time.Duration
	// JoinTimeout, when set, bounds the rendezvous instead: how long the
	// first rank waits for the last to start.
	JoinTimeout time.Duration
	// Epoch tells apart successive groups formed at the same address (a
	// retried learn task re-forms its group with a new epoch): ranks of
	// different epochs never meet.
	Epoch int
	// Backend is Gloo (the default) or NCCL.
	Backend Backend
	// Hosted says another process serves the TCPStore at Addr (Serve),
	// as a controller does for ranks on other machines; otherwise rank 0
	// hosts it.
	Hosted bool
}

func (c Config) validate() (host string, port int, err error) {
	h, p, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return "", 0, fmt.Errorf("dist: Addr %q: %w", c.Addr, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("dist: Addr %q: port must be a number in [1, 65535]", c.Addr)
	}
	switch {
	case h == "":
		return "", 0, fmt.Errorf("dist: Addr %q has no host", c.Addr)
	case c.World < 1:
		return "", 0, fmt.Errorf("dist: World must be at least 1, got %d", c.World)
	case c.Rank < 0 || c.Rank >= c.World:
		return "", 0, fmt.Errorf("dist: Rank must be in [0, %d), got %d", c.World, c.Rank)
	case c.Timeout < time.Millisecond:
		return "", 0, fmt.Errorf("dist: Timeout must be at least 1ms, got %v", c.Timeout)
	case c.JoinTimeout != 0 && c.JoinTimeout < time.Millisecond:
		return "", 0, fmt.Errorf("dist: JoinTimeout must be 0 (Timeout) or at least 1ms, got %v", c.JoinTimeout)
	case c.Epoch < 0:
		return "", 0, fmt.Errorf("dist: Epoch must be ≥ 0, got %d", c.Epoch)
	case c.Backend != "" && c.Backend != Gloo && c.Backend != NCCL:
		return "", 0, fmt.Errorf("dist: Backend must be %q or %q, got %q", Gloo, NCCL, c.Backend)
	case c.Backend == NCCL && !HasNCCL():
		return "", 0, fmt.Errorf("dist: Backend %q: this binary was built without ProcessGroupNCCL (build with DEVICE=cuda)", NCCL)
	}
	return h, port, nil
}

// HasNCCL reports whether the binary was built with ProcessGroupNCCL.
func HasNCCL() bool { return C.tg_group_has_nccl() != 0 }

// Group is one rank's membership of a process group. Its methods are
// collectives: every rank calls the same ones in the same order with
// tensors of the same shapes and dtypes. A Group is not safe for
// concurrent use.
type Group struct {
	g       C.tg_group
	cfg     Config
	timeout C.int64_t
}

// New joins the group cfg describes: rank 0 hosts the TCPStore at
// cfg.Addr, every rank connects to it, and the backend connects every pair
// of ranks. It returns when all cfg.World ranks have arrived, or an error
// naming the address after cfg.JoinTimeout (cfg.Timeout when unset).
// Close the Group when done.
func New(cfg Config) (*Group, error) {
	host, port, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if cfg.Backend == "" {
		cfg.Backend = Gloo
	}
	backend := C.int(0)
	if cfg.Backend == NCCL {
		backend = 1
	}
	chost := C.CString(host)
	defer C.free(unsafe.Pointer(chost))
	prefix := C.CString(fmt.Sprintf("thinkgen/epoch-%d/", cfg.Epoch))
	defer C.free(unsafe.Pointer(prefix))
	join := cfg.JoinTimeout
	if join == 0 {
		join = cfg.Timeout
	}
	g := &Group{cfg: cfg, timeout: C.int64_t(cfg.Timeout.Milliseconds())}
	hosted := C.int(0)
	if cfg.Hosted {
		hosted = 1
	}
	msg := C.tg_group_new(chost, C.int(port), C.int(cfg.World), C.int(cfg.Rank), hosted,
		C.int64_t(join.Milliseconds()), g.timeout, prefix, backend, &g.g)
	if err := cerr(msg); err != nil {
		return nil, fmt.Errorf("dist: rank %d of %d joining the %s group at %s (epoch %d, timeout %v): %w",
			cfg.Rank, cfg.World, cfg.Backend, cfg.Addr, cfg.Epoch, join, err)
	}
	return g, nil
}

// Store is a TCPStore served for groups whose ranks all connect to it
// (Config.Hosted): the rendezvous of learner ranks on any machine that
// can reach this one. Groups of different epochs share it (their keys
// carry the epoch).
type Store struct {
	s    C.tg_store
	port int
}

// Serve serves a Store on port (0: a free one). libtorch's TCPStore
// listens on every interface of the machine; give the ranks an address
// of this machine they can reach, with Port.
func Serve(port int) (*Store, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("dist: store port must be in [0, 65535], got %d", port)
	}
	st := &Store{}
	var got C.int
	if err := cerr(C.tg_store_new(C.int(port), &st.s, &got)); err != nil {
		return nil, fmt.Errorf("dist: serving the rendezvous store on port %d: %w", port, err)
	}
	st.port = int(got)
	return st, nil
}

// Port is the port the store listens on.
func (s *Store) Port() int { return s.port }

// Close stops serving the store.
func (s *Store) Close() {
	if s.s != nil {
		C.tg_store_free(s.s)
		s.s = nil
	}
}

// Rank is this process's rank.
func (g *Group) Rank() int { return g.cfg.Rank }

// World is the number of ranks.
func (g *Group) World() int { return g.cfg.World }

// Close leaves the group and frees the backend and the store. It waits
// for collectives still in flight (a timed-out one ends within the
// timeout). Closing twice is a no-op.
func (g *Group) Close() {
	if g.g != nil {
		C.tg_group_free(g.g)
		g.g = nil
	}
}

// AllReduceSum replaces each tensor, on every rank, by its sum over the
// ranks. Tensors of one dtype and device travel in one flat buffer (one
// collective), so a list of gradients costs one round trip, not one each.
func (g *Group) AllReduceSum(tensors []*ts.Tensor) error {
	return g.inPlace("all-reduce", tensors, func(hs *C.tg_tensor, n C.int) *C.char {
		return C.tg_allreduce_sum(g.g, hs, n, g.timeout)
	})
}

// inPlace runs the shim's collective op over tensors, which it rewrites in
// place: call passes the tensors' handles and their number to the shim.
// No tensors is no collective.
func (g *Group) inPlace(op string, tensors []*ts.Tensor, call func(hs *C.tg_tensor, n C.int) *C.char) error {
	if len(tensors) == 0 {
		return nil
	}
	hs, err := g.handles(op, tensors)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(hs))
	return g.wrap(op, call(hs, C.int(len(tensors))))
}

// Broadcast copies rank root's tensors into the other ranks' tensors, in
// place (coalesced like AllReduceSum).
func (g *Group) Broadcast(tensors []*ts.Tensor, root int) error {
	if root < 0 || root >= g.cfg.World {
		return fmt.Errorf("dist: broadcast: root must be in [0, %d), got %d", g.cfg.World, root)
	}
	return g.inPlace("broadcast", tensors, func(hs *C.tg_tensor, n C.int) *C.char {
		return C.tg_broadcast(g.g, hs, n, C.int(root), g.timeout)
	})
}

// AllGather returns every rank's t, indexed by rank, as new tensors the
// caller drops. t must have the same shape and dtype on every rank.
func (g *Group) AllGather(t *ts.Tensor) ([]*ts.Tensor, error) {
	hs, err := g.handles("all-gather", []*ts.Tensor{t})
	if err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(hs))
	out := (*C.tg_tensor)(C.calloc(C.size_t(g.cfg.World), C.size_t(unsafe.Sizeof(C.tg_tensor(nil)))))
	defer C.free(unsafe.Pointer(out))
	if err := g.wrap("all-gather", C.tg_allgather(g.g, *hs, out, g.timeout)); err != nil {
		return nil, err
	}
	res := make([]*ts.Tensor, g.cfg.World)
	for i, h := range unsafe.Slice(out, g.cfg.World) {
		res[i] = ts.New(lib.Ctensor(unsafe.Pointer(h)))
	}
	return res, nil
}

// Barrier returns when every rank has called it.
func (g *Group) Barrier() error {
	if g.g == nil {
		return errClosed("barrier")
	}
	return g.wrap("barrier", C.tg_barrier(g.g, g.timeout))
}

// ReleaseGrads drops the gradients of params, freeing their storage (as
// PyTorch's zero_grad(set_to_none=True)); the next backward allocates the
// gradients of the parameters it reaches afresh. A ZeRO-2 rank releases
// those of the parameters other ranks update once they are reduced.
func ReleaseGrads(params []*ts.Tensor) error {
	if len(params) == 0 {
		return nil
	}
	hs, err := handles("gradient release", params)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(hs))
	return cerr(C.tg_release_grads(hs, C.int(len(params))))
}

func errClosed(op string) error { return fmt.Errorf("dist: %s on a closed group", op) }

// handles copies the tensors' C handles into C memory the caller frees.
func (g *Group) handles(op string, tensors []*ts.Tensor) (*C.tg_tensor, error) {
	if g.g == nil {
		return nil, errClosed(op)
	}
	return handles(op, tensors)
}

// handles copies the tensors' C handles into C memory the caller frees.
func handles(op string, tensors []*ts.Tensor) (*C.tg_tensor, error) {
	for i, t := range tensors {
		if t == nil || t.Ctensor() == nil {
			return nil, fmt.Errorf("dist: %s: tensor %d is missing", op, i)
		}
	}
	hs := (*C.tg_tensor)(C.malloc(C.size_t(len(tensors)) * C.size_t(unsafe.Sizeof(C.tg_tensor(nil)))))
	cs := unsafe.Slice(hs, len(tensors))
	for i, t := range tensors {
		cs[i] = C.tg_tensor(t.Ctensor())
	}
	return hs, nil
}

// wrap turns the shim's message into an error naming the collective, the
// rank and the group's address.
func (g *Group) wrap(op string, msg *C.char) error {
	if err := cerr(msg); err != nil {
		return fmt.Errorf("dist: %s on rank %d of %d (group at %s, epoch %d, timeout %v): %w",
			op, g.cfg.Rank, g.cfg.World, g.cfg.Addr, g.cfg.Epoch, g.cfg.Timeout, err)
	}
	return nil
}

// cerr frees the shim's message and returns it as an error (nil for none).
func cerr(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}
