#!/usr/bin/env bash
# Decoding and prompt speed against llama.cpp on the same weights: greedy,
# batch 1, a 16-token prompt then 100 new tokens (generation), and a
# 512-token prompt (prompt processing; for a model with a shorter context,
# one token short of it), ROUNDS rounds alternating the two
# programs, medians, per precision. Run by hand; it installs nothing:
#
#   pip install llama-cpp-python gguf      # builds llama.cpp (~30 min on 2 cores)
#   cargo build --release
#   scripts/bench-vs-llamacpp.sh MODEL_DIR [ROUNDS] [TYPES]
#
# MODEL_DIR is a model folder with a byte-level BPE tokenizer (GGUF's gpt2
# kind), e.g. the random gpt2-small or SmolLM2-135M-shaped folders that
# `python3 scripts/make_race_models.py OUT_DIR` writes. TYPES defaults to
# f32,f16,q8_0,q4_0; bf16 (our bf16 against GGUF BF16) may be added.
# llama.cpp runs the folder exported to GGUF at each type; ours runs the
# folder at the matching precision of our own (f32, and `quantize --to`
# f16, int8, int4): our int8 has one scale per row where Q8_0 has one per
# 32 weights, and our int4 is Q4_0's layout. llama.cpp's figures are
# llama-cpp-python timing its own evaluation of the same tokens, with as
# many threads (THREADS, default all cores).
#
# Decoding is bound by reading memory, so beside each generation figure it
# prints what a token reads (MB/token: the weights a step streams plus the
# KV cache at the run's average length, 65 positions) and that times
# tokens/s as a share of a plain parallel read of memory (% read), for both
# programs. Ours are `bench generate`'s own figures; llama.cpp's bytes come
# from the GGUF file (every tensor but the embedding rows it looks up,
# plus its f16 KV cache), over the same read bandwidth, measured by our
# process in the same round.
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
python3 -c "import llama_cpp, gguf" 2>/dev/null || { echo "needs: pip install llama-cpp-python gguf" >&2; exit 2; }
# The prompt-processing prompt: 512 tokens, or as many as the model's
# context leaves room for beside the one token it picks.
pp_tokens=$(python3 -c "import json, sys
c = json.load(open(sys.argv[1] + '/config.json'))
print(min(512, (c.get('n_positions') or c.get('max_position_embeddings') or 513) - 1))" "$model")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints "generation_tokens_per_s prompt_tokens_per_s".
llama_tps() {
    python3 - "$1" "$threads" "$pp_tokens" <<'PY'
import sys, time
import numpy as np
from llama_cpp import Llama
path, threads, pp_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
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
long_prompt = [int(t) for t in rng.integers(0, llm.n_vocab(), pp_tokens)]
start = time.perf_counter()
llm.eval(long_prompt)
print(generation, pp_tokens / (time.perf_counter() - start))
PY
}

# Prints the bytes llama.cpp reads to decode one token of a GGUF file:
# every tensor, except that of an embedding it looks up (the positions, and
# the tokens where the file has a separate output head) it reads one row;
# and its KV cache (f16, llama.cpp's default) at $1 cached positions.
gguf_bytes_per_token() {
    python3 - "$1" "$2" <<'PY'
import sys
from gguf import GGUFReader
path, cached = sys.argv[1], int(sys.argv[2])
reader = GGUFReader(path)
def value(name):
    field = reader.fields[name]
    part = field.parts[field.data[0]]
    return bytes(part).decode() if field.types[0].name == "STRING" else int(part[0])
arch = value("general.architecture")
names = {t.name for t in reader.tensors}
looked_up = {"position_embd.weight"} | ({"token_embd.weight"} if "output.weight" in names else set())
weights = 0
for t in reader.tensors:
    rows = 1
    for n in t.shape[1:]:  # shape[0] is the length of a row
        rows *= int(n)
    weights += int(t.n_bytes) // rows if t.name in looked_up else int(t.n_bytes)
layers, heads = value(f"{arch}.block_count"), value(f"{arch}.attention.head_count")
kv_heads = value(f"{arch}.attention.head_count_kv") if f"{arch}.attention.head_count_kv" in reader.fields else heads
head_dim = value(f"{arch}.embedding_length") // heads
print(weights + 2 * layers * kv_heads * head_dim * 2 * cached)
PY
}

# Prints "generation_tokens_per_s prompt_tokens_per_s bytes_per_token
# read_bytes_per_s" for a folder.
ours_tps() {
    local generation prompt
    generation=$("$bin" bench generate --model "$1" --prompt-tokens 16 --new-tokens 100 --repeats 1 \
        --threads "$threads" --json | python3 -c "import json, sys; r = json.load(sys.stdin)
print(r['tokens_per_s'], r['bytes_per_token'], r['read_gb_per_s'] * 1e9)")
    prompt=$("$bin" bench generate --model "$1" --prompt-tokens "$pp_tokens" --new-tokens 1 --repeats 1 \
        --threads "$threads" --json | python3 -c "import json, sys; print(json.load(sys.stdin)['prompt_tokens_per_s'])")
    set -- $generation
    echo "$1 $prompt $2 $3"
}

median() { sort -g | awk '{v[NR]=$1} END {printf "%.6f\n", (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

ours_folder() {
    case "$1" in
        f32) echo "$model" ;;
        f16) echo "$work/ours-f16" ;;
        bf16) echo "$work/ours-bf16" ;;
        q8_0) echo "$work/ours-int8" ;;
        q4_0) echo "$work/ours-int4" ;;
        *) echo "unknown type $1 (f32, f16, bf16, q8_0, q4_0)" >&2; exit 2 ;;
    esac
}

