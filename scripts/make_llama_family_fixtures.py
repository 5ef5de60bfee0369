#!/usr/bin/env python3
"""Writes the Llama-family parity fixtures for `tests/llama_parity.rs`.

For each `model_type` (llama, mistral, qwen2, qwen3, phi3, gemma, gemma2,
gemma3_text, mixtral, qwen3_moe) a small random model is
built by `transformers` from a config with the options that matter switched
on, its norm weights perturbed so that they are not all ones, and saved as a
Hugging Face folder under `tests/fixtures/llama_family/<case>/`. Beside it,
`expected.safetensors` holds what `transformers` computes with it:

- `ids` [2, T] and `logits` [2, T, V] of the forward pass;
- `loss`: the causal-LM loss with `labels = ids` (shifted inside), plus
  `router_aux_loss_coef` times the load-balancing loss for a mixture of
  experts with `output_router_logits`;
- `short.logits` (longrope only): the logits of `ids` cut to the original
  length, where the short factors are in use;
- `grad.<name>`: the gradient of that loss for every parameter, under the
  name the tensor has in the saved file (a mixture of experts holds its
  experts fused, `experts.gate_up_proj` [E, 2F, C], and saves them one
  by one, `experts.<e>.w1`/`gate_proj`, …: see `stored_gradients`);
- `adamw_losses` [10] and `adamw_logits`: ten AdamW steps (lr 1e-2,
  betas 0.9/0.999, eps 1e-8, weight decay 0.1 on every parameter) on the same
  batch, the loss before each step and the logits after the last;
- `prompt` [1, P], `greedy_cached` and `greedy_uncached` [1, P + N]: greedy
  generation with and without the KV cache (the script checks they are
  equal; with longrope the cached keys keep the turn of the factor set they
  were made with, as transformers keeps them, and on these fixtures the
  tokens still agree).

`preset_parameters.json` holds, for the published configurations our presets
copy, the parameter count `transformers` gives them (built on the meta
device, so nothing is allocated).

Requirements: `pip install torch transformers safetensors` (transformers 5.x).
Run from anywhere:

    python3 scripts/make_llama_family_fixtures.py
"""

import json
import os

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM
from make_gpt2_fixtures import windowed_loss  # the same windows for every model family

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "llama_family")
VOCAB, T, PROMPT, NEW = 64, 12, 5, 8
EVAL_TOKENS = 150

SMALL = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    attn_implementation="eager",
)

CASES = {
    # GQA, llama3 rope scaling (a short original context so every band is
    # used), an untied head.
    "llama": dict(
        model_type="llama",
        tie_word_embeddings=False,
        rope_parameters=dict(
            rope_type="llama3",
            rope_theta=10000.0,
            factor=4.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=16,
        ),
    ),
    # A sliding window shorter than the sequence and than prompt + new tokens.
    "mistral": dict(model_type="mistral", tie_word_embeddings=False, sliding_window=4, head_dim=8),
    # q/k/v bias, a tied head.
    "qwen2": dict(model_type="qwen2", tie_word_embeddings=True, rope_parameters=dict(rope_type="default", rope_theta=1e6)),
    # QK-norm, a head size that is not hidden/heads, a tied head.
    "qwen3": dict(model_type="qwen3", tie_word_embeddings=True, head_dim=16),
    # Fused qkv_proj and gate_up_proj, half of each head turning, longrope
    # with an original length of 8: the 12-token batch, the eval windows and
    # generation past 8 tokens use the long factors, the prompt the short.
    "phi3": dict(
        model_type="phi3",
        tie_word_embeddings=False,
        pad_token_id=None,  # Phi-3's default 32000 is outside this vocabulary
        original_max_position_embeddings=8,
        rope_parameters=dict(
            rope_type="longrope",
            rope_theta=10000.0,
            partial_rotary_factor=0.5,
            original_max_position_embeddings=8,
            short_factor=[1.0, 1.7],
            long_factor=[2.5, 9.0],
        ),
    ),
    # GeGLU, (1 + w) norms, the scaled embedding, multi-query attention, a
    # head size (16) that is not hidden/heads.
    "gemma": dict(model_type="gemma", num_key_value_heads=1, head_dim=16),
    # Soft-capped scores and logits (caps small enough to bite), four norms a
    # block, a query_pre_attn_scalar that is not head_dim, a window of 4 on the
    # sliding layer (layer 0; layer 1 is full).
    "gemma2": dict(
        model_type="gemma2",
        head_dim=16,
        attn_logit_softcapping=3.0,
        final_logit_softcapping=5.0,
        query_pre_attn_scalar=10,
        sliding_window=4,
    ),
    # QK-norm, a sliding and a full layer with rotary bases of their own (the
    # full one with linear scaling), and Gemma 2's options but the score cap,
    # which transformers' Gemma 3 attention does not apply.
    "gemma3_text": dict(
        model_type="gemma3_text",
        head_dim=16,
        final_logit_softcapping=4.0,
        query_pre_attn_scalar=12,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={
            "full_attention": dict(rope_type="linear", factor=2.0, rope_theta=1e6),
            "sliding_attention": dict(rope_type="default", rope_theta=1e4),
        },
    ),
    # Four experts, two per token, weights renormalised; the load-balancing
    # loss in the training loss (a coefficient large enough to show); the
    # sliding window as Mistral's.
    "mixtral": dict(
        model_type="mixtral",
        tie_word_embeddings=False,
        sliding_window=4,
        num_local_experts=4,
        num_experts_per_tok=2,
        intermediate_size=24,
        output_router_logits=True,
        router_aux_loss_coef=0.1,
    ),
    # Four experts of width 24, two per token, weights not renormalised;
    # layer 1 dense (width 48); QK-norm and head size 16 as Qwen3's.
    "qwen3_moe": dict(
        model_type="qwen3_moe",
        tie_word_embeddings=False,
        head_dim=16,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=24,
        norm_topk_prob=False,
        mlp_only_layers=[1],
        # No end-of-text id: `min_new_tokens` would otherwise forbid it in
        # the greedy run, and this model's greedy choice is that id.
        eos_token_id=None,
    ),
}

