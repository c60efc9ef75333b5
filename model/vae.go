package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/thinkgen/thinkgen/config"
	"github.com/thinkgen/thinkgen/internal/libtorch"
)

// VAEConfig is the part of a diffusers AutoencoderKL config.json that
// shapes the network, with diffusers' names and defaults. LatentsMean and
// LatentsStd (per-channel normalisation some VAEs declare) are not
// supported: latents are normalised with ScalingFactor and ShiftFactor
// alone, as FLUX's VAE does.
type VAEConfig struct {
	ClassName string `json:"_class_name"`
	// InChannels and OutChannels are the image channels (3).
	InChannels  int `json:"in_channels"`
	OutChannels int `json:"out_channels"`
	// DownBlockTypes and UpBlockTypes are one DownEncoderBlock2D and one
	// UpDecoderBlock2D per width of BlockOutChannels; each down block but
	// the last halves the resolution, each up block but the last doubles it.
	DownBlockTypes   []string `json:"down_block_types"`
	UpBlockTypes     []string `json:"up_block_types"`
	BlockOutChannels []int    `json:"block_out_channels"`
	// LayersPerBlock resnets per down block (one more per up block).
	LayersPerBlock int    `json:"layers_per_block"`
	ActFn          string `json:"act_fn"`
	// LatentChannels of the posterior (16 for FLUX).
	LatentChannels int `json:"latent_channels"`
	NormNumGroups  int `json:"norm_num_groups"`
	SampleSize     int `json:"sample_size"`
	// ScalingFactor and ShiftFactor map the posterior mean z to the DiT's
	// latent (z − shift)·scale (FLUX: 0.3611, 0.1159); a null shift is 0.
	ScalingFactor float64  `json:"scaling_factor"`
	ShiftFactor   *float64 `json:"shift_factor"`
	// UseQuantConv and UsePostQuantConv add the 1×1 convolutions after the
	// encoder and before the decoder (true for SD's VAE, false for FLUX's).
	UseQuantConv         bool `json:"use_quant_conv"`
	UsePostQuantConv     bool `json:"use_post_quant_conv"`
	MidBlockAddAttention bool `json:"mid_block_add_attention"`
	// ForceUpcast is kept for diffusers (thinkgen's VAE runs in float32).
	ForceUpcast bool      `json:"force_upcast"`
	LatentsMean []float64 `json:"latents_mean"`
	LatentsStd  []float64 `json:"latents_std"`
}

// DefaultVAEConfig returns diffusers' AutoencoderKL defaults, which
// ParseVAEConfig starts from before reading a config.json.
func DefaultVAEConfig() VAEConfig {
	return VAEConfig{
		ClassName: "AutoencoderKL", InChannels: 3, OutChannels: 3,
		DownBlockTypes: []string{"DownEncoderBlock2D"}, UpBlockTypes: []string{"UpDecoderBlock2D"},
		BlockOutChannels: []int{64}, LayersPerBlock: 1, ActFn: "silu", LatentChannels: 4,
		NormNumGroups: 32, SampleSize: 32, ScalingFactor: 0.18215,
		UseQuantConv: true, UsePostQuantConv: true, MidBlockAddAttention: true, ForceUpcast: true,
	}
}

// VAEConfigFor returns the AutoencoderKL config of a model section with
// dit.latent vae: model.vae's architecture, dit.channels latent channels,
// dit.vae_scale downsampling, scaling_factor 1 and no shift (pre-training's
// VAE stage measures both on its data).
func VAEConfigFor(m config.Model) VAEConfig {
	c := DefaultVAEConfig()
	c.BlockOutChannels = m.VAE.BlockWidths(m.DiT.VAEScale)
	c.DownBlockTypes, c.UpBlockTypes = nil, nil
	for range c.BlockOutChannels {
		c.DownBlockTypes = append(c.DownBlockTypes, "DownEncoderBlock2D")
		c.UpBlockTypes = append(c.UpBlockTypes, "UpDecoderBlock2D")
	}
	c.LayersPerBlock = m.VAE.LayersPerBlock
	c.NormNumGroups = m.VAE.NormGroups
	c.LatentChannels = m.DiT.Channels
	c.SampleSize = m.DiT.ImageSize
	c.ScalingFactor = 1
	c.UseQuantConv, c.UsePostQuantConv = m.VAE.QuantConv, m.VAE.QuantConv
	return c
}

