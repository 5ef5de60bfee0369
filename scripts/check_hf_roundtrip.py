#!/usr/bin/env python3
"""Checks that a model folder written by scratchgpt's `save_model` loads in
Hugging Face `transformers` and computes the reference logits.

Requirements: `pip install torch transformers safetensors`. Usage:

    python3 scripts/check_hf_roundtrip.py DIR [EXPECTED]

DIR is loaded with `AutoModelForCausalLM.from_pretrained`, so any
architecture its `config.json` names works: GPT-2, Llama, Mistral, Qwen2,
Qwen3. EXPECTED is a safetensors file holding `ids` [B, T] and the
`logits` [B, T, V] those ids should give (default: the GPT-2 fixture,
`tests/fixtures/gpt2_parity.safetensors`). The script runs the ids, prints a
few logits and the largest absolute difference from the expected ones, and
exits 1 when that exceeds 1e-4 (or when the weights do not load cleanly).

GPT-2: the ignored test saves the fixture model (`tests/fixtures/gpt2-tiny`,
loaded and saved again by scratchgpt) to target/gpt2-roundtrip:

    cargo test --test gpt2_parity -- --ignored save_for_transformers_roundtrip
    python3 scripts/check_hf_roundtrip.py target/gpt2-roundtrip

The Llama family: the ignored test saves each fixture of
`tests/fixtures/llama_family/` to target/llama-family-roundtrip/<case>:

    cargo test --test llama_parity -- --ignored save_for_transformers_roundtrip
    for case in llama mistral qwen2 qwen3; do
        python3 scripts/check_hf_roundtrip.py target/llama-family-roundtrip/$case \\
            tests/fixtures/llama_family/$case/expected.safetensors
    done
"""

import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

torch.set_num_threads(1)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
GPT2_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "gpt2_parity.safetensors")
TOLERANCE = 1e-4


def main():
    if len(sys.argv) not in (2, 3):
        print(f"usage: {sys.argv[0]} DIR [EXPECTED]", file=sys.stderr)
        sys.exit(2)
    folder = sys.argv[1]
    expected = sys.argv[2] if len(sys.argv) == 3 else GPT2_FIXTURE
    model, info = AutoModelForCausalLM.from_pretrained(
        folder, attn_implementation="eager", output_loading_info=True, dtype=torch.float32
    )
    model.eval()
    problems = {k: v for k, v in info.items() if v}
    if problems:
        print(f"loading problems: {problems}")
        sys.exit(1)
    ref = load_file(expected)
    with torch.no_grad():
        logits = model(ref["ids"]).logits
    diff = (logits - ref["logits"]).abs().max().item()
    print(f"{type(model).__name__} from {folder}")
    print(f"logits[0, 0, :5] = {logits[0, 0, :5].tolist()}")
    print(f"expected        = {ref['logits'][0, 0, :5].tolist()}")
    print(f"max |diff| over {logits.numel()} logits: {diff:.3e}")
    sys.exit(0 if diff <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
