package libtorch

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"strings"
	"testing"
)

func TestVersionIsThePinnedLibtorch(t *testing.T) {
	if v := Version(); v != "2.1.0" {
		t.Fatalf("Version() = %q, want 2.1.0 (gotch v0.9.1 needs exactly libtorch 2.1.0)", v)
	}
	if strings.ContainsAny(Version(), "\n\x00") {
		t.Fatalf("Version() has control characters: %q", Version())
	}
}

func TestSetThreads(t *testing.T) {
	before := Threads()
	if before < 1 {
		t.Fatalf("Threads() = %d, want >= 1", before)
	}
	t.Cleanup(func() { _ = SetThreads(before) })
	if err := SetThreads(1); err != nil {
		t.Fatal(err)
	}
	if got := Threads(); got != 1 {
		t.Fatalf("after SetThreads(1), Threads() = %d", got)
	}
	if err := SetThreads(0); err == nil {
		t.Fatal("SetThreads(0) succeeded, want an error")
	}
}

// TestPatchedInPlaceOps checks the project's gotch patch: an in-place op
// keeps the tensor's identity and value semantics while freeing the handle
// it replaces, and a failing op panics (recovered by Run) instead of exiting.
func TestPatchedInPlaceOps(t *testing.T) {
	err := Run(func() error {
		x := ts.MustOfSlice([]float32{1, 2, 3})
		defer x.MustDrop()
		view := x.MustNarrow(0, 1, 2, false)
		defer view.MustDrop()
		for i := 0; i < 1000; i++ {
			x.MustAddScalar_(ts.FloatScalar(1))
		}
		got := x.Float64Values()
		if got[0] != 1001 || got[2] != 1003 {
			t.Errorf("after 1000 in-place adds x = %v, want [1001 1002 1003]", got)
		}
		// The view shares storage with x: the in-place adds must be visible.
		if v := view.Float64Values(); v[0] != 1002 || v[1] != 1003 {
			t.Errorf("view of x = %v, want [1002 1003]", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRunRecoversTorchErrors(t *testing.T) {
	err := Run(func() error {
		a := ts.MustOfSlice([]float32{1, 2, 3})
		defer a.MustDrop()
		b := ts.MustOfSlice([]float32{1, 2})
		defer b.MustDrop()
		c := a.MustMatmul(b, false) // shape mismatch: libtorch throws
		c.MustDrop()
		return nil
	})
	if err == nil {
		t.Fatal("Run returned nil for a failing op")
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans lines: %q", err)
	}
	t.Logf("recovered: %v", err)
}

func TestScopeDropsEverything(t *testing.T) {
	err := Run(func() error {
		before := LiveTensors()
		var s Scope
		for i := 0; i < 3; i++ {
			x := s.Add(ts.MustOnes([]int64{4}, gotch.Float, gotch.CPU))
			s.Add(x.MustMulScalar(ts.FloatScalar(2), false))
		}
		if got := LiveTensors(); got != before+6 {
			t.Errorf("live tensors = %d, want %d", got, before+6)
		}
		s.Close()
		if got := LiveTensors(); got != before {
			t.Errorf("after Close live tensors = %d, want %d", got, before)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSetGradEnabledReportsThePreviousMode(t *testing.T) {
	err := Run(func() error {
		if prev := SetGradEnabled(false); !prev {
			t.Error("grad mode was off at the start of a fresh thread")
		}
		if prev := SetGradEnabled(false); prev {
			t.Error("after turning it off, the previous mode reads on")
		}
		x := ts.MustOnes([]int64{2}, gotch.Float, gotch.CPU)
		x.MustRequiresGrad_(true)
		y := x.MustMulScalar(ts.FloatScalar(2), false)
		if y.MustRequiresGrad() {
			t.Error("an op under no-grad requires grad")
		}
		if prev := SetGradEnabled(true); prev {
			t.Error("previous mode reads on")
		}
		z := x.MustMulScalar(ts.FloatScalar(2), false)
		if !z.MustRequiresGrad() {
			t.Error("an op with grad on does not require grad")
		}
		x.MustDrop()
		y.MustDrop()
		z.MustDrop()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
