#!/usr/bin/env python3
"""Writes the fixtures of LoRA on a mixture of experts for `tests/llama_parity.rs`.

For the tiny `mixtral` and `qwen3_moe` models of
`tests/fixtures/llama_family/` (made by make_llama_family_fixtures.py), a
rank-2 adapter on every attention projection and on every expert's gate, up
and down projection, with random non-zero A and B, written in PEFT's
per-expert layout (the layout of a checkpoint's per-expert weights):

    base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight              [r, in]
    base_model.model.model.layers.0.block_sparse_moe.experts.3.w1.lora_B.weight  [out, r]   (mixtral)
    base_model.model.model.layers.0.mlp.experts.3.gate_proj.lora_A.weight       [r, in]    (qwen3_moe)

into `tests/fixtures/moe_lora/<case>/` (adapter_config.json,
adapter_model.safetensors), and beside it `expected.safetensors`: `ids`
[2, T] and `logits` [2, T, V], what PEFT computes with the adapter loaded by
`PeftModel.from_pretrained` onto the transformers model.

transformers 5 holds a mixture of experts fused, `experts.gate_up_proj`
[E, 2F, C] and `experts.down_proj` [E, C, F], and PEFT (0.21) converts a
per-expert adapter on loading: `w1`/`w3` (`gate_proj`/`up_proj`) become one
adapter on the `gate_up_proj` parameter of rank 2·r·E (the A's stacked, the
B's block-diagonal), `w2` (`down_proj`) one of rank r·E on `down_proj`. The
script checks that conversion against merging W + (α/r)·B·A into each
expert's weights by hand, so the logits are the per-expert adapters' logits.

qwen3_moe's layer 1 is a dense MLP whose projections have the experts' names
(`mlp.gate_proj`, …). Mapping those names to the fused expert parameters,
PEFT on transformers 5 no longer adapts that MLP: an adapter for it is
ignored (the script shows it), where transformers 4 applied it. The fixture
holds that adapter with B = 0, so that both readings give PEFT's logits.

Requirements: `pip install torch transformers peft safetensors`
(transformers 5.x, peft ≥ 0.21). Run from anywhere:

    python3 scripts/make_moe_lora_fixtures.py
"""

import json
import os

import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
BASES = os.path.join(HERE, "..", "tests", "fixtures", "llama_family")
ROOT = os.path.join(HERE, "..", "tests", "fixtures", "moe_lora")
RANK, ALPHA = 2, 4.0
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
# Each family's module (in the file) and names of an expert's gate, up, down.
EXPERTS = {"mixtral": ("block_sparse_moe", ("w1", "w3", "w2")), "qwen3_moe": ("mlp", ("gate_proj", "up_proj", "down_proj"))}


def adapter_for(model, case):
    """Random A [r, in] and B [out, r] for every targeted projection, by the
    PEFT name of its weight (without `.lora_A.weight`), and the fused
    weights' deltas by hand."""
    gen = torch.Generator().manual_seed(11)
    rand = lambda *shape: 0.3 * torch.randn(*shape, generator=gen)
    module, (gate, up, down) = EXPERTS[case]
    tensors = {}
    for layer_index, layer in enumerate(model.model.layers):
        for proj in ATTENTION:
            w = getattr(layer.self_attn, proj).weight
            stem = f"base_model.model.model.layers.{layer_index}.self_attn.{proj}"
            tensors[stem] = (rand(RANK, w.shape[1]), rand(w.shape[0], RANK))
        experts = getattr(layer.mlp, "experts", None)
        if experts is None or not hasattr(experts, "gate_up_proj"):
            # A dense layer (qwen3_moe's mlp_only_layers): its MLP has the
            # targeted names too.
            for proj in (gate, up, down):
                w = getattr(layer.mlp, proj).weight
                stem = f"base_model.model.model.layers.{layer_index}.mlp.{proj}"
                tensors[stem] = (rand(RANK, w.shape[1]), rand(w.shape[0], RANK))
            continue
        n_experts, two_f, c = experts.gate_up_proj.shape
        f = two_f // 2
        for e in range(n_experts):
            stem = f"base_model.model.model.layers.{layer_index}.{module}.experts.{e}"
            tensors[f"{stem}.{gate}"] = (rand(RANK, c), rand(f, RANK))
            tensors[f"{stem}.{up}"] = (rand(RANK, c), rand(f, RANK))
            tensors[f"{stem}.{down}"] = (rand(RANK, f), rand(c, RANK))
    return tensors


