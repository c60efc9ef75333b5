"""Reference outputs of transformers' Qwen3VLForConditionalGeneration for the
Go parity test (model/qwen3vl_parity_test.go). Test-only; run by the Go test
with the Qwen3-VL venv's python (scripts/setup-pyenv.sh vl).

usage: qwen3vl_reference.py OUT_DIR SPEC_JSON

SPEC_JSON holds the shapes (text: vocab, hidden, layers, heads, kv_heads,
head_dim, ffn, mrope_section, tied; vision: depth, hidden, heads, ffn,
patch, temporal_patch, spatial_merge, position_embeddings, deepstack), the
special token ids (image_pad, video_pad, vision_start, vision_end), the image
size, and optionally how to save: dtype ("bfloat16"; empty or absent is
float32) and max_shard_size (shards listed by model.safetensors.index.json;
empty or absent is one file). Saved in bfloat16, the outputs are those of the
bfloat16 weights widened to float32 (the checkpoint loaded afresh in float32).

Writes OUT_DIR/model/ (save_pretrained, safetensors) and
OUT_DIR/expected.safetensors: the input ids [2, T] (row 0 holds one image,
row 1 only text), the image [1, 3, H, W] in [-1, 1], the patches the image
processor makes of it (its flattening, rewritten), and per row the logits and the last two hidden
states (hidden_states[-2], the input of the last layer, and the final
normed state).
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration


def main():
    out = sys.argv[1]
    spec = json.loads(sys.argv[2])
    t, v = spec["text"], spec["vision"]
    torch.manual_seed(0)
    cfg = Qwen3VLConfig(
        text_config=dict(
            vocab_size=t["vocab"], hidden_size=t["hidden"], num_hidden_layers=t["layers"],
            num_attention_heads=t["heads"], num_key_value_heads=t["kv_heads"], head_dim=t["head_dim"],
            intermediate_size=t["ffn"], max_position_embeddings=256, rope_theta=t["rope_theta"],
            rms_norm_eps=1e-6, tie_word_embeddings=t["tied"], attention_bias=False,
            rope_scaling={"rope_type": "default", "mrope_section": t["mrope_section"], "mrope_interleaved": True},
        ),
        vision_config=dict(
            depth=v["depth"], hidden_size=v["hidden"], num_heads=v["heads"], intermediate_size=v["ffn"],
            patch_size=v["patch"], temporal_patch_size=v["temporal_patch"], spatial_merge_size=v["spatial_merge"],
            out_hidden_size=t["hidden"], num_position_embeddings=v["position_embeddings"],
            deepstack_visual_indexes=v["deepstack"], in_channels=3,
        ),
        image_token_id=spec["image_pad"], video_token_id=spec["video_pad"],
        vision_start_token_id=spec["vision_start"], vision_end_token_id=spec["vision_end"],
        tie_word_embeddings=t["tied"],
    )
    cfg._attn_implementation = "eager"
    cfg.text_config._attn_implementation = "eager"
    cfg.vision_config._attn_implementation = "eager"
    model = Qwen3VLForConditionalGeneration(cfg).float().eval()
    with torch.no_grad():
        # Norm weights start at one and biases at zero; move them so that a
        # mix-up of names shows.
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(".bias"):
                p.add_(0.1 * torch.randn_like(p))
    path = os.path.join(out, "model")
    kwargs = {"max_shard_size": spec["max_shard_size"]} if spec.get("max_shard_size") else {}
    if spec.get("dtype") == "bfloat16":
        model.to(torch.bfloat16).save_pretrained(path, safe_serialization=True, **kwargs)
        # Loaded afresh: the weights are the bfloat16 ones widened, the
        # rotary tables computed in float32.
        model = Qwen3VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    else:
        model.save_pretrained(path, safe_serialization=True, **kwargs)

    size = spec["image_size"]
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    # The flattening of transformers' Qwen2VLImageProcessor._preprocess (its
    # class needs PIL, which this venv leaves out): the still image repeated
    # over the temporal patch, then patches in merge-block order. The image
    # is already normalised, so no resize, rescale or normalisation.
    p, tp, m = v["patch"], v["temporal_patch"], v["spatial_merge"]
    gh = gw = size // p
    frames = image.repeat(tp, 1, 1, 1)  # [T, C, H, W]
    patches = frames.reshape(1, tp, 3, gh // m, m, p, gw // m, m, p)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    pixel_values = patches.reshape(gh * gw, 3 * tp * p * p)
    grid = torch.tensor([[1, gh, gw]])
    merge = v["spatial_merge"]
    n_img = int(grid.prod()) // (merge * merge)

    vocab = t["vocab"]
    special = {spec["image_pad"], spec["video_pad"], spec["vision_start"], spec["vision_end"]}
    words = [i for i in range(4, vocab) if i not in special]
    pick = lambda n: [words[int(i)] for i in torch.randint(0, len(words), (n,), generator=g)]
    row0 = pick(5) + [spec["vision_start"]] + [spec["image_pad"]] * n_img + [spec["vision_end"]] + pick(6)
    row1 = pick(len(row0))
    ids = torch.tensor([row0, row1], dtype=torch.long)
    with torch.no_grad():
        res = model(input_ids=ids, pixel_values=pixel_values, image_grid_thw=grid, output_hidden_states=True)
        # Qwen3VLForConditionalGeneration's hidden_states[-1] is the last
        # layer's output before the final norm (Qwen3ForCausalLM's is after
        # it); thinkgen's last state is after it, which Qwen3VLModel's
        # last_hidden_state gives.
        last = model.model(input_ids=ids, pixel_values=pixel_values, image_grid_thw=grid).last_hidden_state
    tensors = {
        "ids": ids.contiguous(),
        "image": image.contiguous(),
        "pixel_values": pixel_values.float().contiguous(),
    }
    for r, name in ((0, "image"), (1, "text")):
        tensors["logits_" + name] = res.logits[r].float().contiguous()
        tensors["hidden_prev_" + name] = res.hidden_states[-2][r].float().contiguous()
        tensors["hidden_last_" + name] = last[r].float().contiguous()
    save_file(tensors, os.path.join(out, "expected.safetensors"))


if __name__ == "__main__":
    main()