// fits reports how c differs from the architecture m asks for (empty when
// it fits); scaling and shift are the VAE's own.
func (c VAEConfig) fits(m config.Model) []string {
	want := VAEConfigFor(m)
	if got, w := c.summary(), want.summary(); got != w {
		return []string{fmt.Sprintf("the VAE has %s, model.vae and model.dit ask for %s", got, w)}
	}
	return nil
}

// ParseVAEConfig reads a diffusers AutoencoderKL config.json (name is used
// in errors) and checks that thinkgen can build it.
func ParseVAEConfig(name string, data []byte) (VAEConfig, error) {
	c := DefaultVAEConfig()
	// diffusers' defaults for these lists are one-element tuples; a file
	// that gives them replaces them whole.
	c.DownBlockTypes, c.UpBlockTypes, c.BlockOutChannels = nil, nil, nil
	if err := json.Unmarshal(data, &c); err != nil {
		return VAEConfig{}, fmt.Errorf("%s: %w", name, err)
	}
	d := DefaultVAEConfig()
	if c.DownBlockTypes == nil {
		c.DownBlockTypes = d.DownBlockTypes
	}
	if c.UpBlockTypes == nil {
		c.UpBlockTypes = d.UpBlockTypes
	}
	if c.BlockOutChannels == nil {
		c.BlockOutChannels = d.BlockOutChannels
	}
	if err := c.Validate(); err != nil {
		return VAEConfig{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// Validate reports the first field thinkgen's AutoencoderKL cannot build.
func (c VAEConfig) Validate() error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("%s is %v, want %s", field, v, want))
	}
	if c.ClassName != "" && c.ClassName != "AutoencoderKL" {
		bad("_class_name", c.ClassName, "AutoencoderKL")
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"in_channels", c.InChannels}, {"out_channels", c.OutChannels}, {"layers_per_block", c.LayersPerBlock}, {"latent_channels", c.LatentChannels}, {"norm_num_groups", c.NormNumGroups}} {
		if f.v <= 0 {
			bad(f.name, f.v, "> 0")
		}
	}
	if c.ActFn != "silu" {
		bad("act_fn", c.ActFn, `"silu"`)
	}
	if len(c.BlockOutChannels) == 0 {
		bad("block_out_channels", c.BlockOutChannels, "at least one width")
	}
	for _, w := range c.BlockOutChannels {
		if w <= 0 || c.NormNumGroups <= 0 || w%c.NormNumGroups != 0 {
			bad("block_out_channels", c.BlockOutChannels, fmt.Sprintf("positive multiples of norm_num_groups (%d)", c.NormNumGroups))
			break
		}
	}
	for _, t := range []struct {
		field, want string
		types       []string
	}{{"down_block_types", "DownEncoderBlock2D", c.DownBlockTypes}, {"up_block_types", "UpDecoderBlock2D", c.UpBlockTypes}} {
		ok := len(t.types) == len(c.BlockOutChannels)
		for _, b := range t.types {
			ok = ok && b == t.want
		}
		if !ok {
			bad(t.field, t.types, fmt.Sprintf("%d × %q (one per block_out_channels)", len(c.BlockOutChannels), t.want))
		}
	}
	if c.ScalingFactor <= 0 || math.IsInf(c.ScalingFactor, 0) {
		bad("scaling_factor", c.ScalingFactor, "> 0")
	}
	if c.LatentsMean != nil || c.LatentsStd != nil {
		bad("latents_mean/latents_std", "set", "null (per-channel latent statistics are not supported)")
	}
	return errors.Join(errs...)
}

// Scale is the spatial downsampling factor, 2^(blocks − 1).
func (c VAEConfig) Scale() int { return 1 << (len(c.BlockOutChannels) - 1) }

// Shift is shift_factor, 0 when null.
func (c VAEConfig) Shift() float64 {
	if c.ShiftFactor == nil {
		return 0
	}
	return *c.ShiftFactor
}

