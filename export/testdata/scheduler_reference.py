"""Samples from a thinkgen export with diffusers' FlowMatchEulerDiscreteScheduler
for the Go test export/serve_test.go. Test-only; run with the project's
venv python (scripts/setup-pyenv.sh).

usage: scheduler_reference.py EXPORT_DIR NOISE.safetensors OUT.safetensors

The scheduler comes from EXPORT_DIR/scheduler as diffusers loads it, and
its grid is set as FluxPipeline sets it (sigmas = linspace(1, 1/N, N)).
diffusers cannot build thinkgen's transformer, so the Go test serves it:
for each of the scheduler's timesteps this script writes the line
"STEP <timestep>" and the sample (float32, little-endian) to stdout, and
reads the guided transformer output of the same shape from stdin. After
the last step it writes "DONE" and saves the final latents, and, when the
export has a vae/ folder, the image decoded by diffusers' AutoencoderKL
(latents / scaling_factor + shift_factor, then (x + 1) / 2 clamped to
[0, 1], as diffusers' pipelines post-process) into OUT.safetensors.
"""
import json
import os
import sys

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
from safetensors.torch import load_file, save_file


def main():
    export, noise_path, out_path = sys.argv[1:4]
    sched = FlowMatchEulerDiscreteScheduler.from_pretrained(os.path.join(export, "scheduler"))
    with open(os.path.join(export, "scheduler", "scheduler_config.json")) as f:
        n = json.load(f)["thinkgen"]["num_inference_steps"]
    sched.set_timesteps(sigmas=np.linspace(1.0, 1 / n, n))
    x = load_file(noise_path)["noise"].float()
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    for t in sched.timesteps:
        out.write(f"STEP {t.item()!r}\n".encode())
        out.write(x.contiguous().numpy().astype("<f4").tobytes())
        out.flush()
        raw = inp.read(4 * x.numel())
        v = torch.frombuffer(bytearray(raw), dtype=torch.float32).view(x.shape)
        x = sched.step(v, t, x).prev_sample
    out.write(b"DONE\n")
    out.flush()
    result = {"latents": x.contiguous()}
    vae_dir = os.path.join(export, "vae")
    if os.path.isdir(vae_dir):
        vae = AutoencoderKL.from_pretrained(vae_dir).eval()
        c = vae.config
        with torch.no_grad():
            z = x / c.scaling_factor + (c.shift_factor or 0.0)
            result["image"] = (vae.decode(z).sample / 2 + 0.5).clamp(0, 1).contiguous()
    save_file(result, out_path)


if __name__ == "__main__":
    main()
