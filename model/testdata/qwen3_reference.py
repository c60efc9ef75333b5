"""Reference outputs of HuggingFace transformers' Qwen3ForCausalLM for the
Go parity test (model/parity_test.go). Test-only; run by the Go test with
the project's venv python (scripts/setup-pyenv.sh).

usage: qwen3_reference.py OUT_DIR VOCAB HIDDEN LAYERS HEADS KV_HEADS HEAD_DIM FFN TIED

Writes OUT_DIR/model/ (save_pretrained, safetensors) and
OUT_DIR/expected.safetensors with the input ids, the logits and the last
two hidden states (hidden_states[-2], hidden_states[-1]).
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import Qwen3Config, Qwen3ForCausalLM


def main():
    out = sys.argv[1]
    vocab, hidden, layers, heads, kv, head_dim, ffn = (int(a) for a in sys.argv[2:9])
    tied = sys.argv[9] == "true"
    torch.manual_seed(0)
    cfg = Qwen3Config(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
        intermediate_size=ffn, max_position_embeddings=64, rope_theta=10000.0,
        rms_norm_eps=1e-6, tie_word_embeddings=tied, attention_bias=False,
        torch_dtype="float32",
    )
    cfg._attn_implementation = "eager"
    model = Qwen3ForCausalLM(cfg).float().eval()
    with torch.no_grad():
        # Norm weights start at one; move them so a mix-up of names shows.
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(4, vocab, (2, 11), generator=g)
    with torch.no_grad():
        res = model(input_ids=ids, output_hidden_states=True)
    save_file(
        {
            "ids": ids.to(torch.int64).contiguous(),
            "logits": res.logits.float().contiguous(),
            "hidden_prev": res.hidden_states[-2].float().contiguous(),
            "hidden_last": res.hidden_states[-1].float().contiguous(),
        },
        os.path.join(out, "expected.safetensors"),
    )


if __name__ == "__main__":
    main()