// VAESpecs lists an AutoencoderKL's parameters with diffusers' names.
func VAESpecs(c VAEConfig) []Spec {
	var specs []Spec
	conv := func(name string, out, in, k int) {
		fan := float64(in * k * k)
		specs = append(specs,
			Spec{Name: name + ".weight", Shape: []int64{int64(out), int64(in), int64(k), int64(k)}, Std: 1 / math.Sqrt(fan)},
			Spec{Name: name + ".bias", Shape: []int64{int64(out)}, Init: InitZeros})
	}
	lin := func(name string, n int) {
		specs = append(specs,
			Spec{Name: name + ".weight", Shape: []int64{int64(n), int64(n)}, Std: 1 / math.Sqrt(float64(n))},
			Spec{Name: name + ".bias", Shape: []int64{int64(n)}, Init: InitZeros})
	}
	norm := func(name string, n int) {
		specs = append(specs,
			Spec{Name: name + ".weight", Shape: []int64{int64(n)}, Init: InitOnes},
			Spec{Name: name + ".bias", Shape: []int64{int64(n)}, Init: InitZeros})
	}
	resnet := func(p string, in, out int) {
		norm(p+"norm1", in)
		conv(p+"conv1", out, in, 3)
		norm(p+"norm2", out)
		conv(p+"conv2", out, out, 3)
		if in != out {
			conv(p+"conv_shortcut", out, in, 1)
		}
	}
	mid := func(p string, ch int) {
		resnet(p+"resnets.0.", ch, ch)
		if c.MidBlockAddAttention {
			a := p + "attentions.0."
			norm(a+"group_norm", ch)
			lin(a+"to_q", ch)
			lin(a+"to_k", ch)
			lin(a+"to_v", ch)
			lin(a+"to_out.0", ch)
		}
		resnet(p+"resnets.1.", ch, ch)
	}
	blocks := c.BlockOutChannels
	last := blocks[len(blocks)-1]

	// stack is one down or up block: n resnets from in to out channels,
	// then its resampling conv (none after the last block).
	stack := func(p string, in, out, n int, resampler string, last bool) {
		for j := 0; j < n; j++ {
			resnet(fmt.Sprintf("%sresnets.%d.", p, j), in, out)
			in = out
		}
		if !last {
			conv(p+resampler, out, out, 3)
		}
	}

	conv("encoder.conv_in", blocks[0], c.InChannels, 3)
	out := blocks[0]
	for i, w := range blocks {
		stack(fmt.Sprintf("encoder.down_blocks.%d.", i), out, w, c.LayersPerBlock, "downsamplers.0.conv", i == len(blocks)-1)
		out = w
	}
	mid("encoder.mid_block.", last)
	norm("encoder.conv_norm_out", last)
	conv("encoder.conv_out", 2*c.LatentChannels, last, 3)
	if c.UseQuantConv {
		conv("quant_conv", 2*c.LatentChannels, 2*c.LatentChannels, 1)
	}
	if c.UsePostQuantConv {
		conv("post_quant_conv", c.LatentChannels, c.LatentChannels, 1)
	}

	conv("decoder.conv_in", last, c.LatentChannels, 3)
	mid("decoder.mid_block.", last)
	out = last
	for i := range blocks {
		w := blocks[len(blocks)-1-i]
		stack(fmt.Sprintf("decoder.up_blocks.%d.", i), out, w, c.LayersPerBlock+1, "upsamplers.0.conv", i == len(blocks)-1)
		out = w
	}
	norm("decoder.conv_norm_out", blocks[0])
	conv("decoder.conv_out", c.OutChannels, blocks[0], 3)
	return specs
}

// VAE is diffusers' AutoencoderKL (the VAE of Stable Diffusion and FLUX):
// a convolutional encoder of ResnetBlock2D down blocks and a mid block
// with one single-head self-attention, a diagonal Gaussian posterior over
// LatentChannels channels at 1/Scale the resolution, and the mirrored
// decoder. As a [Latent] it encodes images to the normalised posterior
// mean (mean − shift_factor)·scaling_factor and decodes the inverse, both
// without gradients; training uses Posterior and DecodeRaw.
type VAE struct {
	Cfg VAEConfig
	P   *Params
}

