#!/usr/bin/env python3
"""Writes `tests/fixtures/attention_maps.safetensors` for `tests/inspect.rs`.

For each fixture model (`tests/fixtures/gpt2-tiny` and the folders of the
Llama family, Phi-3, Gemma and the mixtures of experts under
`tests/fixtures/llama_family/`), loaded by `transformers` with
`attn_implementation="eager"`, one short sequence of ids is run with
`output_attentions=True` and `output_hidden_states=True`. Stored per case:

- `ids.<case>` [1, T] (int64): the input;
- `attn.<case>` [L, H, T, T]: the attention weights of every layer and head,
  query rows down, key columns across;
- `lens_id.<case>` [L, T] (int64) and `lens_prob.<case>` [L, T]: the logit
  lens, the top token and its probability when the final norm and the head
  are applied to the residual stream after each block (transformers' last
  hidden state already has the final norm applied; the others do not).

T is 7: longer than the sliding windows of 4 (Mistral, Mixtral, Gemma 2
and 3's local layers), and small enough that
the file stays a few KB.

Requirements: `pip install torch transformers safetensors` (transformers 5.x).
Run from anywhere:

    python3 scripts/make_attention_map_fixtures.py
"""

import os

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(FIXTURES, "attention_maps.safetensors")
T = 7

CASES = {
    "gpt2": os.path.join(FIXTURES, "gpt2-tiny"),
    "llama": os.path.join(FIXTURES, "llama_family", "llama"),
    "mistral": os.path.join(FIXTURES, "llama_family", "mistral"),
    "qwen2": os.path.join(FIXTURES, "llama_family", "qwen2"),
    "qwen3": os.path.join(FIXTURES, "llama_family", "qwen3"),
    "phi3": os.path.join(FIXTURES, "llama_family", "phi3"),
    "gemma": os.path.join(FIXTURES, "llama_family", "gemma"),
    "gemma2": os.path.join(FIXTURES, "llama_family", "gemma2"),
    "gemma3_text": os.path.join(FIXTURES, "llama_family", "gemma3_text"),
    "mixtral": os.path.join(FIXTURES, "llama_family", "mixtral"),
    "qwen3_moe": os.path.join(FIXTURES, "llama_family", "qwen3_moe"),
}


def final_norm(model):
    return model.transformer.ln_f if model.config.model_type == "gpt2" else model.model.norm


def head(model, h):
    """The output head as the model applies it: Gemma 2 and 3 soft-cap the
    logits (`final_logit_softcapping`) after the projection."""
    logits = model.lm_head(h)
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def main():
    out = {}
    for case, folder in CASES.items():
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
        model.eval()
        gen = torch.Generator().manual_seed(7)
        ids = torch.randint(0, model.config.vocab_size, (1, T), generator=gen)
        with torch.no_grad():
            result = model(ids, output_attentions=True, output_hidden_states=True)
            attn = torch.cat(result.attentions, dim=0)  # [L, H, T, T]
            layers = len(result.attentions)
            # hidden_states[0] is the embedding; [i + 1] follows block i.
            lens = []
            for i in range(layers):
                h = result.hidden_states[i + 1][0]
                if i < layers - 1:
                    h = final_norm(model)(h)
                lens.append(torch.softmax(head(model, h), dim=-1))
            lens = torch.stack(lens)  # [L, T, V]
            assert torch.allclose(lens[-1], torch.softmax(result.logits[0], dim=-1), atol=1e-6)
            prob, top = lens.max(dim=-1)
        out[f"ids.{case}"] = ids.contiguous()
        out[f"attn.{case}"] = attn.float().contiguous()
        out[f"lens_id.{case}"] = top.contiguous()
        out[f"lens_prob.{case}"] = prob.float().contiguous()
    save_file(out, OUT)
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
