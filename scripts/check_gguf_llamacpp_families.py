#!/usr/bin/env python3
"""Checks that llama.cpp runs scratchgpt's GGUF exports of the families
whose GGUF form has parts of its own as scratchgpt and `transformers` do:

- `llama3`: a Llama with `llama3` rope scaling (`rope_freqs.weight`; head
  16, base 500000, factor 8, original context 64, so that of its 8
  frequencies one is kept, one blended and six divided by 8);
- `phi3`: a Phi-3 (`attn_qkv` and `ffn_up` fused; a rotated part of 12 of
  each head of 16, `partial_rotary_factor` 0.75);
- `gemma`: a Gemma (norms stored as 1 + w, random norm weights in
  ±0.3; heads of 32 in a width of 64; the head tied);
- `gemma2`: a Gemma 2 (four norms a block, stored as 1 + w; score cap 5
  and logit cap 10, small so that they bite; a window of 4 on layers 0 and
  2 of 3, which the prompt outruns);
- `gemma3`: a Gemma 3 (QK-norm; a window of 4 on five layers of six,
  turning by base 10000, the sixth by base 1000000; a logit cap of 10; an
  untied head);
- `mixtral`: a Mixtral, written as `llama` with `expert_count` (4 experts,
  2 per token, the experts' matrices stacked into `ffn_*_exps`);
- `qwen3moe`: a Qwen3-MoE (4 experts of width 64, 2 per token,
  `norm_topk_prob`, QK-norm, heads of 32 in a width of 64).

Each is a small random model made with `transformers`, given a byte-level
BPE trained here with `tokenizers` (`vocab.json` + `merges.txt`), and
saved as a folder; then

- `scratchgpt export --format gguf --to f32` writes it (llama3: the
  converter's formula is checked against the stored factors);
- llama.cpp (llama-cpp-python, f32) gives the prompt's logits and a greedy
  continuation; `transformers` gives the same from the folder; scratchgpt
  gives its greedy continuation from the GGUF file (`generate --json`);
- llama3: the same file with `rope_freqs.weight` set to ones is run in
  llama.cpp too, to show the factors are used (its logits move away).

Requirements: `pip install torch transformers tokenizers gguf
llama-cpp-python` and a built `scratchgpt` (`cargo build`). By hand:

    python3 scripts/check_gguf_llamacpp_families.py [--scratchgpt target/debug/scratchgpt] [--families llama3,phi3,gemma,gemma2,gemma3,mixtral,qwen3moe]

Exit code 0 when every greedy token agrees, 1 otherwise.
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, GemmaConfig,
                          GemmaForCausalLM, LlamaConfig, LlamaForCausalLM, MixtralConfig,
                          MixtralForCausalLM, Phi3Config, Phi3ForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM)

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The quick brown fox jumps over the lazy dog, and then"
CORPUS = ["The quick brown fox jumps over the lazy dog.", "A dog and a fox ran over the hill and then home."] * 50
ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64, "rope_theta": 500000.0}


def converter_factors(dim, base, factor, low, high, old):
    """llama.cpp's convert_hf_to_gguf (LlamaModel.generate_extra_tensors)."""
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            out.append(1)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(out, dtype=torch.float32).numpy()


def make_folder(folder: Path, family: str):
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(CORPUS, vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False)
    tok.save_model(str(folder))
    vocab = len(json.loads((folder / "vocab.json").read_text()))
    torch.manual_seed(0)
    sizes = dict(
        vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, initializer_range=0.2,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    if family == "llama3":
        model = LlamaForCausalLM(LlamaConfig(rope_parameters=ROPE, **sizes)).eval()
    elif family.startswith("gemma"):
        sizes["tie_word_embeddings"] = True
        if family == "gemma2":
            sizes["num_hidden_layers"] = 3
            config = Gemma2Config(head_dim=32, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=32,
                                  attn_logit_softcapping=5.0, final_logit_softcapping=10.0, sliding_window=4, **sizes)
            model = Gemma2ForCausalLM(config).eval()
        elif family == "gemma3":
            # Untied: llama.cpp's gemma3 reads an `output` of its own.
            sizes["num_hidden_layers"], sizes["tie_word_embeddings"] = 6, False
            config = Gemma3TextConfig(head_dim=32, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=32,
                                      final_logit_softcapping=10.0, sliding_window=4, **sizes)
            model = Gemma3ForCausalLM(config).eval()
        else:
            config = GemmaConfig(head_dim=32, hidden_activation="gelu_pytorch_tanh", **sizes)
            model = GemmaForCausalLM(config).eval()
        # Norm weights away from zero (Gemma scales by 1 + w), so that
        # storing them shifted by one matters.
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.uniform_(-0.3, 0.3)
    elif family == "mixtral":
        config = MixtralConfig(num_local_experts=4, num_experts_per_tok=2, sliding_window=None, **sizes)
        model = MixtralForCausalLM(config).eval()
    elif family == "qwen3moe":
        config = Qwen3MoeConfig(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, norm_topk_prob=True,
                                head_dim=32, sliding_window=None, **sizes)
        model = Qwen3MoeForCausalLM(config).eval()
    else:
        config = Phi3Config(partial_rotary_factor=0.75, sliding_window=None, original_max_position_embeddings=256,
                            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75},
                            **sizes)
        model = Phi3ForCausalLM(config).eval()
    model.save_pretrained(folder)
    return model