var _ Latent = (*VAE)(nil)

// NewVAE builds an AutoencoderKL with freshly initialised parameters.
func NewVAE(c VAEConfig, dev gotch.Device, seed uint64) (*VAE, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("model: VAE config: %w", err)
	}
	p, err := NewParams(VAESpecs(c), dev, seed)
	if err != nil {
		return nil, err
	}
	return &VAE{Cfg: c, P: p}, nil
}

// The files of a diffusers AutoencoderKL folder (a pipeline's vae/).
const (
	VAEConfigFile  = "config.json"
	VAEWeightsFile = "diffusion_pytorch_model.safetensors"
)

// LoadVAE reads a diffusers AutoencoderKL folder (config.json and
// diffusion_pytorch_model.safetensors, as save_pretrained writes them).
// Before allocating anything it checks every tensor of the weights file
// against the architecture config.json describes, so a folder whose
// config does not match its weights is refused with an error naming the
// file and the tensor.
func LoadVAE(dir string, dev gotch.Device) (*VAE, error) {
	return loadVAE(filepath.Join(dir, VAEConfigFile), filepath.Join(dir, VAEWeightsFile), dev)
}

// loadVAE is LoadVAE for a config and a weights file of any names.
func loadVAE(configPath, weights string, dev gotch.Device) (*VAE, error) {
	c, err := readVAEConfig(configPath, weights)
	if err != nil {
		return nil, err
	}
	v, err := NewVAE(c, dev, 0)
	if err != nil {
		return nil, err
	}
	if _, err := LoadSafetensors(weights, v.P); err != nil {
		v.Drop()
		return nil, fmt.Errorf("load VAE: %w", err)
	}
	return v, nil
}

// readVAEConfig parses a VAE's config and checks its weights' header
// against it, reading no tensor.
func readVAEConfig(configPath, weights string) (VAEConfig, error) {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return VAEConfig{}, fmt.Errorf("load VAE: %w", err)
	}
	c, err := ParseVAEConfig(configPath, data)
	if err != nil {
		return VAEConfig{}, fmt.Errorf("load VAE: %w", err)
	}
	if err := CheckSafetensorsHeader(weights, VAESpecs(c)); err != nil {
		return VAEConfig{}, fmt.Errorf("load VAE: %w (%s describes %s)", err, filepath.Base(configPath), c.summary())
	}
	return c, nil
}

// Save writes the VAE as a diffusers AutoencoderKL folder: config.json and
// diffusion_pytorch_model.safetensors (float32).
func (v *VAE) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save VAE %s: %w", dir, err)
	}
	return v.save(filepath.Join(dir, VAEConfigFile), filepath.Join(dir, VAEWeightsFile))
}

// save writes the config and the weights to the given paths.
func (v *VAE) save(configPath, weights string) error {
	c := v.Cfg
	c.ClassName = "AutoencoderKL"
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("save VAE: %w", err)
	}
	if err := SaveSafetensors(weights, v.P, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save VAE: %w", err)
	}
	if err := os.WriteFile(configPath, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save VAE: %w", err)
	}
	return nil
}

// Drop frees the parameters.
func (v *VAE) Drop() { v.P.Drop() }

// Channels is latent_channels.
func (v *VAE) Channels() int { return v.Cfg.LatentChannels }

// Scale is the downsampling factor.
func (v *VAE) Scale() int { return v.Cfg.Scale() }

// Encode maps images [N, 3, H, W] in [0, 1] to the DiT's latents
// (mean − shift_factor)·scaling_factor, without gradients.
func (v *VAE) Encode(images *ts.Tensor) *ts.Tensor {
	var out *ts.Tensor
	libtorch.NoGrad(func() {
		x := images.MustMulScalar(ts.FloatScalar(2), false).MustAddScalar(ts.FloatScalar(-1), true)
		mean, logvar := v.Posterior(x)
		x.MustDrop()
		logvar.MustDrop()
		out = mean.MustAddScalar(ts.FloatScalar(-v.Cfg.Shift()), true).MustMulScalar(ts.FloatScalar(v.Cfg.ScalingFactor), true)
	})
	return out
}

