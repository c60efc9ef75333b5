package pretrain

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/datasets"
	"github.com/thinkgen/thinkgen/internal/libtorch"
	"github.com/thinkgen/thinkgen/model"
)

// klWeight weighs the VAE's KL term against the reconstruction: small, so
// that the latent keeps the detail the DiT has to reproduce (SD's VAE
// trains with 1e-6 against a perceptual loss as well).
const klWeight = 1e-4

// targetImages returns the PNGs of the rows' target images.
func targetImages(rows []datasets.Row) [][]byte {
	pngs := make([][]byte, len(rows))
	for i := range rows {
		pngs[i] = rows[i].Target
	}
	return pngs
}

// VAELoss is the VAE stage's loss on images (PNGs of side size): with
// x = 2·image − 1 and the posterior N(μ, σ²) of x, a draw z = μ + σ·ε
// (ε from rng, so a resumed stage draws the same) is decoded to x̂, and
// the loss is mean((x̂ − x)²) + klWeight · mean(½(μ² + σ² − 1 − log σ²)).
func VAELoss(v *model.VAE, pngs [][]byte, size int, rng *rand.Rand, dev gotch.Device) (*ts.Tensor, error) {
	var s libtorch.Scope
	defer s.Close()
	x, err := model.EncodeImages(model.PixelSpace{}, pngs, size, dev)
	if err != nil {
		return nil, err
	}
	s.Add(x)
	mean, logvar := v.Posterior(x)
	s.Add(mean)
	s.Add(logvar)
	shape := mean.MustSize()
	eps := make([]float32, mean.Numel())
	for i := range eps {
		eps[i] = float32(rng.NormFloat64())
	}
	e := s.Add(ts.MustOfSlice(eps).MustView(shape, true))
	if dev != gotch.CPU {
		e = s.Add(e.MustTo(dev, false))
	}
	std := s.Add(logvar.MustMulScalar(ts.FloatScalar(0.5), false).MustExp(true))
	z := s.Add(mean.MustAdd(s.Add(std.MustMul(e, false)), false))
	rec := s.Add(v.DecodeRaw(z))
	mse := s.Add(rec.MustMseLoss(x, int64(ts.ReductionMean), false))
	// KL(N(μ, σ²) ‖ N(0, 1)) per element.
	kl := s.Add(mean.MustSquare(false).MustAdd(s.Add(logvar.MustExp(false)), true).
		MustSub(logvar, true).MustAddScalar(ts.FloatScalar(-1), true).MustMean(gotch.Float, true))
	return mse.MustAdd(s.Add(kl.MustMulScalar(ts.FloatScalar(0.5*klWeight), false)), false), nil
}

// calibrateVAE sets the VAE's shift_factor and scaling_factor from the
// posterior means of images, as FLUX's were chosen: the shift is their
// mean and the scale one over their standard deviation, so that the
// latents the DiT sees have mean 0 and variance 1 like its noise.
func calibrateVAE(v *model.VAE, pngs [][]byte, size int, dev gotch.Device) error {
	var mu, sd float64
	var err error
	libtorch.NoGrad(func() {
		var x *ts.Tensor
		if x, err = model.EncodeImages(model.PixelSpace{}, pngs, size, dev); err != nil {
			return
		}
		mean, logvar := v.Posterior(x)
		x.MustDrop()
		logvar.MustDrop()
		mu = mean.MustMean(gotch.Float, false).Float64Values(true)[0]
		sd = mean.MustStd(true, true).Float64Values(true)[0]
	})
	if err != nil {
		return err
	}
	if sd <= 0 || math.IsNaN(sd) || math.IsInf(sd, 0) {
		return fmt.Errorf("VAE calibration: the latents' standard deviation is %g", sd)
	}
	v.Cfg.ShiftFactor = &mu
	v.Cfg.ScalingFactor = 1 / sd
	return nil
}
