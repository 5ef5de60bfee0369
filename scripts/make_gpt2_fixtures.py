#!/usr/bin/env python3
"""Writes the Hugging Face GPT-2 reference that `tests/gpt2_parity.rs`
compares scratchgpt's whole model against (llm.c's `test_gpt2` in spirit).

Requirements: `pip install torch transformers safetensors` (PyTorch on the
CPU is enough). Run from anywhere:

    python3 scripts/make_gpt2_fixtures.py

and commit what it writes:

    tests/fixtures/gpt2-tiny/              a tiny random GPT2LMHeadModel, saved
                                           by `save_pretrained` (config.json,
                                           generation_config.json,
                                           model.safetensors)
    tests/fixtures/gpt2_parity.safetensors what that model computes

The model is tiny (vocab 96, 32 positions, 32 wide, 2 layers, 4 heads, no
dropout) so the fixtures stay small and the Rust test runs in well under a
second per check. GPT-2's own initialisation zeroes every bias and sets every
LayerNorm to (1, 0), which would let a loader that drops or mislays those
tensors pass; so after initialisation every parameter gets a random
perturbation, and the weights are scaled up (std 0.2 instead of 0.02) so
the logits have clear winners and greedy decoding does not collapse onto
repeating one token at once (with a tied head, a small random model tends to
predict the token it was just fed). Attention is
`eager` (the textbook softmax(QKᵀ/√d)V, as in the original GPT-2).

Tensors in `gpt2_parity.safetensors` (float32 unless noted):

    ids              int64 [2, 16]  the input batch
    targets          int64 [2, 16]  the next token of each input position
    logits           [2, 16, 96]    model(ids).logits
    loss             []             F.cross_entropy(logits, targets), mean
    grad.<hf name>   d loss / d parameter, Hugging Face names and layout:
                     `grad.transformer.h.0.attn.c_attn.weight` is Conv1D's
                     [in, out], the transpose of scratchgpt's Linear [out, in].
                     `grad.transformer.wte.weight` holds both uses of the
                     tied embedding (input lookup and output head).
    adamw.losses     [11]  the loss on (ids, targets) before each of ten
                     AdamW steps and after the tenth (entry 0 equals `loss`)
    gen.prompt       int64 [5]   a prompt
    gen.tokens       int64 [20]  greedy continuation: generate(do_sample=False,
                     max_new_tokens=20), with and without the KV cache
    eval.stream      int64 [106] a token stream
    eval.loss        []    windowed mean cross-entropy of the stream (below)
    eval.count       int64 []    tokens predicted (= len(stream) - 1)

The windowed evaluation: the token stream is cut into consecutive windows of
N+1 tokens with stride N (the last, shorter window included if it has at least
2 tokens), and the result is the mean cross-entropy over all predicted tokens.
N = n_positions = 32, so the 106-token stream gives windows of 33, 33, 33 and
10 tokens (105 predictions).

The `__metadata__` has one key, `settings`: a JSON object with the optimizer
settings, seeds and library versions (one key only: safetensors writes
metadata keys in hash order, and a single key keeps the file byte-identical
between runs on the same versions).

Greedy generation past n_positions is not recorded: Hugging Face's GPT-2 has
no sliding window (positions past n_positions index outside `wpe` and fail),
so scratchgpt's sliding is tested against its own uncached loop instead.
"""

import json
import os
import shutil

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

torch.set_num_threads(1)  # one thread: reductions sum in one fixed order
torch.use_deterministic_algorithms(True)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MODEL_DIR = os.path.join(ROOT, "tests", "fixtures", "gpt2-tiny")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "gpt2_parity.safetensors")

SEED = 2  # picked so greedy decoding does not just repeat one token
VOCAB, CONTEXT, WIDTH, LAYERS, HEADS = 96, 32, 32, 2, 4
EOS = VOCAB - 1  # GPT-2's 50256 is outside this vocabulary
B, T = 2, 16
ADAMW = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
ADAMW_STEPS = 10
GEN_PROMPT = [7, 42, 3, 88, 19]
GEN_NEW = 20
EVAL_TOKENS = 106


