#!/usr/bin/env python3
"""Writes `tests/fixtures/gguf_rope_order.gguf`: the query and key weights of
the `llama` parity fixture (`tests/fixtures/llama_family/llama`: 4 query
heads, 2 key/value heads, head size 8) in the row order llama.cpp's
converter stores them for its `llama` architecture, which pairs rotary
elements 2j, 2j+1 where Hugging Face pairs j, j + D/2.

The reordering is llama.cpp's `LlamaModel.permute` (convert_hf_to_gguf.py):

    w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

with n_head the key/value head count for `k_proj`. `tests/gguf.rs` reads
these tensors back through our loader's reordering and expects the
Hugging Face weights exactly. Requirements: `pip install gguf numpy
safetensors`; run from anywhere and commit the file (about 13 KB).
"""

from pathlib import Path

import json
import numpy as np
import gguf
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests" / "fixtures" / "llama_family" / "llama"
OUT = ROOT / "tests" / "fixtures" / "gguf_rope_order.gguf"


def permute(w, n_head, n_head_kv):
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    config = json.loads((MODEL / "config.json").read_text())
    weights = load_file(str(MODEL / "model.safetensors"))
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    writer = gguf.GGUFWriter(str(OUT), "llama")
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    for layer in range(config["num_hidden_layers"]):
        q = weights[f"model.layers.{layer}.self_attn.q_proj.weight"]
        k = weights[f"model.layers.{layer}.self_attn.k_proj.weight"]
        writer.add_tensor(f"blk.{layer}.attn_q.weight", np.ascontiguousarray(permute(q, heads, heads)))
        writer.add_tensor(f"blk.{layer}.attn_k.weight", np.ascontiguousarray(permute(k, heads, kv_heads)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
