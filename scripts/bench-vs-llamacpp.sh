#!/usr/bin/env bash
# Decoding and prompt speed against llama.cpp on the same weights: greedy,
# batch 1, a 16-token prompt then 100 new tokens (generation), and a
# 512-token prompt (prompt processing), ROUNDS rounds alternating the two
# programs, medians, per precision. Run by hand; it installs nothing:
#
#   pip install llama-cpp-python gguf      # builds llama.cpp (~30 min on 2 cores)
#   cargo build --release
#   scripts/bench-vs-llamacpp.sh MODEL_DIR [ROUNDS] [TYPES]
#
# MODEL_DIR is a model folder with a byte-level BPE tokenizer (GGUF's gpt2
# kind), e.g. the random gpt2-small or SmolLM2-135M-shaped folders that
# `python3 scripts/make_race_models.py OUT_DIR` writes. TYPES defaults to
# f32,f16,q8_0,q4_0.
# llama.cpp runs the folder exported to GGUF at each type; ours runs the
# folder at the matching precision of our own (f32, and `quantize --to`
# f16, int8, int4): our int8 has one scale per row where Q8_0 has one per
# 32 weights, and our int4 is Q4_0's layout. llama.cpp's figures are
# llama-cpp-python timing its own evaluation of the same tokens, with as
# many threads (THREADS, default all cores).
#
# Run it on a quiet machine. llama.cpp's threads wait for each other by
# spinning at every operation, so when other work shares the cores its
# multi-threaded runs collapse: on a 2-core machine running a compilation,
# its f32 gpt2-small decoded 18.5 tokens/s with 1 thread and 2.9 with 2.
# On a CPU with AMX, a llama.cpp built for the machine (the default) may
# crash on Q8_0/Q4_0; the README's GGUF section says how to build it
# without AMX.
set -euo pipefail
model=${1:?usage: scripts/bench-vs-llamacpp.sh MODEL_DIR [ROUNDS] [TYPES]}
rounds=${2:-3}
types=${3:-f32,f16,q8_0,q4_0}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${SCRATCHGPT:-$root/target/release/scratchgpt}
threads=${THREADS:-$(nproc)}
python3 -c "import llama_cpp" 2>/dev/null || { echo "needs: pip install llama-cpp-python gguf" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints "generation_tokens_per_s prompt_tokens_per_s".
llama_tps() {
    python3 - "$1" "$threads" <<'PY'
import sys, time
import numpy as np
from llama_cpp import Llama
path, threads = sys.argv[1], int(sys.argv[2])
llm = Llama(model_path=path, n_ctx=640, n_batch=512, n_threads=threads, n_threads_batch=threads,
            logits_all=False, verbose=False)
rng = np.random.default_rng(1)
prompt = [int(t) for t in rng.integers(0, llm.n_vocab(), 16)]
llm.eval(prompt)
start, tok = time.perf_counter(), prompt[-1]
for _ in range(100):
    tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    llm.eval([tok])
generation = 100 / (time.perf_counter() - start)
llm.reset()
long_prompt = [int(t) for t in rng.integers(0, llm.n_vocab(), 512)]
start = time.perf_counter()
llm.eval(long_prompt)
print(generation, 512 / (time.perf_counter() - start))
PY
}

# Prints "generation_tokens_per_s prompt_tokens_per_s" for a folder.
ours_tps() {
    local generation prompt
    generation=$("$bin" bench generate --model "$1" --prompt-tokens 16 --new-tokens 100 --repeats 1 \
        --threads "$threads" --json | python3 -c "import json, sys; print(json.load(sys.stdin)['tokens_per_s'])")
    prompt=$("$bin" bench generate --model "$1" --prompt-tokens 512 --new-tokens 1 --repeats 1 \
        --threads "$threads" --json | python3 -c "import json, sys; print(json.load(sys.stdin)['prompt_tokens_per_s'])")
    echo "$generation $prompt"
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

ours_folder() {
    case "$1" in
        f32) echo "$model" ;;
        f16) echo "$work/ours-f16" ;;
        q8_0) echo "$work/ours-int8" ;;
        q4_0) echo "$work/ours-int4" ;;
        *) echo "unknown type $1 (f32, f16, q8_0, q4_0)" >&2; exit 2 ;;
    esac
}

printf '%-6s %-5s %10s %10s %7s   %-6s %10s %10s %7s\n' type ours "gen ours" llama.cpp ratio "" "pp ours" llama.cpp ratio
for ty in ${types//,/ }; do
    file="$work/model-$ty.gguf"
    folder=$(ours_folder "$ty")
    "$bin" export --model "$model" --format gguf --out "$file" --to "$ty" --json >/dev/null
    case "$ty" in
        f16) "$bin" quantize --model "$model" --to f16 --out "$folder" >/dev/null ;;
        q8_0) "$bin" quantize --model "$model" --to int8 --out "$folder" >/dev/null ;;
        q4_0) "$bin" quantize --model "$model" --to int4 --out "$folder" >/dev/null ;;
    esac
    : >"$work/ours" && : >"$work/theirs"
    for _ in $(seq "$rounds"); do
        ours_tps "$folder" >>"$work/ours"
        llama_tps "$file" 2>/dev/null >>"$work/theirs"
    done
    og=$(cut -d' ' -f1 "$work/ours" | median) op=$(cut -d' ' -f2 "$work/ours" | median)
    tg=$(cut -d' ' -f1 "$work/theirs" | median) tp=$(cut -d' ' -f2 "$work/theirs" | median)
    name=$(case "$ty" in f32) echo f32 ;; f16) echo f16 ;; q8_0) echo int8 ;; q4_0) echo int4 ;; esac)
    printf '%-6s %-5s %10.1f %10.1f %7.2f   %-6s %10.1f %10.1f %7.2f\n' "$ty" "$name" "$og" "$tg" \
        "$(echo "$og / $tg" | bc -l)" "" "$op" "$tp" "$(echo "$op / $tp" | bc -l)"
done