def build_model():
    torch.manual_seed(SEED)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=CONTEXT,
        n_embd=WIDTH,
        n_layer=LAYERS,
        n_head=HEADS,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        summary_first_dropout=0.0,
        initializer_range=0.2,
        bos_token_id=EOS,
        eos_token_id=EOS,
        tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif ".ln_" in name or name.startswith("transformer.ln_f"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.add_(0.02 * torch.randn_like(p))
    return model


def eager(dir_or_model):
    model = GPT2LMHeadModel.from_pretrained(dir_or_model, attn_implementation="eager")
    model.eval()
    return model


def unique_params(model):
    """Parameters once each: lm_head.weight *is* transformer.wte.weight."""
    seen, out = set(), []
    for name, p in model.named_parameters():
        if id(p) not in seen:
            seen.add(id(p))
            out.append((name, p))
    return out


def windowed_loss(model, stream, n):
    total, count = 0.0, 0
    for start in range(0, len(stream), n):
        w = stream[start : start + n + 1]
        if len(w) < 2:
            break
        with torch.no_grad():
            logits = model(w[:-1].unsqueeze(0)).logits[0]
        total += F.cross_entropy(logits, w[1:], reduction="sum").double().item()
        count += len(w) - 1
    return total / count, count


def greedy(model, prompt, use_cache):
    ids = torch.tensor([prompt])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=GEN_NEW,
        pad_token_id=EOS,
        use_cache=use_cache,
    )
    return out[0, len(prompt) :]


def main():
    model = build_model()
    if os.path.isdir(MODEL_DIR):
        shutil.rmtree(MODEL_DIR)
    model.save_pretrained(MODEL_DIR, safe_serialization=True)
    # Everything below runs on the model as loaded back from the folder, which
    # is what the Rust test loads too.
    model = eager(MODEL_DIR)
    assert model.lm_head.weight is model.transformer.wte.weight, "head must be tied"

    out = {}
    gen = torch.Generator().manual_seed(SEED + 1)
    stream = torch.randint(0, VOCAB, (B, T + 1), generator=gen)
    ids, targets = stream[:, :-1].contiguous(), stream[:, 1:].contiguous()
    out["ids"], out["targets"] = ids, targets

    # Forward, loss, gradients.
    logits = model(ids).logits
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
    loss.backward()
    out["logits"] = logits.detach()
    out["loss"] = loss.detach()
    for name, p in unique_params(model):
        out[f"grad.{name}"] = p.grad.detach().clone()

    # Ten AdamW steps on a fresh copy of the same weights.
    model = eager(MODEL_DIR)
    model.train()  # no dropout anyway; as a training loop would
    opt = torch.optim.AdamW([p for _, p in unique_params(model)], **ADAMW)
    losses = []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(model(ids).logits.reshape(-1, VOCAB), targets.reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(F.cross_entropy(model(ids).logits.reshape(-1, VOCAB), targets.reshape(-1)).item())
    out["adamw.losses"] = torch.tensor(losses, dtype=torch.float32)
    assert losses[-1] < losses[0] - 0.5, f"AdamW should make progress: {losses}"

    # Greedy generation, with and without the KV cache.
    model = eager(MODEL_DIR)
    cached, plain = greedy(model, GEN_PROMPT, True), greedy(model, GEN_PROMPT, False)
    assert torch.equal(cached, plain), (cached, plain)
    assert len(cached) == GEN_NEW and EOS not in cached.tolist(), cached
    # A near-tie at some step would make the test hinge on the last bit of
    # float32; check every step has a clear winner.
    seq = torch.tensor([GEN_PROMPT + cached.tolist()])
    with torch.no_grad():
        step_logits = model(seq).logits[0, len(GEN_PROMPT) - 1 : -1]
    top2 = step_logits.topk(2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    assert margin > 1e-3, f"greedy margin {margin} is too small for a stable fixture"
    out["gen.prompt"] = torch.tensor(GEN_PROMPT)
    out["gen.tokens"] = cached.clone()

    # Windowed evaluation of a longer stream.
    stream = torch.randint(0, VOCAB, (EVAL_TOKENS,), generator=gen)
    eval_loss, count = windowed_loss(model, stream, CONTEXT)
    out["eval.stream"] = stream
    out["eval.loss"] = torch.tensor(eval_loss, dtype=torch.float32)
    out["eval.count"] = torch.tensor(count)

    settings = {
        "adamw": {**ADAMW, "steps": ADAMW_STEPS, "params": "unique (wte once; lm_head is tied to it)"},
        "seed": SEED,
        "generate": {"do_sample": False, "max_new_tokens": GEN_NEW, "pad_token_id": EOS, "min_margin": margin},
        "eval": {"window": CONTEXT, "stride": CONTEXT, "tokens": EVAL_TOKENS},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    out = {k: v.contiguous() for k, v in out.items()}
    save_file(out, FIXTURE, metadata={"settings": json.dumps(settings, sort_keys=True)})
    print(f"wrote {MODEL_DIR} and {FIXTURE}")
    print(f"loss {out['loss'].item():.6f}, adamw {['%.4f' % l for l in losses]}")
    print(f"greedy {cached.tolist()} (min margin {margin:.4f}), eval loss {eval_loss:.6f} over {count} tokens")


if __name__ == "__main__":
    main()
