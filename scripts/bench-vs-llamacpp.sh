#!/usr/bin/env bash
# Decoding speed against llama.cpp on the same GGUF file: greedy, batch 1,
# a 16-token prompt then 100 new tokens, ROUNDS rounds alternating the two
# programs, medians, per storage type. Run by hand; it installs nothing:
#
#   pip install llama-cpp-python gguf      # builds llama.cpp (~30 min on 2 cores)
#   cargo build --release
#   scripts/bench-vs-llamacpp.sh MODEL_DIR [ROUNDS] [TYPES]
#
# MODEL_DIR is a model folder with a byte-level BPE tokenizer (GGUF's gpt2
# kind), e.g. a random gpt2-small saved by transformers with GPT-2's
# vocab.json and merges.txt beside it. TYPES defaults to f32,f16,q8_0,q4_0.
# Ours is `scratchgpt bench generate --model FILE.gguf` (our int4 kernels
# for Q4_0, f32 for the others); llama.cpp's is llama-cpp-python timing its
# own eval of the same tokens, with as many threads.
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

llama_tps() {
    python3 - "$1" "$threads" <<'PY'
import sys, time
import numpy as np
from llama_cpp import Llama
path, threads = sys.argv[1], int(sys.argv[2])
llm = Llama(model_path=path, n_ctx=128, n_threads=threads, n_threads_batch=threads, logits_all=False, verbose=False)
rng = np.random.default_rng(1)
prompt = [int(t) for t in rng.integers(0, llm.n_vocab(), 16)]
llm.eval(prompt)
start, tok = time.perf_counter(), prompt[-1]
for _ in range(100):
    tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    llm.eval([tok])
print(100 / (time.perf_counter() - start))
PY
}

ours_tps() {
    "$bin" bench generate --model "$1" --prompt-tokens 16 --new-tokens 100 --repeats 1 --threads "$threads" --json |
        python3 -c "import json, sys; print(json.load(sys.stdin)['tokens_per_s'])"
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

printf '%-6s %12s %12s %7s\n' type ours llama.cpp ratio
for ty in ${types//,/ }; do
    file="$work/model-$ty.gguf"
    "$bin" export --model "$model" --format gguf --out "$file" --to "$ty" --json >/dev/null
    : >"$work/ours" && : >"$work/theirs"
    for _ in $(seq "$rounds"); do
        ours_tps "$file" >>"$work/ours"
        llama_tps "$file" 2>/dev/null >>"$work/theirs"
    done
    o=$(median <"$work/ours") t=$(median <"$work/theirs")
    printf '%-6s %12.1f %12.1f %7.2f\n' "$ty" "$o" "$t" "$(echo "$o / $t" | bc -l)"
done
