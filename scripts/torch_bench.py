"""The PyTorch side of scripts/bench-vs-torch.sh: the same GPT-2 architecture
(transformers' GPT2LMHeadModel: tied head, tanh GELU, dropout 0) timed the
same way as `scratchgpt bench`, printing one JSON object.

    python3 scripts/torch_bench.py train --n-layer 4 --n-embd 256 --n-head 4 --vocab-size 50257 \
        --batch-size 8 --context 128 --steps 5 --threads 2
    python3 scripts/torch_bench.py generate --preset gpt2-small --prompt-tokens 16 --new-tokens 100 --threads 2
    python3 scripts/torch_bench.py generate --preset gpt2-small --device cuda   # transformers on the GPU

Needs `pip install torch transformers`.
"""

import argparse
import json
import statistics
import sys
import time

try:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
except ImportError:
    sys.exit("needs PyTorch and transformers: pip install torch transformers")

# layers, width, heads, vocabulary, context: as scratchgpt's presets, so both
# sides build the same parameter count.
PRESETS = {
    "gpt2-small": (12, 768, 12, 50257, 1024),
    "tiny": (4, 256, 4, 50257, 128),
    "tiny-char": (6, 384, 6, 65, 256),
}


def model_for(args, context):
    layers, embd, heads, vocab, positions = PRESETS[args.preset or "tiny"]
    config = GPT2Config(
        n_layer=args.n_layer or layers,
        n_embd=args.n_embd or embd,
        n_head=args.n_head or heads,
        vocab_size=args.vocab_size or vocab,
        n_positions=max(positions, context),
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu_new",
        tie_word_embeddings=True,
    )
    if config.vocab_size <= 50256:
        # GPT-2's end-of-text id does not exist in a smaller vocabulary.
        config.bos_token_id = config.eos_token_id = None
    return GPT2LMHeadModel(config)


def train(args):
    model = model_for(args, args.context)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    vocab = model.config.vocab_size
    times = []
    for i in range(args.warmup + args.steps):
        x = torch.randint(0, vocab, (args.batch_size, args.context))
        y = torch.randint(0, vocab, (args.batch_size, args.context))
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits.view(-1, vocab), y.view(-1))
        loss.backward()
        opt.step()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    secs = statistics.median(times)
    tokens = args.batch_size * args.context
    n = sum(p.numel() for p in model.parameters())
    c = model.config
    flops = tokens * (6 * n + 12 * c.n_layer * args.context * c.n_embd)
    return {"ms_per_step": secs * 1e3, "tokens_per_s": tokens / secs, "gflops": flops / secs / 1e9, "params": n}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def generate(args):
    device = torch.device(args.device)
    model = model_for(args, args.prompt_tokens + args.new_tokens).to(device)
    model.eval()
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, model.config.vocab_size, (1, args.prompt_tokens), generator=g).to(device)
    times = []
    # One untimed run on a GPU: the first call loads kernels and warms the
    # allocator, as scratchgpt's first NVRTC compile is not timed either.
    for i in range(args.repeats + (device.type == "cuda")):
        sync(device)
        start = time.perf_counter()
        out = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=args.new_tokens,
            min_new_tokens=args.new_tokens,
            do_sample=False,
            use_cache=True,
            pad_token_id=0,
        )
        sync(device)
        new = out.shape[1] - args.prompt_tokens
        if device.type != "cuda" or i > 0:
            times.append((time.perf_counter() - start) / new)
    per_token = statistics.median(times)
    return {"tokens_per_s": 1 / per_token, "ms_per_token": per_token * 1e3}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "generate"])
    p.add_argument("--preset")
    p.add_argument("--n-layer", type=int)
    p.add_argument("--n-embd", type=int)
    p.add_argument("--n-head", type=int)
    p.add_argument("--vocab-size", type=int)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--prompt-tokens", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda (generation only)")
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    result = train(args) if args.mode == "train" else generate(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
