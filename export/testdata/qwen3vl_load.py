"""Loads an exported Qwen3-VL MLLM folder with transformers'
Qwen3VLForConditionalGeneration and runs the reference input on it, for
export/hfimport_test.go. Test-only; run with the Qwen3-VL venv's python
(scripts/setup-pyenv.sh vl).

usage: qwen3vl_load.py MODEL_DIR EXPECTED OUT

EXPECTED is the expected.safetensors model/testdata/qwen3vl_reference.py
writes (ids [2, T], row 0 with one square image, and its pixel_values).
Fails when from_pretrained reports a missing, unexpected or mismatched
weight; otherwise writes OUT holding logits_image and logits_text, in
float32.
"""
import math
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen3VLForConditionalGeneration


def main():
    path, expected, out = sys.argv[1:4]
    model, info = Qwen3VLForConditionalGeneration.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    if bad:
        sys.exit(f"from_pretrained({path}): {bad}")
    model.eval()
    exp = load_file(expected)
    pixel_values = exp["pixel_values"]
    side = math.isqrt(pixel_values.shape[0])
    grid = torch.tensor([[1, side, side]])
    with torch.no_grad():
        logits = model(input_ids=exp["ids"], pixel_values=pixel_values, image_grid_thw=grid).logits
    save_file({"logits_image": logits[0].float().contiguous(), "logits_text": logits[1].float().contiguous()}, out)


if __name__ == "__main__":
    main()
