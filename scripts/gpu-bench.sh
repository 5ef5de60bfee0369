#!/usr/bin/env bash
# GPU training speed: `scratchgpt bench train --device cuda` on gpt2-small
# (batch 8, context 1024) in f32 and in bf16 mixed precision (and bf16 with
# the flash-attention kernel), against the same model in PyTorch on the
# same GPU (eager, and torch.compile when it works), printed as one table
# with the ratio (ours ÷ PyTorch tokens/s; above 1 means faster) and MFU
# (achieved FLOP/s ÷ the GPU's dense bf16 peak, 989 TFLOP/s for an H100 SXM).
#
#   scripts/gpu-bench.sh [STEPS]     (timed steps per run, default 10)
#
# Needs the release binary (cargo build --release), a CUDA GPU, and for the
# PyTorch side a CUDA build of PyTorch with transformers
# (`pip install torch transformers`). Installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cuda-env.sh
STEPS="${1:-10}"
OURS=./target/release/scratchgpt
[ -x "$OURS" ] || { echo "build first: cargo build --release" >&2; exit 2; }

SHAPE="--preset gpt2-small --batch-size 8 --context 1024 --steps $STEPS --warmup 2"
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read()); v=d.get('$1'); print('n/a' if v is None else v)"; }
gpu_name=$($OURS bench train --device cuda --preset nano --steps 1 --warmup 0 --json | field device)
echo "GPU: $gpu_name; gpt2-small, batch 8 × context 1024, median of $STEPS steps"

have_torch=1
python3 -c "import torch, transformers; assert torch.cuda.is_available()" 2>/dev/null || {
    have_torch=0
    echo "(PyTorch side skipped: needs a CUDA build of PyTorch and transformers: pip install torch transformers)"
}

torch_run() { # mode precision
    if [ "$have_torch" = 1 ]; then
        python3 scripts/torch_gpu_bench.py --mode "$1" --precision "$2" $SHAPE 2>/dev/null || echo '{}'
    else
        echo '{}'
    fi
}

printf '%-24s %10s %9s %7s | %14s %7s | %14s %7s\n' run "tokens/s" "ms/step" MFU "torch eager" ratio "torch.compile" ratio
for variant in "f32|f32|" "bf16|bf16|" "bf16 + flash attention|bf16|--flash-attention"; do
    IFS='|' read -r name precision extra <<<"$variant"
    ours=$($OURS bench train --device cuda --precision "$precision" $extra $SHAPE --json)
    o_tps=$(echo "$ours" | field tokens_per_s)
    o_ms=$(echo "$ours" | field ms_per_step)
    o_mfu=$(echo "$ours" | field mfu)
    eager=$(torch_run eager "$precision" | field tokens_per_s)
    compiled=$(torch_run compile "$precision" | field tokens_per_s)
    ratio() { python3 -c "import sys; a, b = sys.argv[1], sys.argv[2]; print('n/a' if 'n/a' in (a, b) else f'{float(a)/float(b):.2f}')" "$1" "$2"; }
    pct() { python3 -c "import sys; a = sys.argv[1]; print('n/a' if a == 'n/a' else f'{100*float(a):.1f}%')" "$1"; }
    num() { python3 -c "import sys; a = sys.argv[1]; print(a if a == 'n/a' else f'{float(a):.0f}')" "$1"; }
    printf '%-24s %10s %9.1f %7s | %14s %7s | %14s %7s\n' "$name" "$(num "$o_tps")" "$o_ms" "$(pct "$o_mfu")" \
        "$(num "$eager")" "$(ratio "$o_tps" "$eager")" "$(num "$compiled")" "$(ratio "$o_tps" "$compiled")"
done
