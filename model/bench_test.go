package model

import (
	"fmt"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// The benchmarks use the tiny configuration's shapes (configs/tiny.yaml)
// with a 400-token vocabulary; `make bench` runs them on two threads.

func benchConfig() *config.Config {
	c := config.Default()
	c.Model.MLLM.MaxSeqLen = 128
	return c
}

func benchGenerate(b *testing.B, noCache bool) { benchGenerateOn(b, noCache, 0) }

// benchGenerateOn decodes with GenerateOptions.Threads = threads (0: the
// pool as it is).
func benchGenerateOn(b *testing.B, noCache bool, threads int) {
	c := benchConfig()
	err := libtorch.Run(func() error {
		m, err := NewMLLM(c.Model.MLLM, 400, testSpecial, true, gotch.CPU, 1)
		if err != nil {
			return err
		}
		defer m.Drop()
		// 8 prompts × G = 8 samples, 64 new tokens, EOS never sampled.
		m.Special.EOS = -1
		prompts := make([][]int, 64)
		seeds := make([]uint64, 64)
		for i := range prompts {
			prompts[i] = []int{5 + i%8, 6, 7, 8, 9, 10, 11, 12}
			seeds[i] = uint64(i)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			g, err := m.Generate(prompts, GenerateOptions{MaxNewTokens: 64, Temperature: 1, Seeds: seeds, NoCache: noCache, Threads: threads})
			if err != nil {
				return err
			}
			_ = g
		}
		b.StopTimer()
		b.ReportMetric(float64(64*64*b.N)/b.Elapsed().Seconds(), "tokens/s")
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGenerateKVCache: batch 8 prompts × G=8, 64 new tokens, KV cache.
func BenchmarkGenerateKVCache(b *testing.B) { benchGenerate(b, false) }

// BenchmarkGenerateDecodeThreads: the KV-cache benchmark decoding on one
// and on two intra-op threads (sampling.decode_threads), side by side in
// one process.
func BenchmarkGenerateDecodeThreads(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", n), func(b *testing.B) { benchGenerateOn(b, false, n) })
	}
}

// BenchmarkGenerateNoCache: the same, recomputing the prefix every step.
func BenchmarkGenerateNoCache(b *testing.B) { benchGenerate(b, true) }

// BenchmarkDiTForwardBackward: a batch of 32 tiny-config samples (32×32
// pixels, 20 text tokens), forward and backward.
func BenchmarkDiTForwardBackward(b *testing.B) {
	c := benchConfig()
	err := libtorch.Run(func() error {
		d, conn := benchDiT(c)
		defer d.Drop()
		defer conn.P.Drop()
		x := randn([]int64{32, 3, 32, 32}, 3)
		defer x.MustDrop()
		times := make([]float64, 32)
		lens := make([]int, 32)
		for i := range times {
			times[i] = float64(i) / 32
			lens[i] = 16
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			cond := testCondition(b, conn, lens, 0)
			v, err := d.Forward(DiTInput{X: x, T: times, Text: cond})
			if err != nil {
				return err
			}
			loss := v.MustSquare(false).MustMean(gotch.Float, true)
			loss.MustBackward()
			loss.MustDrop()
			v.MustDrop()
			cond.Drop()
		}
		b.StopTimer()
		b.ReportMetric(float64(32*b.N)/b.Elapsed().Seconds(), "samples/s")
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSampleODE10Steps: 16 images, 10 Euler steps with CFG 4.5.
func BenchmarkSampleODE10Steps(b *testing.B) {
	c := benchConfig()
	err := libtorch.Run(func() error {
		d, conn := benchDiT(c)
		defer d.Drop()
		defer conn.P.Drop()
		lens := make([]int, 16)
		for i := range lens {
			lens[i] = 16
		}
		var cond, uncond *Condition
		libtorch.NoGrad(func() {
			cond = testCondition(b, conn, lens, 0)
			uncond = testCondition(b, conn, make([]int, 16), 0)
		})
		defer cond.Drop()
		defer uncond.Drop()
		noise := randn([]int64{16, 3, 32, 32}, 4)
		defer noise.MustDrop()
		grid := TimeGrid(10, true, 32, 32)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			img, err := d.SampleODE(noise, grid, cond, nil, Guidance{Uncond: uncond, TextScale: 4.5})
			if err != nil {
				return err
			}
			img.MustDrop()
		}
		b.StopTimer()
		b.ReportMetric(float64(16*b.N)/b.Elapsed().Seconds(), "images/s")
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// benchDiT builds the tiny DiT (perturbed so that no gate is closed) and its
// connector.
func benchDiT(c *config.Config) (*DiT, *Connector) {
	d, err := NewDiT(c.Model.DiT, gotch.CPU, 1)
	if err != nil {
		panic(err)
	}
	perturb(d.P)
	conn, err := NewConnector(c.Model.MLLM.Hidden, c.Model.DiT.Hidden, c.Model.Connector.Prepad, 1e-6, gotch.CPU, 2)
	if err != nil {
		panic(err)
	}
	return d, conn
}
