#!/usr/bin/env python3
"""Checks that a model folder written by scratchgpt's `save_model` loads in
Hugging Face `transformers` and computes the reference logits.

Requirements: `pip install torch transformers safetensors`. Usage:

    cargo test --test gpt2_parity -- --ignored save_for_transformers_roundtrip
    python3 scripts/check_hf_roundtrip.py target/gpt2-roundtrip

The ignored test saves the fixture model (`tests/fixtures/gpt2-tiny`, loaded
and saved again by scratchgpt) to DIR. This script loads DIR with
`GPT2LMHeadModel.from_pretrained`, runs the fixture batch
(`tests/fixtures/gpt2_parity.safetensors`: `ids`), prints a few logits and the
largest absolute difference from the fixture's `logits`, and exits 1 when
that exceeds 1e-4 (or when the weights do not load cleanly).
"""

import os
import sys

import torch
from safetensors.torch import load_file
from transformers import GPT2LMHeadModel

torch.set_num_threads(1)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "gpt2_parity.safetensors")
TOLERANCE = 1e-4


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} DIR", file=sys.stderr)
        sys.exit(2)
    model, info = GPT2LMHeadModel.from_pretrained(sys.argv[1], attn_implementation="eager", output_loading_info=True)
    model.eval()
    problems = {k: v for k, v in info.items() if v}
    if problems:
        print(f"loading problems: {problems}")
        sys.exit(1)
    ref = load_file(FIXTURE)
    with torch.no_grad():
        logits = model(ref["ids"]).logits
    diff = (logits - ref["logits"]).abs().max().item()
    print(f"logits[0, 0, :5] = {logits[0, 0, :5].tolist()}")
    print(f"fixture         = {ref['logits'][0, 0, :5].tolist()}")
    print(f"max |diff| over {logits.numel()} logits: {diff:.3e}")
    sys.exit(0 if diff <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
