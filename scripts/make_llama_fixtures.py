#!/usr/bin/env python3
"""Writes `tests/fixtures/llama.safetensors`: the Llama block's ops as
transformers computes them, for `tests/torch_parity.rs` (`llama_ops_match_pytorch`).

Requirements: `pip install torch safetensors numpy` (transformers itself is not
needed: the formulas below are copied from transformers' `LlamaRMSNorm`,
`rotate_half` / `apply_rotary_pos_emb`, `LlamaRotaryEmbedding.forward` and
`modeling_rope_utils.py`, written out so that this script runs with torch
alone). Run from anywhere:

    python3 scripts/make_llama_fixtures.py

The layout is `make_fixtures.py`'s (same `Family` class): `<case>.in.<i>`,
`.out`, `.r`, `.grad.<i>`. Rotary cases differentiate x only; their settings
(theta, head_dim, scaling, offset) are in the case name and the Rust table.
"""

import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Family, away_from_zero, randn  # noqa: E402  (seeds and settings too)

B, T, H, D = 1, 3, 2, 8  # rotary: x is [B, T, H, D]
C = 6  # RMSNorm width


def rms_norm(x, weight, eps):
    """transformers' LlamaRMSNorm.forward."""
    input_dtype = x.dtype
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(input_dtype)


def default_inv_freq(base, dim):
    """`_compute_default_rope_parameters`: 1 / base^(2i/d), in float32."""
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))


def linear_inv_freq(base, dim, factor):
    """`_compute_linear_scaling_rope_parameters`."""
    return default_inv_freq(base, dim) / factor


def dynamic_inv_freq(base, dim, factor, max_position_embeddings, seq_len):
    """`_compute_dynamic_ntk_parameters` (seq_len = the largest position + 1)."""
    seq_len = max(seq_len, max_position_embeddings)
    base = base * ((factor * seq_len / max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2))
    return default_inv_freq(base, dim)


def llama3_inv_freq(base, dim, factor, low_freq_factor, high_freq_factor, old_context_len):
    """`_compute_llama3_parameters`."""
    inv_freq = default_inv_freq(base, dim)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def cos_sin(inv_freq, offset, t):
    """`LlamaRotaryEmbedding.forward` for positions offset .. offset + t."""
    position_ids = torch.arange(offset, offset + t)[None, :]
    freqs = position_ids[..., None].float() * inv_freq[None, None, :].float()
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()  # [1, t, d]


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(x, cos, sin):
    """`apply_rotary_pos_emb` for x [B, T, H, D]: cos/sin unsqueezed at the
    heads dim (transformers' unsqueeze_dim=2 for this layout)."""
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    return (x * cos) + (rotate_half(x) * sin)


def llama():
    f = Family("llama")
    x, w = away_from_zero(B, T, C), away_from_zero(C)
    f.case("rms_norm", "LlamaRMSNorm(6, eps=1e-6)(x) with weight w", lambda x, w: rms_norm(x, w, 1e-6), [x, w])
    q, wq = away_from_zero(B, T, H, D), away_from_zero(D)
    f.case(
        "rms_norm_per_head",
        "Qwen3 q_norm: LlamaRMSNorm(head_dim=8, eps=1e-6) on q [B,T,H,D]",
        lambda q, w: rms_norm(q, w, 1e-6),
        [q, wq],
    )
    ropes = [
        ("rope_default", "theta 10000, offset 0", default_inv_freq(10000.0, D), 0),
        ("rope_default_offset5", "theta 10000, offset 5", default_inv_freq(10000.0, D), 5),
        ("rope_linear", "linear factor 4, theta 10000, offset 2", linear_inv_freq(10000.0, D, 4.0), 2),
        (
            "rope_dynamic",
            "dynamic factor 2, max_position_embeddings 4, theta 10000, offset 6 (seq_len 9)",
            dynamic_inv_freq(10000.0, D, 2.0, 4, 6 + T),
            6,
        ),
        (
            "rope_llama3",
            "llama3 factor 8, low 1, high 8, original_max 1000, theta 10000, offset 3",
            llama3_inv_freq(10000.0, D, 8.0, 1.0, 8.0, 1000),
            3,
        ),
    ]
    for name, settings, inv_freq, offset in ropes:
        cos, sin = cos_sin(inv_freq, offset, T)
        f.case(
            name,
            f"apply_rotary_pos_emb(x[B,T,H,D]) with rotate_half, {settings}",
            lambda x, cos=cos, sin=sin: apply_rotary_pos_emb(x, cos, sin),
            [randn(B, T, H, D)],
        )
    g = randn(B, T, C) * 2.0
    f.case("silu", "F.silu(x)", torch.nn.functional.silu, [g])
    f.case("swiglu", "F.silu(gate) * up (LlamaMLP's act_fn(gate_proj(x)) * up_proj(x))",
           lambda g, u: torch.nn.functional.silu(g) * u, [randn(B, T, C) * 2.0, randn(B, T, C)])
    return f


if __name__ == "__main__":
    n = llama().save()
    print(f"wrote {n} cases to tests/fixtures/llama.safetensors")
