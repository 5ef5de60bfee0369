#!/usr/bin/env bash
# Races `scratchgpt bench` against PyTorch on the same workloads, alternating
# the two (ours, torch, ours, torch) so machine noise hits both, and prints
# the median of each and the ratio (ours ÷ PyTorch; above 1 means faster).
#
#   scripts/bench-vs-torch.sh [THREADS]        (default 2)
#
# Needs the release binary (cargo build --release) and, for the PyTorch side,
# `pip install torch transformers`; it installs nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${1:-2}"
OURS=./target/release/scratchgpt
[ -x "$OURS" ] || { echo "build first: cargo build --release" >&2; exit 2; }
python3 -c "import torch, transformers" 2>/dev/null || {
  echo "PyTorch is missing: pip install torch transformers" >&2; exit 2; }

field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

# name | bench args shared by both sides | metric (higher is better)
WORKLOADS=(
  "train gpt2-small B4 T64|train --preset gpt2-small --batch-size 4 --context 64 --steps 3|tokens_per_s"
  "train tiny L4 C256 V50257 B8 T128|train --n-layer 4 --n-embd 256 --n-head 4 --vocab-size 50257 --batch-size 8 --context 128 --steps 5|tokens_per_s"
  "train char L6 C384 V65 B16 T256|train --n-layer 6 --n-embd 384 --n-head 6 --vocab-size 65 --batch-size 16 --context 256 --steps 3|tokens_per_s"
  "generate gpt2-small 16+100 greedy|generate --preset gpt2-small --prompt-tokens 16 --new-tokens 100 --repeats 1|tokens_per_s"
)

printf '%-38s %12s %12s %8s\n' workload ours pytorch ratio
for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name args metric <<<"$w"
  ours=(); theirs=()
  for _ in 1 2; do
    ours+=("$($OURS bench $args --threads "$THREADS" --json | field "$metric")")
    theirs+=("$(python3 scripts/torch_bench.py $args --threads "$THREADS" | field "$metric")")
  done
  o=$(median "${ours[@]}"); t=$(median "${theirs[@]}")
  printf '%-38s %12.1f %12.1f %8.2f\n' "$name" "$o" "$t" "$(python3 -c "print($o/$t)")"
done
echo "(tokens/s; $THREADS threads; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