@torch.no_grad()
def merged_by_hand(model, case, tensors, experts_too=True):
    """The model with W + (α/r)·B·A in every targeted weight (or in the
    attention's only)."""
    module, (gate, up, down) = EXPERTS[case]
    scale = ALPHA / RANK
    delta = lambda stem: scale * tensors[stem][1] @ tensors[stem][0]
    for layer_index, layer in enumerate(model.model.layers):
        for proj in ATTENTION:
            getattr(layer.self_attn, proj).weight += delta(f"base_model.model.model.layers.{layer_index}.self_attn.{proj}")
        experts = getattr(layer.mlp, "experts", None)
        if not experts_too:
            continue
        if experts is None or not hasattr(experts, "gate_up_proj"):
            for proj in (gate, up, down):
                stem = f"base_model.model.model.layers.{layer_index}.mlp.{proj}"
                if stem in tensors:
                    getattr(layer.mlp, proj).weight += delta(stem)
            continue
        f = experts.gate_up_proj.shape[1] // 2
        for e in range(experts.gate_up_proj.shape[0]):
            stem = f"base_model.model.model.layers.{layer_index}.{module}.experts.{e}"
            experts.gate_up_proj[e, :f] += delta(f"{stem}.{gate}")
            experts.gate_up_proj[e, f:] += delta(f"{stem}.{up}")
            experts.down_proj[e] += delta(f"{stem}.{down}")
    return model


def dense_stems(tensors):
    """The adapted projections of dense MLP layers (not experts, not attention)."""
    return [stem for stem in tensors if ".mlp." in stem and ".experts." not in stem]


def write_adapter(folder, case, tensors):
    _, parts = EXPERTS[case]
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": f"tests/fixtures/llama_family/{case}",
        "r": RANK,
        "lora_alpha": ALPHA,
        "lora_dropout": 0.0,
        "target_modules": list(ATTENTION) + list(parts),
        "fan_in_fan_out": False,
        "bias": "none",
        "inference_mode": True,
    }
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    flat = {}
    for stem, (a, b) in tensors.items():
        flat[f"{stem}.lora_A.weight"] = a.contiguous()
        flat[f"{stem}.lora_B.weight"] = b.contiguous()
    save_file(flat, os.path.join(folder, "adapter_model.safetensors"), metadata={"format": "pt"})


def peft_logits(base, folder, ids):
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    with torch.no_grad():
        return PeftModel.from_pretrained(model, folder).eval()(ids).logits


@torch.no_grad()
def by_hand(base, case, tensors, ids, experts_too=True):
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    return merged_by_hand(model, case, tensors, experts_too)(ids).logits


def main():
    for case in EXPERTS:
        base = os.path.join(BASES, case)
        folder = os.path.join(ROOT, case)
        os.makedirs(folder, exist_ok=True)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
        tensors = adapter_for(model, case)
        ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            base_logits = model(ids).logits

        dense = dense_stems(tensors)
        if dense:
            # PEFT on transformers 5 maps the expert names (`gate_proj`, …)
            # to the fused expert parameters, and then no longer adapts a
            # dense layer's MLP of the same names: an adapter for it is
            # ignored (shown here), where transformers 4 applied it. The
            # fixture holds it with B = 0, so both readings agree.
            write_adapter(folder, case, tensors)
            without_dense = {k: v for k, v in tensors.items() if k not in dense}
            skipped = (peft_logits(base, folder, ids) - by_hand(base, case, without_dense, ids)).abs().max().item()
            applied = (peft_logits(base, folder, ids) - by_hand(base, case, tensors, ids)).abs().max().item()
            print(f"{case}: PEFT vs ignoring the dense layer's adapter {skipped:.2e}, vs applying it {applied:.2e}")
            assert skipped < 1e-4 and applied > 0.1
            for stem in dense:
                a, b = tensors[stem]
                tensors[stem] = (a, torch.zeros_like(b))
        write_adapter(folder, case, tensors)
        logits = peft_logits(base, folder, ids)
        gap = (logits - by_hand(base, case, tensors, ids)).abs().max().item()
        moved = (logits - base_logits).abs().max().item()
        by_experts = (logits - by_hand(base, case, tensors, ids, False)).abs().max().item()
        print(
            f"{case}: PEFT vs merged by hand {gap:.2e}; the adapter moves the logits by {moved:.2f}, "
            f"its experts' part by {by_experts:.2f}"
        )
        assert gap < 1e-4 and moved > 0.1 and by_experts > 0.1
        save_file({"ids": ids, "logits": logits.contiguous()}, os.path.join(folder, "expected.safetensors"))


if __name__ == "__main__":
    main()
