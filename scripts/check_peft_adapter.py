"""Checks that Hugging Face PEFT loads an adapter saved by scratchgpt and
that base + adapter in PEFT gives the logits of the merged model scratchgpt
saved beside it.

    scratchgpt finetune classify --model runs/tiny --lora-rank 4 --epochs 1 --out runs/cls-lora
    python3 scripts/check_peft_adapter.py runs/tiny runs/cls-lora/adapter runs/cls-lora

Needs `pip install torch transformers peft`. Exits 1 if the logits differ by
more than 1e-4.
"""

import sys

try:
    import torch
    from peft import PeftModel
    from transformers import GPT2LMHeadModel
except ImportError:
    sys.exit("needs: pip install torch transformers peft")


def main():
    base_dir, adapter_dir, merged_dir = sys.argv[1:4]
    torch.manual_seed(0)
    base = GPT2LMHeadModel.from_pretrained(base_dir).eval()
    ids = torch.randint(0, base.config.vocab_size, (2, 12))

    def logits(model):
        with torch.no_grad():
            return model(input_ids=ids).logits

    reference = logits(base)
    peft = PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(base_dir), adapter_dir).eval()
    merged = GPT2LMHeadModel.from_pretrained(merged_dir).eval()
    diff = (logits(peft) - logits(merged)).abs().max().item()
    effect = (reference - logits(merged)).abs().max().item()
    print(f"max |PEFT(base + adapter) - merged| = {diff:.3e}  (the adapter moves logits by up to {effect:.3f})")
    sys.exit(0 if diff < 1e-4 else 1)


if __name__ == "__main__":
    main()
