#!/usr/bin/env bash
# Builds, on a machine without a GPU (or with one), everything a GPU machine
# needs to check the CUDA backend, into one folder that needs no Rust there:
#
#   target/gpu-bundle/
#     scratchgpt            the release binary
#     tests/                the GPU test executables (cuda_ops, cuda_model,
#                           cuda_families, cuda_nccl, cuda_cli, the NVRTC compile test
#                           cuda_compile) and
#                           the command-line tests (cli, finetune_cli), which
#                           must pass on a GPU machine too
#     scripts/              gpu-run.sh (the one command to run there),
#                           gpu-bench.sh, cuda-env.sh and the PyTorch sides
#     BUILD.txt             commit, compiler, CPU target, sizes
#
#   scripts/gpu-bundle.sh [OUT_DIR]      (default target/gpu-bundle)
#   then, on the GPU machine:  target/gpu-bundle/scripts/gpu-run.sh
#
# The binaries are built without debug info and stripped (the release
# profile keeps debug info: 89 MB for the binary alone), in their own build
# folder (target/bundle-build) and for a portable CPU: the repository
# builds with target-cpu=native, and the GPU machine's CPU need not be this
# one. BUNDLE_CPU (default x86-64-v3, any AVX2 machine) sets it; the
# hand-written AVX-512 kernels still choose themselves at run time. For a
# CUDA 12 build: CARGO_FEATURES="--no-default-features --features cuda-12".
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-target/gpu-bundle}
FEATURES=${CARGO_FEATURES:-}

export RUSTFLAGS="-C target-cpu=${BUNDLE_CPU:-x86-64-v3}"
export CARGO_PROFILE_RELEASE_DEBUG=0
export CARGO_PROFILE_RELEASE_STRIP=symbols
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/bundle-build}

echo "== building for ${BUNDLE_CPU:-x86-64-v3}, no debug info, stripped (in $CARGO_TARGET_DIR)"
cargo build --release $FEATURES --bin scratchgpt
list=$(mktemp)
trap 'rm -f "$list"' EXIT
# shellcheck disable=SC2086
cargo test --release --no-run $FEATURES --message-format=json -p scratchgpt \
    --test cuda_ops --test cuda_model --test cuda_families --test cuda_nccl --test cuda_cli --test cli --test finetune_cli >"$list"
# shellcheck disable=SC2086
cargo test --release --no-run $FEATURES --message-format=json -p kernels --test cuda_compile >>"$list"

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/tests" "$BUNDLE/scripts"
cp "$CARGO_TARGET_DIR/release/scratchgpt" "$BUNDLE/scratchgpt"
# Each test executable is named by its test target (cargo adds a hash).
python3 - "$list" "$BUNDLE/tests" <<'PY'
import json, shutil, sys
found = {}
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"] \
            and "test" in msg["target"]["kind"]:
        found[msg["target"]["name"]] = msg["executable"]
want = ["cuda_compile", "cuda_ops", "cuda_model", "cuda_families", "cuda_nccl", "cuda_cli", "cli", "finetune_cli"]
missing = [w for w in want if w not in found]
if missing:
    sys.exit(f"test executables not built: {missing}")
for name in want:
    shutil.copy2(found[name], f"{sys.argv[2]}/{name}")
PY
cp scripts/gpu-run.sh scripts/gpu-bench.sh scripts/cuda-env.sh scripts/torch_gpu_bench.py scripts/torch_bench.py \
    "$BUNDLE/scripts/"
{
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "built: $(date -u +%Y-%m-%dT%H:%MZ) with $(rustc --version)"
    echo "cpu target: ${BUNDLE_CPU:-x86-64-v3}; features: ${FEATURES:-default (CUDA 13)}"
} >"$BUNDLE/BUILD.txt"
(cd "$BUNDLE" && du -b scratchgpt tests/* | awk '{printf "%6.1f MiB  %s\n", $1/1048576, $2}') | tee -a "$BUNDLE/BUILD.txt"
total=$(du -sb "$BUNDLE" | cut -f1)
awk -v t="$total" -v b="$BUNDLE" 'BEGIN { printf "total: %.1f MiB in %s (what travels to a GPU machine: 64 MiB)\n", t / 1048576, b }' \
    | tee -a "$BUNDLE/BUILD.txt"
[ "$total" -lt $((64 * 1024 * 1024)) ] || { echo "the bundle is over 64 MiB" >&2; exit 1; }
echo "on the GPU machine: $BUNDLE/scripts/gpu-run.sh"
