package export

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/internal/testenv"
	"github.com/thinkgen/thinkgen/model"
)

// TestDiffusersSchedulerSamplesExport draws an image from an export with
// diffusers' FlowMatchEulerDiscreteScheduler, loaded from the exported
// scheduler config and stepped on the exported transformer's guided
// outputs (which this test serves, as diffusers cannot build the DiT), and
// checks that the scheduler asks for thinkgen's times and ends at
// thinkgen's own sample from the same noise and condition; with latent:
// vae, diffusers' AutoencoderKL loaded from the exported vae/ decodes it to
// thinkgen's image.
func TestDiffusersSchedulerSamplesExport(t *testing.T) {
	py := testenv.Python(t)
	t.Run("pixel base/tiny", func(t *testing.T) {
		out, _ := writeBase(t)
		sampleWithDiffusers(t, py, out)
	})
	t.Run("vae", func(t *testing.T) {
		sampleWithDiffusers(t, py, writeVAEExport(t))
	})
}

// writeVAEExport exports a freshly initialised bundle of base/tiny's
// configuration with the DiT in the 8×8×4 latent of a small VAE whose
// latents are normalised (scaling 0.7, shift 0.2).
func writeVAEExport(t *testing.T) string {
	t.Helper()
	_, cfg, err := model.ReadBundleManifest(baseTiny)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{"model.dit.latent=vae", "model.dit.channels=4", "model.dit.vae_scale=4", "model.dit.patch=2",
		"model.vae={width: 8, layers_per_block: 1, norm_groups: 4}"} {
		if err := cfg.Set(kv); err != nil {
			t.Fatal(err)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	err = libtorch.Run(func() error {
		tok, err := model.TokenizerFor(cfg.Model.MLLM)
		if err != nil {
			return err
		}
		b, err := model.NewBundle(cfg, tok, gotch.CPU, 3)
		if err != nil {
			return err
		}
		defer b.Drop()
		shift := 0.2
		b.VAE.Cfg.ScalingFactor, b.VAE.Cfg.ShiftFactor = 0.7, &shift
		return b.Save(bundle, 0, cfg)
	})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "export")
	if _, err := Write(bundle, out, Source{}, Options{}); err != nil {
		t.Fatal(err)
	}
	return out
}

// sampleWithDiffusers runs testdata/scheduler_reference.py on the export
// in out and compares its times, sample and (with a VAE) image with
// thinkgen's.
func sampleWithDiffusers(t *testing.T, py, out string) {
	tmp := t.TempDir()
	noisePath, resultPath := filepath.Join(tmp, "noise.safetensors"), filepath.Join(tmp, "result.safetensors")
	err := libtorch.Run(func() error {
		b, _, err := Import(out, gotch.CPU)
		if err != nil {
			return err
		}
		defer b.Drop()
		_, cfg, err := ReadManifest(out)
		if err != nil {
			return err
		}
		s := cfg.Sampling
		side := model.LatentSide(cfg.Model.DiT)
		var cond, uncond *model.Condition
		libtorch.NoGrad(func() {
			states := ts.MustRandn([]int64{5, int64(b.Connector.In)}, gotch.Float, gotch.CPU)
			empty := ts.MustZeros([]int64{0, int64(b.Connector.In)}, gotch.Float, gotch.CPU)
			defer states.MustDrop()
			defer empty.MustDrop()
			if cond, err = b.Connector.Forward([]*ts.Tensor{states}); err == nil {
				uncond, err = b.Connector.Forward([]*ts.Tensor{empty})
			}
		})
		if err != nil {
			return err
		}
		defer cond.Drop()
		defer uncond.Drop()
		guide := model.Guidance{Uncond: uncond, TextScale: s.CFG, ImageScale: 1}
		noise := model.InitialNoise([]uint64{11}, b.DiT.Cfg.Channels, side, side, gotch.CPU)
		defer noise.MustDrop()
		if err := model.SaveTensors(noisePath, []string{"noise"}, []*ts.Tensor{noise}, nil); err != nil {
			return err
		}
		grid := model.TimeGrid(s.DiTSteps, s.TimeShift, side, side)
		want, err := b.DiT.SampleODE(noise, grid, cond, nil, guide)
		if err != nil {
			return err
		}
		defer want.MustDrop()

		times, err := serveTransformer(py, out, noisePath, resultPath, noise.MustSize(), func(x *ts.Tensor, t float64) (*ts.Tensor, error) {
			var v *ts.Tensor
			var err error
			libtorch.NoGrad(func() { v, err = b.DiT.Velocity(x, t, cond, nil, guide) })
			return v, err
		})
		if err != nil {
			return err
		}
		if len(times) != s.DiTSteps {
			return fmt.Errorf("diffusers took %d steps, the export says %d", len(times), s.DiTSteps)
		}
		worstT := 0.0
		for i, tv := range times {
			worstT = math.Max(worstT, math.Abs(tv-grid[i]))
		}
		t.Logf("max |diffusers t − thinkgen t| over %d steps = %.3g", len(times), worstT)
		if worstT > 1e-6 {
			t.Errorf("diffusers' times differ from thinkgen's grid by %g (> 1e-6)", worstT)
		}
		buf, err := os.ReadFile(resultPath)
		if err != nil {
			return err
		}
		res, err := safetensors.Deserialize(buf)
		if err != nil {
			return err
		}
		compare := func(name string, want *ts.Tensor) {
			v, ok := res.Tensor(name)
			if !ok {
				t.Errorf("diffusers wrote no %s", name)
				return
			}
			got := make([]float32, len(v.Data())/4)
			for i := range got {
				got[i] = math.Float32frombits(binary.LittleEndian.Uint32(v.Data()[4*i:]))
			}
			c := want.MustContiguous(false)
			defer c.MustDrop()
			wantVals := c.Vals().([]float32)
			worst := 0.0
			for i := range got {
				worst = math.Max(worst, math.Abs(float64(got[i]-wantVals[i])))
			}
			t.Logf("%s: max |diffusers − thinkgen| = %.3g (%d steps, cfg %g, time shift %v)", name, worst, s.DiTSteps, s.CFG, s.TimeShift)
			if worst > 1e-4 {
				t.Errorf("diffusers' %s differs from thinkgen's by %g (> 1e-4)", name, worst)
			}
		}
		compare("latents", want)
		if b.VAE != nil {
			img := b.Latent().Decode(want)
			defer img.MustDrop()
			compare("image", img)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// serveTransformer runs testdata/scheduler_reference.py on the export and
// answers each "STEP <timestep>" with velocity(x, timestep/1000) until
// "DONE"; it returns the times t the scheduler asked for.
func serveTransformer(py, export, noisePath, resultPath string, shape []int64, velocity func(x *ts.Tensor, t float64) (*ts.Tensor, error)) ([]float64, error) {
	cmd := exec.Command(py, filepath.Join("testdata", "scheduler_reference.py"), export, noisePath, resultPath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	fail := func(err error) ([]float64, error) {
		stdin.Close()
		cmd.Wait()
		return nil, fmt.Errorf("%w\n%s", err, stderr.String())
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	r := bufio.NewReader(stdout)
	raw := make([]byte, 4*n)
	var times []float64
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fail(fmt.Errorf("reading the scheduler's request: %w", err))
		}
		line = strings.TrimSpace(line)
		if line == "DONE" {
			break
		}
		ts1000, err := strconv.ParseFloat(strings.TrimPrefix(line, "STEP "), 64)
		if err != nil {
			return fail(fmt.Errorf("scheduler request %q: %w", line, err))
		}
		if _, err := io.ReadFull(r, raw); err != nil {
			return fail(fmt.Errorf("reading the sample: %w", err))
		}
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		t := ts1000 / 1000
		times = append(times, t)
		x := ts.MustOfSlice(vals).MustView(shape, true)
		v, err := velocity(x, t)
		x.MustDrop()
		if err != nil {
			return fail(err)
		}
		out := v.MustContiguous(true)
		for i, f := range out.Vals().([]float32) {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
		}
		out.MustDrop()
		if _, err := stdin.Write(raw); err != nil {
			return fail(fmt.Errorf("answering the scheduler: %w", err))
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("scheduler_reference.py: %w\n%s", err, stderr.String())
	}
	return times, nil
}