def scratchgpt(binary, *args):
    out = subprocess.run([binary, *args, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"scratchgpt {' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def llama_cpp_run(path: Path, prompt_ids, n):
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=len(prompt_ids) + n + 1, n_threads=2, logits_all=True, verbose=False)
    llm.reset()
    llm.eval(prompt_ids)
    logits = np.asarray(llm.scores[: llm.n_tokens]).copy()
    out = []
    for _ in range(n):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(tok)
        llm.eval([tok])
    return logits, out


def with_ones(src: Path, dst: Path):
    """`src` with rope_freqs.weight replaced by ones (no scaling)."""
    reader = gguf.GGUFReader(str(src))
    data = bytearray(src.read_bytes())
    t = next(t for t in reader.tensors if t.name == "rope_freqs.weight")
    start = t.data_offset
    data[start:start + 4 * t.n_elements] = np.ones(t.n_elements, dtype=np.float32).tobytes()
    dst.write_bytes(bytes(data))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scratchgpt", default=str(ROOT / "target" / "debug" / "scratchgpt"))
    p.add_argument("--tokens", type=int, default=24)
    p.add_argument("--families", default="llama3,phi3,gemma,gemma2,gemma3,mixtral,qwen3moe")
    args = p.parse_args()
    ok = True
    for family in args.families.split(","):
        print(f"== {family}")
        ok &= check(args, family)
    print("all equal" if ok else "some differ")
    return 0 if ok else 1


def check(args, family: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Not named after the family: llama.cpp sets attributes on Phi-3's
        # own special tokens (`</s>`) when general.name contains "phi3".
        folder = tmp / "tiny-random"
        folder.mkdir()
        model = make_folder(folder, family)
        path = tmp / f"{family}-f32.gguf"
        scratchgpt(args.scratchgpt, "export", "--model", str(folder), "--format", "gguf", "--out", str(path), "--to", "f32")
        ours = scratchgpt(args.scratchgpt, "generate", "--model", str(path), "--prompt", PROMPT,
                          "--max-new-tokens", str(args.tokens))
        prompt_ids = ours["prompt_ids"]
        theirs_logits, theirs = llama_cpp_run(path, prompt_ids, args.tokens)
        with torch.no_grad():
            hf_logits = model(torch.tensor([prompt_ids])).logits[0].numpy()
            hf = model.generate(torch.tensor([prompt_ids]), max_new_tokens=args.tokens, do_sample=False,
                                min_new_tokens=args.tokens)[0, len(prompt_ids):].tolist()
        vocab = hf_logits.shape[1]
        diff = np.max(np.abs(theirs_logits[:, :vocab] - hf_logits))
        print(f"prompt of {len(prompt_ids)} tokens: llama.cpp vs transformers logits, max |diff| {diff:.2e} "
              f"(logits span {np.ptp(hf_logits):.1f})")
        if family == "llama3":
            rope_freqs_check(path, prompt_ids, hf_logits, tmp)
        ok = ours["new_ids"] == theirs == hf
        for name, ids in [("scratchgpt", ours["new_ids"]), ("llama.cpp", theirs), ("transformers", hf)]:
            print(f"{name:12}: {ids}")
        print("greedy tokens all equal" if ok else "greedy tokens differ")
        return ok


def rope_freqs_check(path: Path, prompt_ids, hf_logits, tmp: Path):
    """The stored factors against the converter's formula, and llama.cpp's
    logits without them."""
    reader = gguf.GGUFReader(str(path))
    stored = next(np.asarray(t.data) for t in reader.tensors if t.name == "rope_freqs.weight")
    want = converter_factors(16, ROPE["rope_theta"], 8.0, 1.0, 4.0, 64)
    print(f"rope_freqs.weight: {stored.tolist()}")
    print(f"  converter's formula: max relative difference {np.max(np.abs(stored - want) / want):.2e}")

    vocab = hf_logits.shape[1]
    ones = tmp / "ones.gguf"
    with_ones(path, ones)
    ones_logits, _ = llama_cpp_run(ones, prompt_ids, 1)
    print(f"  the same file with rope_freqs set to ones: max |diff| {np.max(np.abs(ones_logits[:, :vocab] - hf_logits)):.2e}")


if __name__ == "__main__":
    sys.exit(main())