# The published configurations behind our presets (the Hub's config.json).
PUBLISHED = {
    "llama-2-7b": dict(model_type="llama", vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False),
    "llama-3.2-1b": dict(model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, head_dim=64, tie_word_embeddings=True),
    "llama-3.2-3b": dict(model_type="llama", vocab_size=128256, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "llama-3.1-8b": dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
    "mistral-7b": dict(model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
    "qwen2.5-0.5b": dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "qwen3-0.6b": dict(model_type="qwen3", vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "qwen3-1.7b": dict(model_type="qwen3", vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True),
    "smollm2-135m": dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True),
    "smollm2-360m": dict(model_type="llama", vocab_size=49152, hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15, num_key_value_heads=5, tie_word_embeddings=True),
    "tinyllama-1.1b": dict(model_type="llama", vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4, tie_word_embeddings=False),
    "deepseek-coder-1.3b": dict(model_type="llama", vocab_size=32256, hidden_size=2048, intermediate_size=5504, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=16, tie_word_embeddings=False),
    "codellama-7b": dict(model_type="llama", vocab_size=32016, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False),
    "phi-3-mini-4k": dict(model_type="phi3", vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False),
    "gemma-2b": dict(model_type="gemma", vocab_size=256000, hidden_size=2048, intermediate_size=16384, num_hidden_layers=18, num_attention_heads=8, num_key_value_heads=1, head_dim=256, tie_word_embeddings=True),
    "gemma-2-2b": dict(model_type="gemma2", vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256, tie_word_embeddings=True),
    "gemma-3-270m": dict(model_type="gemma3_text", vocab_size=262144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1, head_dim=256, tie_word_embeddings=True),
    "gemma-3-1b": dict(model_type="gemma3_text", vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4, num_key_value_heads=1, head_dim=256, tie_word_embeddings=True),
    "mixtral-8x7b": dict(model_type="mixtral", vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, num_local_experts=8, num_experts_per_tok=2, tie_word_embeddings=False),
    "qwen3-30b-a3b": dict(model_type="qwen3_moe", vocab_size=151936, hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768, num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4, head_dim=128, num_experts=128, num_experts_per_tok=8, norm_topk_prob=True, tie_word_embeddings=False),
}

# How each mixture-of-experts family saves an expert's gate, up and down
# projections (`save_pretrained` writes the fused tensors one expert at a time).
EXPERT_PARTS = {"mixtral": ("w1", "w3", "w2"), "qwen3_moe": ("gate_proj", "up_proj", "down_proj")}


def stored_gradients(model, model_type):
    """Every parameter's gradient under its name in the saved file: a fused
    `experts.gate_up_proj` [E, 2F, C] split into each expert's gate (first F
    rows) and up, `experts.down_proj` [E, C, F] into each expert's down."""
    grads = {}
    for name, p in model.named_parameters():
        g = p.grad.detach().clone()
        if model_type == "mixtral":  # `mlp` in memory, `block_sparse_moe` in the file
            name = name.replace(".mlp.", ".block_sparse_moe.")
        if name.endswith("experts.gate_up_proj"):
            gate, up, _ = EXPERT_PARTS[model_type]
            f = g.shape[1] // 2
            for e in range(g.shape[0]):
                grads[name.replace("gate_up_proj", f"{e}.{gate}.weight")] = g[e, :f]
                grads[name.replace("gate_up_proj", f"{e}.{up}.weight")] = g[e, f:]
        elif name.endswith("experts.down_proj"):
            down = EXPERT_PARTS[model_type][2]
            for e in range(g.shape[0]):
                grads[name.replace("down_proj", f"{e}.{down}.weight")] = g[e]
        else:
            grads[name] = g
    return grads


def build(case, settings):
    settings = dict(SMALL, **settings)
    model_type = settings.pop("model_type")
    config = AutoConfig.for_model(model_type, **settings)
    torch.manual_seed(sum(map(ord, case)))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.1)  # transformers starts biases at zero
    return model


def main():
    os.makedirs(ROOT, exist_ok=True)
    for case, settings in CASES.items():
        model = build(case, settings)
        folder = os.path.join(ROOT, case)
        model.save_pretrained(folder, safe_serialization=True)
        gen = torch.Generator().manual_seed(7)
        ids = torch.randint(0, VOCAB, (2, T), generator=gen)
        out = {"ids": ids}
        out_model = model(ids, labels=ids)
        out["logits"] = out_model.logits.detach()
        out["loss"] = out_model.loss.detach().reshape(1)
        original = settings.get("rope_parameters", {}).get("original_max_position_embeddings")
        if settings.get("rope_parameters", {}).get("rope_type") == "longrope":
            # The batch cut to the original length: the short factors' logits.
            with torch.no_grad():
                out["short.logits"] = model(ids[:, :original]).logits
        out_model.loss.backward()
        for name, g in stored_gradients(model, settings["model_type"]).items():
            out[f"grad.{name}"] = g
        model.zero_grad()

        prompt = ids[:1, :PROMPT].clone()
        out["prompt"] = prompt
        with torch.no_grad():
            for use_cache in (True, False):
                greedy = model.generate(
                    prompt, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False, use_cache=use_cache, pad_token_id=0
                )
                out["greedy_cached" if use_cache else "greedy_uncached"] = greedy
        if "longrope" not in str(settings):
            assert torch.equal(out["greedy_cached"], out["greedy_uncached"]), case
        print(case, "greedy", out["greedy_cached"].tolist(), out["greedy_uncached"].tolist())

        # Windowed evaluation of a stream longer than the context (windows of
        # max_position_embeddings + 1 tokens, as `gpt::eval::evaluate` cuts it).
        stream = torch.randint(0, VOCAB, (EVAL_TOKENS,), generator=gen)
        eval_loss, count = windowed_loss(model, stream, SMALL["max_position_embeddings"])
        out["eval.stream"] = stream
        out["eval.loss"] = torch.tensor([eval_loss], dtype=torch.float32)
        out["eval.count"] = torch.tensor([count])

        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
        losses = []
        for _ in range(10):
            opt.zero_grad()
            loss = model(ids, labels=ids).loss
            losses.append(loss.item())
            loss.backward()
            opt.step()
        out["adamw_losses"] = torch.tensor(losses)
        with torch.no_grad():
            out["adamw_logits"] = model(ids).logits
        out = {k: v.contiguous().clone() for k, v in out.items()}
        save_file(out, os.path.join(folder, "expected.safetensors"))
        print(case, "loss", out["loss"].item(), "params", sum(p.numel() for p in model.parameters()))

    counts = {}
    for name, settings in PUBLISHED.items():
        settings = dict(settings)
        model_type = settings.pop("model_type")
        config = AutoConfig.for_model(model_type, **settings)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        counts[name] = sum(p.numel() for p in model.parameters())
    with open(os.path.join(ROOT, "preset_parameters.json"), "w") as f:
        json.dump(counts, f, indent=1)
        f.write("\n")
    print(counts)


if __name__ == "__main__":
    main()
