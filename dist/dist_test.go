package dist_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/dist"
	"github.com/thinkgen/thinkgen/internal/childproc"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testutil"
)

// A test that forms a group runs its ranks as child processes: the test
// binary itself, started with the role and the rank in the environment.
const (
	envRole  = "THINKGEN_DIST_TEST_ROLE"
	envRank  = "THINKGEN_DIST_TEST_RANK"
	envWorld = "THINKGEN_DIST_TEST_WORLD"
	envAddr  = "THINKGEN_DIST_TEST_ADDR"
)

// rankTimeout bounds the rendezvous and each collective of the ranks that
// are expected to succeed; two busy cores load libtorch slowly.
const rankTimeout = 60 * time.Second

// rankEnv returns the child's role, rank, world and address, and whether
// this process is a child at all.
func rankEnv(t *testing.T) (role string, rank, world int, addr string, ok bool) {
	role = os.Getenv(envRole)
	if role == "" {
		return "", 0, 0, "", false
	}
	var err error
	if rank, err = strconv.Atoi(os.Getenv(envRank)); err != nil {
		t.Fatalf("%s: %v", envRank, err)
	}
	if world, err = strconv.Atoi(os.Getenv(envWorld)); err != nil {
		t.Fatalf("%s: %v", envWorld, err)
	}
	return role, rank, world, os.Getenv(envAddr), true
}

// rank is one child process.
type rank struct {
	cmd     *exec.Cmd
	out     strings.Builder
	release func()
}

// startRanks starts the given ranks of a world of size world as children
// running test with role; they meet at addr.
func startRanks(t *testing.T, test, role, addr string, world int, ranks ...int) []*rank {
	t.Helper()
	var rs []*rank
	for _, r := range ranks {
		c := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
		c.Env = append(os.Environ(), envRole+"="+role, envRank+"="+strconv.Itoa(r), envWorld+"="+strconv.Itoa(world), envAddr+"="+addr,
			"OMP_NUM_THREADS=1", "OMP_WAIT_POLICY=PASSIVE")
		p := &rank{cmd: c}
		c.Stdout, c.Stderr = &p.out, &p.out
		release, err := childproc.Start(c, syscall.SIGKILL)
		if err != nil {
			t.Fatalf("starting rank %d: %v", r, err)
		}
		p.release = release
		rs = append(rs, p)
	}
	t.Cleanup(func() {
		for _, p := range rs {
			if p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Kill()
				_ = p.cmd.Wait()
				p.release()
			}
		}
	})
	return rs
}

// waitRanks waits for every rank and fails the test with the output of each
// rank that failed.
func waitRanks(t *testing.T, rs []*rank) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(rs))
	for i, p := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.cmd.Wait()
			p.release()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v\n%s", i, err, rs[i].out.String())
		}
	}
}

// TestCollectives forms groups of two and three ranks and checks every
// collective's result exactly, and that a rank's live tensors and C heap
// stay flat over many all-reduces.
func TestCollectives(t *testing.T) {
	if role, r, world, addr, ok := rankEnv(t); ok {
		if role != "collectives" {
			t.Skipf("role %s", role)
		}
		if err := libtorch.Run(func() error { return checkCollectives(r, world, addr) }); err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		return
	}
	if testing.Short() {
		t.Skip("starts libtorch processes")
	}
	for _, world := range []int{2, 3} {
		t.Run(fmt.Sprintf("world=%d", world), func(t *testing.T) {
			ranks := make([]int, world)
			for i := range ranks {
				ranks[i] = i
			}
			waitRanks(t, startRanks(t, "TestCollectives", "collectives", testutil.FreeAddr(t), world, ranks...))
		})
	}
}