// Decode maps latents back to images clamped to [0, 1], without gradients.
func (v *VAE) Decode(latents *ts.Tensor) *ts.Tensor {
	var out *ts.Tensor
	libtorch.NoGrad(func() {
		z := latents.MustMulScalar(ts.FloatScalar(1/v.Cfg.ScalingFactor), false).MustAddScalar(ts.FloatScalar(v.Cfg.Shift()), true)
		x := v.DecodeRaw(z)
		z.MustDrop()
		out = x.MustAddScalar(ts.FloatScalar(1), true).MustMulScalar(ts.FloatScalar(0.5), true).
			MustClamp(ts.FloatScalar(0), ts.FloatScalar(1), true)
	})
	return out
}

// Posterior runs the encoder (and quant_conv) on images in [−1, 1] and
// returns the diagonal Gaussian's mean and log-variance [N, C, H/s, W/s],
// the log-variance clamped to [−30, 20] as diffusers does. Both are owned
// by the caller.
func (v *VAE) Posterior(x *ts.Tensor) (mean, logvar *ts.Tensor) {
	var s libtorch.Scope
	defer s.Close()
	h := v.encoder(&s, x)
	if v.Cfg.UseQuantConv {
		h = v.conv(&s, "quant_conv", h, 1, 0)
	}
	L := int64(v.Cfg.LatentChannels)
	mean = h.MustNarrow(1, 0, L, false).MustContiguous(true)
	logvar = h.MustNarrow(1, L, L, false).MustClamp(ts.FloatScalar(-30), ts.FloatScalar(20), true)
	return mean, logvar
}

// DecodeRaw runs post_quant_conv and the decoder on a posterior sample z
// (not normalised) and returns images in about [−1, 1], owned by the
// caller.
func (v *VAE) DecodeRaw(z *ts.Tensor) *ts.Tensor {
	var s libtorch.Scope
	defer s.Close()
	if v.Cfg.UsePostQuantConv {
		z = v.conv(&s, "post_quant_conv", z, 1, 0)
	}
	return v.decoder(&s, z).MustShallowClone()
}

func (v *VAE) encoder(s *libtorch.Scope, x *ts.Tensor) *ts.Tensor {
	c := v.Cfg
	h := v.conv(s, "encoder.conv_in", x, 1, 1)
	for i := range c.BlockOutChannels {
		for j := 0; j < c.LayersPerBlock; j++ {
			h = v.resnet(s, fmt.Sprintf("encoder.down_blocks.%d.resnets.%d.", i, j), h)
		}
		if i < len(c.BlockOutChannels)-1 {
			// Downsample2D with padding 0 pads right and bottom by one.
			h = s.Add(h.MustConstantPadNd([]int64{0, 1, 0, 1}, false))
			h = v.conv(s, fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i), h, 2, 0)
		}
	}
	h = v.midBlock(s, "encoder.mid_block.", h)
	h = s.Add(v.groupNorm(s, "encoder.conv_norm_out", h).MustSilu(false))
	return v.conv(s, "encoder.conv_out", h, 1, 1)
}

func (v *VAE) decoder(s *libtorch.Scope, z *ts.Tensor) *ts.Tensor {
	c := v.Cfg
	h := v.conv(s, "decoder.conv_in", z, 1, 1)
	h = v.midBlock(s, "decoder.mid_block.", h)
	for i := range c.BlockOutChannels {
		for j := 0; j < c.LayersPerBlock+1; j++ {
			h = v.resnet(s, fmt.Sprintf("decoder.up_blocks.%d.resnets.%d.", i, j), h)
		}
		if i < len(c.BlockOutChannels)-1 {
			sz := h.MustSize()
			h = s.Add(h.MustUpsampleNearest2d([]int64{2 * sz[2], 2 * sz[3]}, []float64{2}, []float64{2}, false))
			h = v.conv(s, fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i), h, 1, 1)
		}
	}
	h = s.Add(v.groupNorm(s, "decoder.conv_norm_out", h).MustSilu(false))
	return v.conv(s, "decoder.conv_out", h, 1, 1)
}

