"""Loads an export's mllm/ folder with HuggingFace transformers, for the Go
test export/hf_test.go. Test-only; run with the project's venv python
(scripts/setup-pyenv.sh).

usage: hf_load.py EXPORT_DIR CASES_JSON OUT_DIR

CASES_JSON holds {"chats": [{"messages": [...], "enable_thinking": bool or
null}], "texts": [str]}. Writes OUT_DIR/result.json with, per chat, the
rendered chat template and its ids, per text its ids and decoding, the
loading info (missing and unexpected weights) and the generation config;
and OUT_DIR/logits.safetensors with the logits of the first chat's ids.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig


def main():
    export, cases_path, out = sys.argv[1:4]
    mllm = os.path.join(export, "mllm")
    with open(cases_path) as f:
        cases = json.load(f)
    tok = AutoTokenizer.from_pretrained(mllm)
    model, info = AutoModelForCausalLM.from_pretrained(
        mllm, torch_dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    model.eval()
    result = {
        "tokenizer_class": type(tok).__name__,
        "model_class": type(model).__name__,
        "loading": {k: sorted(v) if not isinstance(v, list) else [str(x) for x in v] for k, v in info.items()},
        "chats": [],
        "texts": [],
    }
    for chat in cases["chats"]:
        kwargs = {}
        if chat.get("enable_thinking") is not None:
            kwargs["enable_thinking"] = chat["enable_thinking"]
        text = tok.apply_chat_template(chat["messages"], tokenize=False, add_generation_prompt=True, **kwargs)
        ids = tok(text)["input_ids"]
        result["chats"].append({"text": text, "ids": ids})
    for text in cases["texts"]:
        ids = tok(text)["input_ids"]
        result["texts"].append({"ids": ids, "decoded": tok.decode(ids)})
    gen = GenerationConfig.from_pretrained(mllm)
    result["generation"] = {"eos_token_id": gen.eos_token_id, "pad_token_id": gen.pad_token_id,
                            "temperature": gen.temperature, "top_p": gen.top_p, "do_sample": gen.do_sample}
    ids = torch.tensor([result["chats"][0]["ids"]], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float().contiguous()
    save_file({"logits": logits}, os.path.join(out, "logits.safetensors"))
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
