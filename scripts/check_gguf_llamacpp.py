#!/usr/bin/env python3
"""Checks that llama.cpp runs scratchgpt's GGUF exports as scratchgpt does:
for each storage type, export the model, decode greedily in both programs
from the same prompt, and compare the tokens.

Requirements: `pip install llama-cpp-python gguf` (llama-cpp-python builds
llama.cpp from source, ~10 minutes on 2 cores) and a built `scratchgpt`.
By hand, not in CI:

    cargo build --release
    python3 scripts/check_gguf_llamacpp.py --model runs/gpt2-vocab-model

What is compared, per type (f32, f16, q8_0, q4_0):
- the prompt's token ids: llama.cpp's tokenizer, built from the file's
  metadata, against ours (`scratchgpt generate --json`'s `prompt_ids`);
- the greedy continuation: ours is `scratchgpt generate --model FILE.gguf
  --json` (the same file llama.cpp reads); llama.cpp's is argmax over
  its logits, one token at a time, over the tokenizer's ids (as ours).
  For q8_0 it is also compared with our own int8 folder (`quantize --to
  int8`), a different rounding of the same weights, for information.

llama.cpp computes differently from us (f16 files: activations rounded
to f16; Q8_0/Q4_0: activations rounded to 8 bits for integer dot
products), so on a model whose top two logits are close, a late token may
differ; the report says where the first difference is. Exit code 0 when
every type agrees on every token, 1 otherwise.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def run_json(binary: str, *args: str) -> dict:
    out = subprocess.run([binary, *args, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"scratchgpt {' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def tokenizer_size(path: Path) -> int:
    """Token ids before the padding (type 5, unused) that fills the model's rows."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(field.parts[i][0]) for i in field.data]
    while types and types[-1] == 5:
        types.pop()
    return len(types)


def llama_greedy(path: Path, prompt: str, prompt_ids: list[int], n: int, vocab: int, eot: int | None):
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=len(prompt_ids) + n + 1, n_threads=2, logits_all=True, verbose=False)
    their_prompt = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.reset()
    llm.eval(prompt_ids)
    out = []
    for _ in range(n):
        logits = np.asarray(llm.scores[llm.n_tokens - 1])[:vocab]
        tok = int(np.argmax(logits))
        out.append(tok)
        if tok == eot:
            break
        llm.eval([tok])
    return their_prompt, out


def first_difference(a: list[int], b: list[int]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"first differs at token {i} ({x} vs {y})"
    return "equal" if len(a) == len(b) else f"lengths {len(a)} vs {len(b)}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a scratchgpt model folder with a byte-level BPE tokenizer")
    p.add_argument("--scratchgpt", default=str(ROOT / "target" / "release" / "scratchgpt"))
    p.add_argument("--prompt", default="Once upon a time, there was a little")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--types", default="f32,f16,q8_0,q4_0")
    args = p.parse_args()

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for to in args.types.split(","):
            path = tmp / f"model-{to}.gguf"
            run_json(args.scratchgpt, "export", "--model", args.model, "--format", "gguf", "--out", str(path), "--to", to)
            ours = run_json(
                args.scratchgpt, "generate", "--model", str(path), "--prompt", args.prompt,
                "--max-new-tokens", str(args.tokens),
            )
            vocab = tokenizer_size(path)
            import gguf

            eos = gguf.GGUFReader(str(path)).fields.get("tokenizer.ggml.eos_token_id")
            eot = int(eos.parts[-1][0]) if eos is not None else None
            their_prompt, theirs = llama_greedy(path, args.prompt, ours["prompt_ids"], args.tokens, vocab, eot)
            prompt_same = their_prompt == ours["prompt_ids"]
            tokens_same = theirs == ours["new_ids"]
            ok &= prompt_same and tokens_same
            agree = sum(a == b for a, b in zip(theirs, ours["new_ids"]))
            print(
                f"{to:5}: prompt ids {'equal' if prompt_same else 'DIFFER'}; "
                f"greedy tokens {agree}/{len(ours['new_ids'])} equal ({first_difference(theirs, ours['new_ids'])})"
            )
            if to == "q8_0":
                folder = tmp / "int8"
                run_json(args.scratchgpt, "quantize", "--model", args.model, "--to", "int8", "--out", str(folder))
                int8 = run_json(
                    args.scratchgpt, "generate", "--model", str(folder), "--prompt", args.prompt,
                    "--max-new-tokens", str(args.tokens),
                )
                agree = sum(a == b for a, b in zip(theirs, int8["new_ids"]))
                print(
                    f"       llama.cpp q8_0 against our int8 folder: {agree}/{len(int8['new_ids'])} equal "
                    f"({first_difference(theirs, int8['new_ids'])})"
                )
    print("all equal" if ok else "some differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
