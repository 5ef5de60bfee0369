"""The PyTorch side of scripts/gpu-bench.sh: transformers' GPT2LMHeadModel
(tied head, tanh GELU, dropout 0, PyTorch's default attention) trained with
AdamW on random tokens on the GPU, timed like `scratchgpt bench train
--device cuda`: median step time, the GPU synchronised before the clock
stops, FLOPs as 6N + 12·L·T·C per token. Prints one JSON object.

    python3 scripts/torch_gpu_bench.py --mode eager --precision bf16 \\
        --preset gpt2-small --batch-size 8 --context 1024 --steps 10

--precision bf16 runs under torch.autocast (bf16 matmuls, f32 master
weights), the same scheme as scratchgpt's. --mode compile wraps the model
in torch.compile. Needs a CUDA build of PyTorch and transformers.
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

PRESETS = {"gpt2-small": (12, 768, 12, 50257, 1024), "tiny": (4, 256, 4, 50257, 128)}

# Dense bf16 tensor-core peaks (FLOP/s), as scratchgpt's bench uses.
PEAKS = [("H200", 989.4e12), ("H100 PCIE", 756e12), ("H100 NVL", 835e12), ("H100", 989.4e12), ("A100", 312e12),
         ("L40S", 362e12), ("L4", 121e12)]


def peak(name):
    upper = name.upper()
    for key, value in PEAKS:
        if key in upper:
            return value
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["eager", "compile"], default="eager")
    p.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    p.add_argument("--preset", default="gpt2-small")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--context", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--tf32", action="store_true", help="allow TF32 tensor cores in f32 matrix products")
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU and a CUDA build of PyTorch")
    torch.manual_seed(0)
    # PyTorch's default is full f32 matrix products, as scratchgpt's.
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    layers, embd, heads, vocab, positions = PRESETS[args.preset]
    config = GPT2Config(n_layer=layers, n_embd=embd, n_head=heads, vocab_size=vocab,
                        n_positions=max(positions, args.context), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        activation_function="gelu_new", tie_word_embeddings=True)
    device = torch.device("cuda")
    model = GPT2LMHeadModel(config).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    forward = torch.compile(model) if args.mode == "compile" else model
    times = []
    for i in range(args.warmup + args.steps):
        x = torch.randint(0, vocab, (args.batch_size, args.context), device=device)
        y = torch.randint(0, vocab, (args.batch_size, args.context), device=device)
        torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            logits = forward(x).logits
            loss = torch.nn.functional.cross_entropy(logits.view(-1, vocab).float(), y.view(-1))
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    secs = statistics.median(times)
    tokens = args.batch_size * args.context
    n = sum(p.numel() for p in model.parameters())
    flops = tokens * (6 * n + 12 * layers * args.context * embd)
    name = torch.cuda.get_device_name()
    top = peak(name)
    print(json.dumps({"ms_per_step": secs * 1e3, "tokens_per_s": tokens / secs, "gflops": flops / secs / 1e9,
                      "params": n, "device": name, "mode": args.mode, "precision": args.precision, "tf32": args.tf32,
                      "mfu": flops / secs / top if top else None}))


if __name__ == "__main__":
    main()
