"""A random Qwen3ForCausalLM saved by transformers as a sharded bfloat16
checkpoint, for thinkgen import's tests (export/hfimport_test.go) and for
measuring its memory on a large one (docs/export.md). Test-only; run with
the project's venv python (scripts/setup-pyenv.sh).

usage: hf_sharded.py OUT_DIR VOCAB HIDDEN LAYERS HEADS KV_HEADS HEAD_DIM FFN
                     MAX_SHARD_SIZE TOKENIZER_JSON [IDS]

Writes OUT_DIR/model/ (save_pretrained in bfloat16 with max_shard_size,
so model.safetensors.index.json and its shards, plus TOKENIZER_JSON as
tokenizer.json). With IDS (comma-separated token ids) it also writes
OUT_DIR/expected.safetensors holding the logits, in float32, of the
bfloat16 weights widened to float32.
"""
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import Qwen3Config, Qwen3ForCausalLM


def main():
    out = sys.argv[1]
    vocab, hidden, layers, heads, kv, head_dim, ffn = (int(a) for a in sys.argv[2:9])
    shard, tok = sys.argv[9], sys.argv[10]
    torch.manual_seed(0)
    cfg = Qwen3Config(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
        intermediate_size=ffn, max_position_embeddings=256, rope_theta=10000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=False, attention_bias=False,
    )
    cfg._attn_implementation = "eager"
    with torch.no_grad():
        model = Qwen3ForCausalLM(cfg).to(torch.bfloat16).eval()
        # Norm weights start at one; move them so a mix-up of names shows.
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    path = os.path.join(out, "model")
    model.save_pretrained(path, safe_serialization=True, max_shard_size=shard)
    shutil.copyfile(tok, os.path.join(path, "tokenizer.json"))
    if len(sys.argv) > 11:
        ids = torch.tensor([[int(i) for i in sys.argv[11].split(",")]])
        # Loaded afresh in float32: the weights are the bfloat16 ones widened,
        # the rotary table is computed in float32 (model.float() would keep
        # the one rounded to bfloat16 by .to() above).
        model = Qwen3ForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager").eval()
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0]
        save_file({"logits": logits.float().contiguous()}, os.path.join(out, "expected.safetensors"))


if __name__ == "__main__":
    main()
