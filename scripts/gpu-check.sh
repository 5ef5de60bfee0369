#!/usr/bin/env bash
# Everything that needs a GPU, in one command:
#   1. the NVRTC build check (every .cu source compiles for sm_80/sm_90),
#   2. the GPU tests, which `cargo test` skips elsewhere (#[ignore]): every
#      tensor op on CPU and GPU compared (tests/cuda_ops.rs), and the GPT's
#      logits, loss, gradients, 20 training steps, greedy generation and a
#      command-line run compared (tests/cuda_model.rs),
#   3. the benchmark against PyTorch (scripts/gpu-bench.sh).
#
#   scripts/gpu-check.sh            (CUDA 13 build, the default)
#   CUDA_MAJOR=12 CARGO_FEATURES="--no-default-features --features cuda-12" scripts/gpu-check.sh
#
# Needs a CUDA GPU with its driver, and NVRTC + cuBLAS where cuda-env.sh
# finds them. The tests run one at a time: they share one GPU and flip
# process-wide switches (autocast, flash attention). Installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cuda-env.sh
FEATURES=${CARGO_FEATURES:-}
# A GPU test that finds no GPU fails here instead of skipping.
export SCRATCHGPT_REQUIRE_GPU=1

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv

echo "== NVRTC build check"
SCRATCHGPT_REQUIRE_NVRTC=1 cargo test --release $FEATURES -p kernels --test cuda_compile

echo "== GPU tests (CPU vs CUDA)"
cargo test --release $FEATURES --test cuda_ops --test cuda_model -- --ignored --test-threads 1

echo "== GPU benchmark"
cargo build --release $FEATURES
scripts/gpu-bench.sh
