#!/usr/bin/env bash
# The one command to run on a GPU machine, from a bundle that
# scripts/gpu-bundle.sh built elsewhere (no Rust needed here):
#
#   target/gpu-bundle/scripts/gpu-run.sh
#
# 1. finds libcuda, NVRTC, cuBLAS and NCCL (scripts/cuda-env.sh, then a search
#    of the usual install folders) and prints the GPU;
# 2. runs every test executable of the bundle, one at a time: the NVRTC
#    compile test, every GPU test (the #[ignore]d ones, `--ignored
#    --test-threads 1`: they share the GPU and process-wide switches; a
#    missing GPU is a failure here, SCRATCHGPT_REQUIRE_GPU=1), and the
#    command-line tests, which must pass on a machine with a GPU too;
# 3. runs scripts/gpu-bench.sh (ours against PyTorch on the same GPU);
# 4. prints one summary table.
#
# Each executable's output goes to $OUT (default ./gpu-results), one file
# each, plus bench.txt and summary.txt. Environment: GPU_RUN_BENCH=0 skips
# the benchmark, TORCH_COMPILE=0 its torch.compile column, BENCH_STEPS
# (default 10) its timed steps, TEST_TIMEOUT (default 240) the seconds any
# one test executable may take. Installs nothing. Exit code: 0 when every
# test passed.
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=$PWD
OUT=${OUT:-$BUNDLE/gpu-results}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"

source scripts/cuda-env.sh
# Libraries the usual places did not have: look where pip wheels and
# toolkits put them (a Python venv under /opt, /usr/local/lib/python3.*, …).
for lib in libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13; do
    cuda_lib_found "$lib" && continue
    hit=$(find /opt /usr /usr/local /root /home -name "$lib*" -not -path '*/proc/*' 2>/dev/null | head -n 1)
    [ -n "$hit" ] && cuda_add_lib_dir "$(dirname "$hit")"
done
for lib in libcuda.so.1 libnvrtc.so.13 libcublas.so.13; do
    cuda_lib_found "$lib" && echo "found $lib" || echo "MISSING $lib"
done | tee -a "$OUT/libraries.txt"
# NCCL (tests/cuda_nccl.rs): the pip package ships libnccl.so.2 only, and
# cudarc opens it as libnccl.so, so a link under $OUT points there.
nccl=$(find /opt /usr /usr/local /root /home -name 'libnccl.so.2*' -not -path '*/proc/*' 2>/dev/null | head -n 1)
# (Not piped into tee: the export must happen in this shell.)
if [ -n "$nccl" ]; then
    mkdir -p "$OUT/nccl-link"
    ln -sf "$nccl" "$OUT/nccl-link/libnccl.so"
    cuda_add_lib_dir "$OUT/nccl-link"
    echo "found libnccl.so.2 ($nccl)" | tee -a "$OUT/libraries.txt"
else
    echo "MISSING libnccl.so.2" | tee -a "$OUT/libraries.txt"
fi

export SCRATCHGPT_BIN="$BUNDLE/scratchgpt"
export SCRATCHGPT_REQUIRE_GPU=1 SCRATCHGPT_REQUIRE_NVRTC=1 RUST_BACKTRACE=1

gpu="(nvidia-smi not found)"
command -v nvidia-smi >/dev/null &&
    gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)
echo "GPU: $gpu" | tee -a "$SUMMARY"
[ -e BUILD.txt ] && head -n 3 BUILD.txt | tee -a "$SUMMARY"

status=0
printf '\n%-14s %-6s %7s %7s %8s\n' tests result passed failed seconds >>"$SUMMARY"
run_tests() { # name [args...]
    local name=$1
    shift
    local log="$OUT/tests-$name.log" start end code passed failed result
    [ -x "tests/$name" ] || { printf '%-14s %-6s\n' "$name" absent >>"$SUMMARY"; status=1; return; }
    echo "== $name $*"
    start=$(date +%s)
    timeout "${TEST_TIMEOUT:-240}" "tests/$name" "$@" >"$log" 2>&1
    code=$?
    end=$(date +%s)
    passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
    failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
    case $code in
        0) result=ok ;;
        124) result=TIMEOUT ;;
        *) result=FAIL ;;
    esac
    [ "$code" = 0 ] || status=1
    tail -n 3 "$log"
    printf '%-14s %-6s %7s %7s %8s\n' "$name" "$result" "$passed" "$failed" $((end - start)) >>"$SUMMARY"
    grep -E '^test .* FAILED$|panicked at' "$log" | head -n 20 | sed 's/^/    /' >>"$SUMMARY"
}

run_tests cuda_compile
run_tests cuda_ops --ignored --test-threads 1
run_tests cuda_model --ignored --test-threads 1
run_tests cuda_families --ignored --test-threads 1
run_tests cuda_nccl --ignored --test-threads 1
run_tests cuda_cli
run_tests cli
run_tests finetune_cli

if [ "${GPU_RUN_BENCH:-1}" = 1 ]; then
    echo "== benchmark (scripts/gpu-bench.sh)"
    timeout 600 scripts/gpu-bench.sh "${BENCH_STEPS:-10}" 2>&1 | tee "$OUT/bench.txt"
    { echo; cat "$OUT/bench.txt"; } >>"$SUMMARY"
fi

echo
echo "================ summary ($OUT/summary.txt)"
cat "$SUMMARY"
exit $status