// checkCollectives is one rank of TestCollectives.
func checkCollectives(r, world int, addr string) error {
	g, err := dist.New(dist.Config{Addr: addr, World: world, Rank: r, Timeout: rankTimeout, Epoch: 3})
	if err != nil {
		return err
	}
	defer g.Close()
	if g.Rank() != r || g.World() != world {
		return fmt.Errorf("group says rank %d of %d", g.Rank(), g.World())
	}
	var s libtorch.Scope
	defer s.Close()

	// All-reduce: three dtypes, a non-contiguous view among them; integers
	// and small sums are exact in every dtype.
	a := s.Add(ts.MustOfSlice([]float32{1, 2, 3, 4, 5, 6}).MustView([]int64{2, 3}, true).MustAddScalar(ts.FloatScalar(float64(r)), true))
	b := s.Add(ts.MustOfSlice([]float64{0.5, -1, 1e6}).MustMulScalar(ts.FloatScalar(float64(r+1)), true))
	c := s.Add(ts.MustOfSlice([]int64{int64(r), 1 << 40}))
	d := s.Add(ts.MustOfSlice([]float32{float32(10 * r)}))
	if err := g.AllReduceSum([]*ts.Tensor{a, b, c, d}); err != nil {
		return err
	}
	w, sumR := float64(world), float64(world*(world-1)/2)
	tri := w * (w + 1) / 2 // Σ (r+1)
	checks := []struct {
		name string
		got  []float64
		want []float64
	}{
		{"float32 [2,3]", a.Float64Values(false), []float64{w + sumR, 2*w + sumR, 3*w + sumR, 4*w + sumR, 5*w + sumR, 6*w + sumR}},
		{"float64 [3]", b.Float64Values(false), []float64{0.5 * tri, -tri, 1e6 * tri}},
		{"int64 [2]", c.Float64Values(false), []float64{sumR, w * (1 << 40)}},
		{"float32 [1]", d.Float64Values(false), []float64{10 * sumR}},
	}
	for _, ch := range checks {
		if !slices.Equal(ch.got, ch.want) {
			return fmt.Errorf("all-reduce %s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if got := a.MustSize(); !slices.Equal(got, []int64{2, 3}) {
		return fmt.Errorf("all-reduce changed a shape to %v", got)
	}

	// Broadcast from the last rank, in place.
	root := world - 1
	x := s.Add(ts.MustOfSlice([]float32{float32(r), float32(-r)}))
	y := s.Add(ts.MustOfSlice([]int64{int64(7 * r)}))
	if err := g.Broadcast([]*ts.Tensor{x, y}, root); err != nil {
		return err
	}
	if got, want := x.Float64Values(false), []float64{float64(root), float64(-root)}; !slices.Equal(got, want) {
		return fmt.Errorf("broadcast float32 = %v, want %v", got, want)
	}
	if got, want := y.Float64Values(false), []float64{float64(7 * root)}; !slices.Equal(got, want) {
		return fmt.Errorf("broadcast int64 = %v, want %v", got, want)
	}
	if err := g.Broadcast([]*ts.Tensor{x}, world); err == nil {
		return fmt.Errorf("broadcast from root %d of %d succeeded", world, world)
	}

	// All-gather: rank i's tensor lands at index i.
	mine := s.Add(ts.MustOfSlice([]float32{float32(r), float32(2 * r), float32(3 * r)}))
	all, err := g.AllGather(mine)
	if err != nil {
		return err
	}
	if len(all) != world {
		return fmt.Errorf("all-gather returned %d tensors, want %d", len(all), world)
	}
	for i, t := range all {
		s.Add(t)
		if got, want := t.Float64Values(false), []float64{float64(i), float64(2 * i), float64(3 * i)}; !slices.Equal(got, want) {
			return fmt.Errorf("all-gather [%d] = %v, want %v", i, got, want)
		}
	}

	if err := g.Barrier(); err != nil {
		return err
	}

	// Gradients in buckets of 16 bytes (one per parameter here): each
	// rank's gradient is r+1; a parameter without grad is left alone.
	var params []*ts.Tensor
	for _, n := range []int64{3, 5, 1} {
		params = append(params, s.Add(ts.MustOnes([]int64{n}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, true)))
	}
	frozen := s.Add(ts.MustOnes([]int64{2}, gotch.Float, gotch.CPU))
	var loss *ts.Tensor
	for _, p := range params {
		term := s.Add(p.MustMulScalar(ts.FloatScalar(float64(r+1)), false).MustSum(gotch.Float, true))
		if loss == nil {
			loss = term
		} else {
			loss = s.Add(loss.MustAdd(term, false))
		}
	}
	loss.MustBackward()
	if err := g.AllReduceGrads(append(params, frozen), 16); err != nil {
		return err
	}
	for i, p := range params {
		got := s.Add(p.MustGrad(false)).Float64Values(false)
		for _, v := range got {
			if v != tri {
				return fmt.Errorf("parameter %d: all-reduced gradient %v, want every value %v", i, got, tri)
			}
		}
	}
	if err := dist.ReleaseGrads(params[:1]); err != nil {
		return err
	}
	if g0 := s.Add(params[0].MustGrad(false)); g0.MustDefined() {
		return fmt.Errorf("parameter 0 still has a gradient after ReleaseGrads")
	}
	if g1 := s.Add(params[1].MustGrad(false)); !g1.MustDefined() {
		return fmt.Errorf("ReleaseGrads of parameter 0 released parameter 1's gradient")
	}
	sums, err := g.SumFloat64s([]float64{float64(r), 1.5})
	if err != nil {
		return err
	}
	if want := []float64{sumR, 1.5 * w}; !slices.Equal(sums, want) {
		return fmt.Errorf("SumFloat64s = %v, want %v", sums, want)
	}

	// Memory: many all-reduces (and all-gathers) of 1 MB lists leave the
	// live tensors and the C heap where they were.
	grads := []*ts.Tensor{
		s.Add(ts.MustOnes([]int64{512, 256}, gotch.Float, gotch.CPU)),
		s.Add(ts.MustOnes([]int64{256}, gotch.Float, gotch.CPU)),
		s.Add(ts.MustOnes([]int64{65536}, gotch.Float, gotch.CPU)),
	}
	round := func() error {
		if err := g.AllReduceSum(grads); err != nil {
			return err
		}
		// Keep the values bounded: back to ones.
		for _, t := range grads {
			t.MustFill_(ts.FloatScalar(1))
		}
		out, err := g.AllGather(grads[1])
		for _, o := range out {
			o.MustDrop()
		}
		return err
	}
	for range 20 {
		if err := round(); err != nil {
			return err
		}
	}
	liveBefore, heapBefore := libtorch.LiveTensors(), libtorch.CHeapInUse()
	const rounds = 300
	for range rounds {
		if err := round(); err != nil {
			return err
		}
	}
	liveAfter, heapAfter := libtorch.LiveTensors(), libtorch.CHeapInUse()
	if liveAfter != liveBefore {
		return fmt.Errorf("live tensors %d before %d all-reduces, %d after", liveBefore, rounds, liveAfter)
	}
	// Each round moves 1.3 MB through a fresh flat buffer; a leak of it
	// would be 390 MB. 2 MB leaves room for the allocator's bookkeeping.
	if grow := heapAfter - heapBefore; grow > 2<<20 {
		return fmt.Errorf("C heap grew by %d bytes over %d all-reduces", grow, rounds)
	}
	return g.Barrier()
}

// TestHostedStore: this process serves the rendezvous store (as a
// controller does) and three ranks that host nothing form two groups of
// successive epochs through it, each all-reducing correctly.
func TestHostedStore(t *testing.T) {
	if role, r, world, addr, ok := rankEnv(t); ok {
		if role != "hosted" {
			t.Skipf("role %s", role)
		}
		err := libtorch.Run(func() error {
			for epoch := 1; epoch <= 2; epoch++ {
				g, err := dist.New(dist.Config{Addr: addr, World: world, Rank: r, Timeout: rankTimeout, Epoch: epoch, Hosted: true})
				if err != nil {
					return err
				}
				x := ts.MustOfSlice([]float64{float64(r * epoch)})
				err = g.AllReduceSum([]*ts.Tensor{x})
				got := x.Float64Values(true)[0]
				g.Close()
				if err != nil {
					return err
				}
				if want := float64(epoch * world * (world - 1) / 2); got != want {
					return fmt.Errorf("epoch %d: all-reduce %v, want %v", epoch, got, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		return
	}
	if testing.Short() {
		t.Skip("starts libtorch processes")
	}
	st, err := dist.Serve(0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Port() == 0 {
		t.Fatal("the store reports port 0")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", st.Port())
	waitRanks(t, startRanks(t, "TestHostedStore", "hosted", addr, 3, 0, 1, 2))
	if _, err := dist.Serve(st.Port()); err == nil {
		t.Errorf("a second store served on the busy port %d", st.Port())
	}
}

// TestMissingRankFailsInTime checks that a group whose other rank never
// arrives fails within the timeout, with an error that names the address:
// as rank 0 (hosting the store) and as rank 1 (with nobody hosting it).
func TestMissingRankFailsInTime(t *testing.T) {
	if _, _, _, _, ok := rankEnv(t); ok {
		t.Skip("a rank of another test")
	}
	if testing.Short() {
		t.Skip("loads libtorch's c10d")
	}
	const timeout = 2 * time.Second
	for _, r := range []int{0, 1} {
		t.Run(fmt.Sprintf("rank=%d", r), func(t *testing.T) {
			addr := testutil.FreeAddr(t)
			start := time.Now()
			g, err := dist.New(dist.Config{Addr: addr, World: 2, Rank: r, Timeout: timeout})
			took := time.Since(start)
			if err == nil {
				g.Close()
				t.Fatal("New succeeded without the other rank")
			}
			if !strings.Contains(err.Error(), addr) {
				t.Errorf("error does not name the address %s: %v", addr, err)
			}
			if took > timeout+10*time.Second {
				t.Errorf("New failed after %v, timeout %v", took, timeout)
			}
			t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		})
	}
}

// TestHungRankFailsInTime starts a rank that joins the group and then
// never takes part in a collective: the other rank's all-reduce fails
// within the timeout, naming the address, and its Close returns.
func TestHungRankFailsInTime(t *testing.T) {
	const timeout = 3 * time.Second
	if role, r, world, addr, ok := rankEnv(t); ok {
		if role != "hang" {
			t.Skipf("role %s", role)
		}
		err := libtorch.Run(func() error {
			g, err := dist.New(dist.Config{Addr: addr, World: world, Rank: r, Timeout: rankTimeout})
			if err != nil {
				return err
			}
			defer g.Close()
			time.Sleep(time.Hour) // killed by the parent
			return nil
		})
		t.Fatal(err)
	}
	if testing.Short() {
		t.Skip("starts libtorch processes")
	}
	addr := testutil.FreeAddr(t)
	startRanks(t, "TestHungRankFailsInTime", "hang", addr, 2, 1)
	err := libtorch.Run(func() error {
		g, err := dist.New(dist.Config{Addr: addr, World: 2, Rank: 0, Timeout: timeout, JoinTimeout: rankTimeout})
		if err != nil {
			return err
		}
		x := ts.MustOnes([]int64{4}, gotch.Float, gotch.CPU)
		defer x.MustDrop()
		start := time.Now()
		err = g.AllReduceSum([]*ts.Tensor{x})
		took := time.Since(start)
		if err == nil {
			return fmt.Errorf("all-reduce succeeded with a hung rank")
		}
		if !strings.Contains(err.Error(), addr) {
			return fmt.Errorf("error does not name the address %s: %v", addr, err)
		}
		if took > timeout+10*time.Second {
			return fmt.Errorf("all-reduce failed after %v, timeout %v", took, timeout)
		}
		t.Logf("all-reduce failed after %v: %v", took.Round(time.Millisecond), err)
		ctx, cancel := context.WithTimeout(context.Background(), 2*rankTimeout)
		defer cancel()
		closed := make(chan struct{})
		go func() { g.Close(); close(closed) }()
		select {
		case <-closed:
		case <-ctx.Done():
			return fmt.Errorf("Close did not return after a timed-out all-reduce")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestConfigErrors checks that a bad Config is refused before any
// rendezvous, naming the field.
func TestConfigErrors(t *testing.T) {
	ok := dist.Config{Addr: "127.0.0.1:29500", World: 2, Rank: 1, Timeout: time.Second}
	cases := []struct {
		name string
		edit func(*dist.Config)
		want string
	}{
		{"no port", func(c *dist.Config) { c.Addr = "127.0.0.1" }, "Addr"},
		{"bad port", func(c *dist.Config) { c.Addr = "127.0.0.1:http" }, "port"},
		{"port 0", func(c *dist.Config) { c.Addr = "127.0.0.1:0" }, "port"},
		{"no host", func(c *dist.Config) { c.Addr = ":29500" }, "no host"},
		{"world", func(c *dist.Config) { c.World = 0 }, "World"},
		{"rank", func(c *dist.Config) { c.Rank = 2 }, "Rank"},
		{"negative rank", func(c *dist.Config) { c.Rank = -1 }, "Rank"},
		{"timeout", func(c *dist.Config) { c.Timeout = 0 }, "Timeout"},
		{"join timeout", func(c *dist.Config) { c.JoinTimeout = time.Microsecond }, "JoinTimeout"},
		{"epoch", func(c *dist.Config) { c.Epoch = -1 }, "Epoch"},
		{"backend", func(c *dist.Config) { c.Backend = "mpi" }, "Backend"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			_, err := dist.New(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("dist.New(%+v) = %v, want an error naming %q", c, err, tc.want)
			}
		})
	}
	if !dist.HasNCCL() {
		c := ok
		c.Backend = dist.NCCL
		if _, err := dist.New(c); err == nil || !strings.Contains(err.Error(), "DEVICE=cuda") {
			t.Fatalf("New with NCCL in a CPU build = %v, want an error saying how to build it", err)
		}
	}
}