// conv applies the 2-D convolution p.weight, p.bias with the given stride
// and padding.
func (v *VAE) conv(s *libtorch.Scope, p string, x *ts.Tensor, stride, pad int64) *ts.Tensor {
	return s.Add(ts.MustConv2d(x, v.P.Get(p+".weight"), v.P.Get(p+".bias"), []int64{stride, stride}, []int64{pad, pad}, []int64{1, 1}, 1))
}

func (v *VAE) groupNorm(s *libtorch.Scope, p string, x *ts.Tensor) *ts.Tensor {
	return s.Add(ts.MustGroupNorm(x, int64(v.Cfg.NormNumGroups), v.P.Get(p+".weight"), v.P.Get(p+".bias"), 1e-6, false))
}

// resnet is diffusers' ResnetBlock2D without a time embedding:
// x' + conv2(silu(norm2(conv1(silu(norm1(x)))))), x' being x or its 1×1
// conv_shortcut when the width changes.
func (v *VAE) resnet(s *libtorch.Scope, p string, x *ts.Tensor) *ts.Tensor {
	h := s.Add(v.groupNorm(s, p+"norm1", x).MustSilu(false))
	h = v.conv(s, p+"conv1", h, 1, 1)
	h = s.Add(v.groupNorm(s, p+"norm2", h).MustSilu(false))
	h = v.conv(s, p+"conv2", h, 1, 1)
	if _, ok := v.P.Lookup(p + "conv_shortcut.weight"); ok {
		x = v.conv(s, p+"conv_shortcut", x, 1, 0)
	}
	return s.Add(x.MustAdd(h, false))
}

// midBlock is UNetMidBlock2D: resnet, attention, resnet.
func (v *VAE) midBlock(s *libtorch.Scope, p string, x *ts.Tensor) *ts.Tensor {
	h := v.resnet(s, p+"resnets.0.", x)
	if v.Cfg.MidBlockAddAttention {
		h = v.attention(s, p+"attentions.0.", h)
	}
	return v.resnet(s, p+"resnets.1.", h)
}

// attention is the mid block's single-head self-attention over the H·W
// positions, with a GroupNorm in front and a residual connection. Its
// scores are [N, H·W, H·W]: quadratic in the latent's area.
func (v *VAE) attention(s *libtorch.Scope, p string, x *ts.Tensor) *ts.Tensor {
	sz := x.MustSize()
	n, ch, hw := sz[0], sz[1], sz[2]*sz[3]
	h := v.groupNorm(s, p+"group_norm", x)
	h = s.Add(h.MustView([]int64{n, ch, hw}, false).MustTranspose(1, 2, true)) // [N, HW, C]
	q := linear(s, h, v.P.Get(p+"to_q.weight"), v.P.Get(p+"to_q.bias"))
	k := linear(s, h, v.P.Get(p+"to_k.weight"), v.P.Get(p+"to_k.bias"))
	val := linear(s, h, v.P.Get(p+"to_v.weight"), v.P.Get(p+"to_v.bias"))
	kt := s.Add(k.MustTranspose(1, 2, false))
	scores := s.Add(q.MustMatmul(kt, false).MustMulScalar(ts.FloatScalar(1/math.Sqrt(float64(ch))), true))
	w := s.Add(scores.MustSoftmax(-1, scores.DType(), false))
	o := linear(s, s.Add(w.MustMatmul(val, false)), v.P.Get(p+"to_out.0.weight"), v.P.Get(p+"to_out.0.bias"))
	o = s.Add(o.MustTranspose(1, 2, false).MustReshape([]int64{n, ch, sz[2], sz[3]}, true))
	return s.Add(x.MustAdd(o, false))
}

// summary names the architecture in one line for errors.
func (c VAEConfig) summary() string {
	return fmt.Sprintf("block_out_channels %v, layers_per_block %d, latent_channels %d, norm_num_groups %d, use_quant_conv %v, mid_block_add_attention %v",
		c.BlockOutChannels, c.LayersPerBlock, c.LatentChannels, c.NormNumGroups, c.UseQuantConv, c.MidBlockAddAttention)
}
