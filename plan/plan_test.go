package plan

import (
	"math"
	"strings"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
	"github.com/thinkgen/thinkgen/optim"
)

func TestParseGPUMemory(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"80GiB", 80 << 30},
		{"80 GiB", 80 << 30},
		{"80Gi", 80 << 30},
		{"80gib", 80 << 30},
		{"80GB", 80e9},
		{"80G", 80e9},
		{"40 GiB", 40 << 30},
		{"1.5TiB", 3 << 39},
		{"81920MiB", 80 << 30},
		{"24000000000B", 24e9},
	} {
		got, err := ParseGPUMemory(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseGPUMemory(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"80", "80GiBs", "eighty GiB", "80 XB", "-80GiB", "", "0GiB", "GiB"} {
		if _, err := ParseGPUMemory(bad); err == nil || !strings.Contains(err.Error(), "\""+bad+"\"") {
			t.Errorf("ParseGPUMemory(%q): error %v, want one naming the string", bad, err)
		}
	}
}

func loadConfig(t *testing.T, path string) *config.Config {
	t.Helper()
	c, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tensorBytes sums numel × element size.
func tensorBytes(list []*ts.Tensor) int64 {
	var n int64
	for _, t := range list {
		n += int64(t.Numel()) * int64(t.DType().Size())
	}
	return n
}

func within(t *testing.T, what string, formula, measured int64) {
	t.Helper()
	if measured <= 0 {
		t.Fatalf("%s: measured %d bytes", what, measured)
	}
	if d := math.Abs(float64(formula-measured)) / float64(measured); d > 0.10 {
		t.Errorf("%s: formula %d bytes, measured %d (off by %.1f%%, want within 10%%)", what, formula, measured, 100*d)
	} else {
		t.Logf("%s: formula %d bytes, measured %d", what, formula, measured)
	}
}

// TestFormulasMatchTinyTensors builds the tiny configuration's real models
// with gotch and checks the plan's weights, gradients, optimizer-state and
// KV-cache bytes against the tensors' numel × element size, in float32 and
// (weights cast to it, float32 masters kept) bfloat16. Activations are not
// measured: libtorch keeps no allocator statistics on the CPU.
func TestFormulasMatchTinyTensors(t *testing.T) {
	cfg := loadConfig(t, "../configs/tiny.yaml")
	tok, err := model.TokenizerFor(cfg.Model.MLLM)
	if err != nil {
		t.Fatal(err)
	}
	vocab := tok.VocabSize()
	counts := CountParams(cfg, vocab)
	err = libtorch.Run(func() error {
		b, err := model.NewBundle(cfg, tok, gotch.CPU, 1)
		if err != nil {
			return err
		}
		defer b.Drop()
		modules := []struct {
			name   string
			params *model.Params
			count  int64
		}{
			{"mllm", b.MLLM.P, counts.MLLM},
			{"connector", b.Connector.P, counts.Connector},
			{"dit", b.DiT.P, counts.DiT},
		}
		for _, m := range modules {
			f32 := tensorBytes(m.params.Tensors())
			within(t, m.name+" float32 weights", WeightBytes(m.count, 4), f32)

			var bf []*ts.Tensor
			for _, p := range m.params.Tensors() {
				bf = append(bf, p.MustTotype(gotch.BFloat16, false))
			}
			within(t, m.name+" bfloat16 weights", WeightBytes(m.count, 2), tensorBytes(bf))
			for _, x := range bf {
				x.MustDrop()
			}

			// The optimizer a learner builds over the module: its moments,
			// and the gradient it defines for every parameter.
			opt := optim.New(m.params.Tensors(), optim.Config{})
			st, _ := opt.State()
			var moments, grads []*ts.Tensor
			for _, x := range st {
				moments = append(moments, x)
			}
			for _, p := range m.params.Tensors() {
				grads = append(grads, p.MustGrad(false))
			}
			within(t, m.name+" float32 gradients", GradientBytes(m.count, 4, 0, 1), tensorBytes(grads))
			within(t, m.name+" float32 AdamW state", OptimizerBytes(m.count, 4, 0, 1), tensorBytes(moments))
			// In bfloat16 the float32 parameters are the master weights.
			within(t, m.name+" bfloat16 master weights + AdamW state", OptimizerBytes(m.count, 2, 0, 1), tensorBytes(moments)+f32)
			for _, g := range grads {
				g.MustDrop()
			}
			opt.Drop()
		}

		const seqs, tokens = 8, 96
		kv := b.MLLM.NewKVCache(seqs, tokens)
		within(t, "float32 KV cache", KVCacheBytes(cfg.Model.MLLM, seqs, tokens, 4), kv.Bytes())
		kv.Drop()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestChoicesAreTight checks the search on the full configuration: each
// learner's choice on 8×80 GiB fits and one more sample would not (or the
// rank's share is reached), and one rank fewer than the smallest N fits
// under no ZeRO stage, with or without checkpointing.
func TestChoicesAreTight(t *testing.T) {
	cfg := loadConfig(t, "../configs/full.yaml")
	mem := int64(80 << 30)
	p, err := Build(cfg, cfg.Model.MLLM.Vocab, Options{GPUs: 8, GPUMemory: mem, FusedAttention: true})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := DTypeBytes(cfg.Model.DType)
	learners := 0
	for _, r := range p.Rows {
		if r.Role != "learner" {
			continue
		}
		learners++
		act := func(ck bool) int64 { // one sample's activations
			if ck {
				return r.ActivationsCk / int64(r.MicroBatch)
			}
			return r.Activations / int64(r.MicroBatch)
		}
		fits := func(n, zero int, ck bool, mb int) bool {
			return WeightBytes(r.TrainedParams+r.FrozenParams, e)+GradientBytes(r.TrainedParams, e, zero, n)+
				OptimizerBytes(r.TrainedParams, e, zero, n)+act(ck)*int64(mb) <= mem
		}
		c := r.AtGPUs
		if c == nil {
			t.Errorf("%s: nothing fits on 8×80 GiB", r.Phase)
			continue
		}
		if !fits(8, c.ZeRO, c.Checkpointing, c.MicroBatch) || c.Total > mem {
			t.Errorf("%s: choice %v does not fit", r.Phase, c)
		}
		if c.MicroBatch < r.PerUpdate && fits(8, c.ZeRO, c.Checkpointing, c.MicroBatch+1) {
			t.Errorf("%s: choice %v is not the largest micro-batch", r.Phase, c)
		}
		s := r.Smallest
		if s == nil || s.GPUs > 8 {
			t.Fatalf("%s: smallest %v, want at most 8 GPUs", r.Phase, s)
		}
		if n := s.GPUs - 1; n >= 1 {
			for zero := 0; zero <= 2; zero++ {
				for _, ck := range []bool{false, true} {
					if fits(n, zero, ck, 1) {
						t.Errorf("%s: smallest %v, but N=%d ZeRO-%d ckpt=%v fits", r.Phase, s, n, zero, ck)
					}
				}
			}
		}
	}
	if learners < 2 {
		t.Fatalf("%d learner rows, want one per phase at least", learners)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	cfg := loadConfig(t, "../configs/full.yaml")
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{GPUs: 0, GPUMemory: 1 << 30}, "--gpus"},
		{Options{GPUs: 1, GPUMemory: 1 << 30, ZeRO: 3}, "--zero"},
		{Options{GPUs: 1}, "GPU memory"},
	} {
		if _, err := Build(cfg, 100, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Build(%+v): error %v, want one naming %s", tc.o, err, tc.want)
		}
	}
	bad := *cfg
	bad.Model.DType = "float8"
	if _, err := Build(&bad, 100, Options{GPUs: 1, GPUMemory: 1 << 30}); err == nil || !strings.Contains(err.Error(), "model.dtype") {
		t.Errorf("dtype float8: error %v, want one naming model.dtype", err)
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		b      int64
		digits int
		want   string
	}{
		{3 << 30, 2, "3.00 GiB"},
		{3<<30 + 1<<29, 1, "3.5 GiB"},
		{1536 << 10, 2, "1.50 MiB"},
		{1536 << 10, 1, "1.5 MiB"},
		{1536, 2, "1.5 KiB"},
		{0, 1, "0.0 KiB"},
	}
	for _, tt := range tests {
		if got := FormatBytes(tt.b, tt.digits); got != tt.want {
			t.Errorf("FormatBytes(%d, %d) = %q, want %q", tt.b, tt.digits, got, tt.want)
		}
	}
	if got := HumanBytes(3<<30 + 1<<29); got != "3.5 GiB" {
		t.Errorf("HumanBytes = %q, want 3.5 GiB", got)
	}
}
