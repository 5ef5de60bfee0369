#!/usr/bin/env bash
# Times every matrix product of a GPT-2 training step (`scratchgpt bench
# gemm`) beside numpy's OpenBLAS on the same shapes and layouts, alternating
# the two (ours, numpy, ours, numpy, ...) so machine noise hits both, and
# prints GFLOP/s and the ratio (ours ÷ OpenBLAS; 1.00 means as fast).
#
#   scripts/gemm-vs-openblas.sh [THREADS] [ROUNDS] [-- extra `bench gemm` args]
#   scripts/gemm-vs-openblas.sh 2 3 -- --preset gpt2-small --tokens 256
#
# Needs the release binary (cargo build --release) and `pip install numpy`;
# it installs nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${1:-2}"
ROUNDS="${2:-3}"
shift $(( $# < 2 ? $# : 2 ))
[ "${1:-}" = "--" ] && shift
ARGS=("$@")
[ ${#ARGS[@]} -eq 0 ] && ARGS=(--preset gpt2-small --tokens 256)
OURS=./target/release/scratchgpt
[ -x "$OURS" ] || { echo "build first: cargo build --release" >&2; exit 2; }
python3 -c "import numpy" 2>/dev/null || { echo "numpy is missing: pip install numpy" >&2; exit 2; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for r in $(seq "$ROUNDS"); do
  "$OURS" bench gemm "${ARGS[@]}" --threads "$THREADS" --json >"$TMP/ours.$r.json"
  python3 scripts/numpy_gemm.py --threads "$THREADS" <"$TMP/ours.$r.json" >"$TMP/numpy.$r.json"
done
python3 - "$TMP" "$ROUNDS" "$THREADS" <<'PY'
import json, statistics, sys
tmp, rounds, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
load = lambda side: [json.load(open(f"{tmp}/{side}.{r}.json")) for r in range(1, rounds + 1)]
ours, numpy = load("ours"), load("numpy")
print(f"| product | m | k | n | ours GFLOP/s | OpenBLAS GFLOP/s | ratio |")
print(f"|---|---:|---:|---:|---:|---:|---:|")
ratios = []
for i, p in enumerate(ours[0]):
    o = statistics.median(run[i]["gflops"] for run in ours)
    t = statistics.median(run[i]["gflops"] for run in numpy)
    ratios.append(o / t)
    layout = ("Aᵀ" if p["a_transposed"] else "A") + "·" + ("Bᵀ" if p["b_transposed"] else "B")
    print(f"| {p['name']} ({layout}) | {p['m']} | {p['k']} | {p['n']} | {o:.1f} | {t:.1f} | {o / t:.2f} |")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"\nlowest ratio {min(ratios):.2f}; medians of {rounds} rounds; {threads} threads; {cpu}")
PY