# A decoding step of the generation run sees on average 16 + 99 / 2 cached
# positions, as `bench generate` counts them.
cached=$((16 + 99 / 2))
printf '%-6s %-5s %9s %9s %6s  %9s %9s %6s  %8s %8s  %6s %6s\n' type ours "gen ours" llama.cpp ratio \
    "pp ours" llama.cpp ratio "MB/tok" llama.cpp "% read" llama.cpp
for ty in ${types//,/ }; do
    file="$work/model-$ty.gguf"
    folder=$(ours_folder "$ty")
    "$bin" export --model "$model" --format gguf --out "$file" --to "$ty" --json >/dev/null
    case "$ty" in
        f16 | bf16) "$bin" quantize --model "$model" --to "$ty" --out "$folder" >/dev/null ;;
        q8_0) "$bin" quantize --model "$model" --to int8 --out "$folder" >/dev/null ;;
        q4_0) "$bin" quantize --model "$model" --to int4 --out "$folder" >/dev/null ;;
    esac
    : >"$work/ours" && : >"$work/theirs"
    for _ in $(seq "$rounds"); do
        ours_tps "$folder" >>"$work/ours"
        llama_tps "$file" 2>/dev/null >>"$work/theirs"
    done
    og=$(cut -d' ' -f1 "$work/ours" | median) op=$(cut -d' ' -f2 "$work/ours" | median)
    ob=$(cut -d' ' -f3 "$work/ours" | median) read=$(cut -d' ' -f4 "$work/ours" | median)
    tg=$(cut -d' ' -f1 "$work/theirs" | median) tp=$(cut -d' ' -f2 "$work/theirs" | median)
    tb=$(gguf_bytes_per_token "$file" "$cached")
    name=$(case "$ty" in f32 | f16 | bf16) echo "$ty" ;; q8_0) echo int8 ;; q4_0) echo int4 ;; esac)
    printf '%-6s %-5s %9.1f %9.1f %6.2f  %9.1f %9.1f %6.2f  %8.1f %8.1f  %5.0f%% %5.0f%%\n' "$ty" "$name" \
        "$og" "$tg" "$(echo "$og / $tg" | bc -l)" "$op" "$tp" "$(echo "$op / $tp" | bc -l)" \
        "$(echo "$ob / 1000000" | bc -l)" "$(echo "$tb / 1000000" | bc -l)" \
        "$(echo "100 * $og * $ob / $read" | bc -l)" "$(echo "100 * $tg * $tb / $read" | bc -l)"
done
echo "read: a plain parallel read of memory at $(echo "$read / 1000000000" | bc -l | xargs printf '%.1f') GB/s (the last type's median)"
