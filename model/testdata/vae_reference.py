"""Reference outputs of diffusers' AutoencoderKL for the Go parity test
(model/vae_test.go). Test-only; run by the Go test with the project's venv
python (scripts/setup-pyenv.sh).

usage: vae_reference.py OUT_DIR

Builds a small random AutoencoderKL (two blocks of widths 32 and 64, so a
down/upsampler and a conv_shortcut, 4 latent channels, FLUX's
scaling_factor and shift_factor) twice, with the quant convolutions (as
SD's VAE) into OUT_DIR/quant/ and without (as FLUX's) into OUT_DIR/flux/.
Each gets vae/ (save_pretrained) and expected.safetensors: images x in
[-1, 1], the posterior mean of encode(x), latents z and decode(z).
"""
import os
import sys

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file


def main():
    for name, quant in (("quant", True), ("flux", False)):
        write(os.path.join(sys.argv[1], name), quant)


def write(out, quant):
    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 64), layers_per_block=1,
        latent_channels=4, norm_num_groups=8, sample_size=16,
        scaling_factor=0.3611, shift_factor=0.1159,
        use_quant_conv=quant, use_post_quant_conv=quant,
    ).eval()
    # Norms start at (1, 0); randomise them so that a swapped weight and
    # bias, or a wrong group count, shows in the outputs.
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    vae.save_pretrained(os.path.join(out, "vae"), safe_serialization=True)

    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        mean = vae.encode(x).latent_dist.mean
        dec = vae.decode(z).sample
    save_file({"x": x.contiguous(), "mean": mean.contiguous(), "z": z.contiguous(), "decoded": dec.contiguous()},
              os.path.join(out, "expected.safetensors"))


if __name__ == "__main__":
    main()
