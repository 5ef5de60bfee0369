#!/usr/bin/env bash
# GPU speed against PyTorch on the same GPU, in one table:
#   - training `gpt2-small` (batch 8, context 1024): `scratchgpt bench train
#     --device cuda` in f32 (full f32 products), f32 with TF32 tensor cores
#     (`--tf32`; PyTorch with `allow_tf32`), bf16 autocast, and bf16 with the
#     flash-attention kernel, against transformers' GPT2LMHeadModel in
#     PyTorch eager and `torch.compile` (scripts/torch_gpu_bench.py);
#   - greedy decoding of `gpt2-small` at batch 1 (16-token prompt, 100 new
#     tokens): `scratchgpt bench generate --device cuda` against
#     transformers' `generate` on the GPU (scripts/torch_bench.py).
# Columns: tokens/s, ms per step (or per token), MFU (achieved FLOP/s ÷ the
# GPU's dense bf16 peak, 989 TFLOP/s for an H100 SXM or H200) and the ratio
# ours ÷ PyTorch tokens/s (above 1: faster).
#
#   scripts/gpu-bench.sh [STEPS]     (timed training steps per run, default 10)
#
# SCRATCHGPT_BIN names the binary (default target/release/scratchgpt, or
# ./scratchgpt inside a bundle from scripts/gpu-bundle.sh); TORCH_COMPILE=0
# skips the torch.compile column (it compiles for a minute or more per
# precision). Needs a CUDA GPU, and for the PyTorch side a CUDA build of
# PyTorch with transformers (`pip install torch transformers`). Installs
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cuda-env.sh
STEPS="${1:-10}"
if [ -n "${SCRATCHGPT_BIN:-}" ]; then
    OURS=$SCRATCHGPT_BIN
elif [ -x ./scratchgpt ]; then
    OURS=./scratchgpt
else
    OURS=./target/release/scratchgpt
fi
[ -x "$OURS" ] || { echo "build first: cargo build --release" >&2; exit 2; }

SHAPE="--preset gpt2-small --batch-size 8 --context 1024 --steps $STEPS --warmup 2"
field() { python3 -c "import json,sys
try: d=json.loads(sys.stdin.read() or '{}')
except ValueError: d={}
v=d.get('$1'); print('n/a' if v is None else v)"; }
ratio() { python3 -c "import sys; a, b = sys.argv[1], sys.argv[2]; print('n/a' if 'n/a' in (a, b) else f'{float(a)/float(b):.2f}')" "$1" "$2"; }
pct() { python3 -c "import sys; a = sys.argv[1]; print('n/a' if a == 'n/a' else f'{100*float(a):.1f}%')" "$1"; }
num() { python3 -c "import sys; a = sys.argv[1]; print(a if a == 'n/a' else f'{float(a):.{int(sys.argv[2])}f}')" "$1" "${2:-0}"; }

gpu_name=$("$OURS" bench train --device cuda --preset nano --steps 1 --warmup 0 --json | field device)
echo "GPU: $gpu_name; training gpt2-small, batch 8 × context 1024, median of $STEPS steps"

have_torch=1
python3 -c "import torch, transformers; assert torch.cuda.is_available()" 2>/dev/null || {
    have_torch=0
    echo "(PyTorch side skipped: needs a CUDA build of PyTorch and transformers: pip install torch transformers)"
}

# PyTorch runs once per (mode, precision, tf32) and is reused across rows
# (kept in files: each $(...) is a subshell).
torch_cache=$(mktemp -d)
trap 'rm -rf "$torch_cache"' EXIT
torch_run() { # mode precision tf32(0|1)
    local file="$torch_cache/$1-$2-$3.json"
    if [ ! -e "$file" ]; then
        local result='{}'
        if [ "$have_torch" = 1 ] && { [ "$1" = eager ] || [ "${TORCH_COMPILE:-1}" = 1 ]; }; then
            local tf32=""
            [ "$3" = 1 ] && tf32="--tf32"
            result=$(python3 scripts/torch_gpu_bench.py --mode "$1" --precision "$2" $tf32 $SHAPE 2>/dev/null) || result='{}'
        fi
        echo "$result" >"$file"
    fi
    cat "$file"
}

printf '%-26s %10s %9s %7s | %14s %7s | %14s %7s\n' run "tokens/s" "ms/step" MFU "torch eager" ratio "torch.compile" ratio
for variant in "f32|f32|0|" "f32 + TF32|f32|1|--tf32" "bf16 autocast|bf16|0|" "bf16 + flash attention|bf16|0|--flash-attention"; do
    IFS='|' read -r name precision tf32 extra <<<"$variant"
    ours=$("$OURS" bench train --device cuda --precision "$precision" $extra $SHAPE --json) || ours='{}'
    o_tps=$(echo "$ours" | field tokens_per_s)
    o_ms=$(echo "$ours" | field ms_per_step)
    o_mfu=$(echo "$ours" | field mfu)
    eager=$(torch_run eager "$precision" "$tf32" | field tokens_per_s)
    compiled=$(torch_run compile "$precision" "$tf32" | field tokens_per_s)
    printf '%-26s %10s %9s %7s | %14s %7s | %14s %7s\n' "$name" "$(num "$o_tps")" "$(num "$o_ms" 1)" "$(pct "$o_mfu")" \
        "$(num "$eager")" "$(ratio "$o_tps" "$eager")" "$(num "$compiled")" "$(ratio "$o_tps" "$compiled")"
done

echo
echo "Greedy decoding, gpt2-small, batch 1, 16-token prompt + 100 new tokens, median of 3"
DECODE="--preset gpt2-small --prompt-tokens 16 --new-tokens 100 --repeats 3"
ours=$("$OURS" bench generate --device cuda $DECODE --json) || ours='{}'
theirs='{}'
if [ "$have_torch" = 1 ]; then
    theirs=$(python3 scripts/torch_bench.py generate --device cuda $DECODE 2>/dev/null) || theirs='{}'
fi
o_tps=$(echo "$ours" | field tokens_per_s)
t_tps=$(echo "$theirs" | field tokens_per_s)
printf '%-26s %10s %9s | %24s %7s\n' run "tokens/s" "ms/token" "transformers generate" ratio
printf '%-26s %10s %9s | %24s %7s\n' "greedy decode f32" "$(num "$o_tps" 1)" "$(num "$(echo "$ours" | field ms_per_token)" 2)" \
    "$(num "$t_tps" 1)" "$(ratio "$o_tps" "$t_tps")"
