"""Checks that Hugging Face PEFT loads an adapter saved by scratchgpt and
that base + adapter in PEFT gives the logits of the merged model scratchgpt
saved beside it.

    scratchgpt finetune classify --model runs/tiny --lora-rank 4 --epochs 1 --out runs/cls-lora
    python3 scripts/check_peft_adapter.py runs/tiny runs/cls-lora/adapter runs/cls-lora

The folders are loaded with `AutoModelForCausalLM`, so a Llama-family base
(its adapter targets q_proj ... down_proj) works as GPT-2 does:

    scratchgpt train --preset nano-llama --out runs/nano-llama
    scratchgpt finetune instruct --model runs/nano-llama --data records.json --lora-rank 2 --out runs/nano-llama-lora
    python3 scripts/check_peft_adapter.py runs/nano-llama runs/nano-llama-lora/adapter runs/nano-llama-lora

Needs `pip install torch transformers peft`. Exits 1 if the logits differ by
more than 1e-4.
"""

import sys

try:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
except ImportError:
    sys.exit("needs: pip install torch transformers peft")


def load(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def main():
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} BASE_DIR ADAPTER_DIR MERGED_DIR")
    base_dir, adapter_dir, merged_dir = sys.argv[1:4]
    torch.manual_seed(0)
    base = load(base_dir)
    ids = torch.randint(0, base.config.vocab_size, (2, 12))

    def logits(model):
        with torch.no_grad():
            return model(input_ids=ids).logits

    reference = logits(base)
    peft = PeftModel.from_pretrained(load(base_dir), adapter_dir).eval()
    merged = load(merged_dir)
    diff = (logits(peft) - logits(merged)).abs().max().item()
    effect = (reference - logits(merged)).abs().max().item()
    print(f"{type(base).__name__}: max |PEFT(base + adapter) - merged| = {diff:.3e}  (the adapter moves logits by up to {effect:.3f})")
    sys.exit(0 if diff < 1e-4 else 1)


if __name__ == "__main__":
    main()
