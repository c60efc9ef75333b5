"""Loads an export's LoRA adapter onto its exported MLLM with PEFT, for the
Go test export/lora_test.go. Test-only; run with the project's venv python
(scripts/setup-pyenv.sh).

usage: peft_load.py EXPORT_DIR IDS_JSON OUT_DIR

Writes OUT_DIR/logits.safetensors with "adapted" (the logits of the ids
through PeftModel.from_pretrained(base, EXPORT_DIR/mllm/adapter)) and
"base" (the same model with the adapter disabled), and OUT_DIR/result.json
with the PEFT model's class and the adapter's loaded LoRA modules.
"""
import json
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM


def main():
    export, ids_path, out = sys.argv[1:4]
    with open(ids_path) as f:
        ids = torch.tensor([json.load(f)])
    base = AutoModelForCausalLM.from_pretrained(
        os.path.join(export, "mllm"), torch_dtype=torch.float32, attn_implementation="eager"
    )
    model = PeftModel.from_pretrained(base, os.path.join(export, "mllm", "adapter"))
    model.eval()
    with torch.no_grad():
        adapted = model(input_ids=ids).logits[0].contiguous()
        with model.disable_adapter():
            plain = model(input_ids=ids).logits[0].contiguous()
    modules = sorted(n for n, _ in model.named_modules() if n.endswith(".lora_A.default"))
    save_file({"adapted": adapted, "base": plain}, os.path.join(out, "logits.safetensors"))
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump({"model_class": type(model).__name__, "lora_modules": modules}, f)


if __name__ == "__main__":
    main()
