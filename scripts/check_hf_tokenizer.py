#!/usr/bin/env python3
"""Checks that tokenizer files written by scratchgpt load in Hugging Face
`tokenizers` and encode exactly as scratchgpt does.

Requirements: `pip install tokenizers`. Run from anywhere:

    python3 scripts/check_hf_tokenizer.py            # trains, exports, checks
    python3 scripts/check_hf_tokenizer.py EXPORT_DIR # checks an existing export

Without an argument the script runs the ignored Rust test
`gpt/tests/hf_export.rs`, which trains an 8,192-token byte-level BPE on
tinyshakespeare (or on the built-in stories when the shared data folder is
absent), saves it with `BpeTokenizer::save` (`vocab.json` + `merges.txt`), saves
GPT-2's vocabulary the same way, and writes `cases.json`: texts (held-out
Shakespeare plus hard cases: contractions, whitespace runs, CRLF, accents,
CJK, Arabic, emoji, code, URLs, `<|endoftext|>`) with the ids scratchgpt
gives them.

For each folder the script builds a Hugging Face tokenizer the way GPT-2's is
built (BPE model, ByteLevel pre-tokenizer without a prefix space, ByteLevel
decoder, `<|endoftext|>` as a special token), encodes every text and compares
the ids, then decodes them back. It does the same with the folder's
`tokenizer.json` loaded by `tokenizers.Tokenizer.from_file`, and, when the
`transformers` package is installed, by `AutoTokenizer.from_pretrained` on
the folder (`pip install transformers`; skipped otherwise). It prints one
line per folder and loader and "N passed, N failed" at the end; the exit code
is 1 on any mismatch.
"""

import json
import os
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

try:
    from transformers import AutoTokenizer
except ImportError:  # optional: the tokenizer.json check runs without it
    AutoTokenizer = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export(out_dir):
    env = dict(os.environ, SCRATCHGPT_HF_EXPORT=out_dir)
    subprocess.run(
        ["cargo", "test", "-p", "gpt", "--test", "hf_export", "--", "--ignored", "--nocapture"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def hf_tokenizer(folder):
    model = models.BPE.from_file(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"))
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


class Transformers:
    """transformers' tokenizer behind the `tokenizers` calls `check` makes."""

    def __init__(self, folder):
        self.tok = AutoTokenizer.from_pretrained(folder)

    def encode(self, text, add_special_tokens):
        class Ids:
            pass

        out = Ids()
        out.ids = self.tok.encode(text, add_special_tokens=add_special_tokens)
        return out

    def decode(self, ids, skip_special_tokens):
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)

    def get_vocab_size(self):
        return len(self.tok)


def loaders(folder):
    """(label, tokenizer) pairs: the files rebuilt by hand, tokenizer.json,
    and transformers' AutoTokenizer when installed."""
    yield "vocab.json+merges.txt", hf_tokenizer(folder)
    yield "tokenizer.json", Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    if AutoTokenizer is not None:
        yield "AutoTokenizer", Transformers(folder)
    else:
        print("  (transformers not installed: AutoTokenizer skipped)")


def check(folder, cases):
    passed = failed = 0
    for label, tok in loaders(folder):
        p, f = check_one(folder, label, tok, cases)
        passed, failed = passed + p, failed + f
    return passed, failed


def check_one(folder, label, tok, cases):
    failures = 0
    for case in cases:
        ids = tok.encode(case["text"], add_special_tokens=False).ids
        if ids != case["ids"]:
            failures += 1
            first = next((i for i, (a, b) in enumerate(zip(ids, case["ids"])) if a != b), min(len(ids), len(case["ids"])))
            print(f"  MISMATCH on {case['text'][:60]!r}: first difference at token {first}: "
                  f"hf {ids[first:first + 5]} vs ours {case['ids'][first:first + 5]}")
        elif tok.decode(ids, skip_special_tokens=False) != case["text"]:
            failures += 1
            print(f"  DECODE differs on {case['text'][:60]!r}")
    tokens = sum(len(c["ids"]) for c in cases)
    print(f"{os.path.basename(folder)} via {label}: vocab {tok.get_vocab_size()}, {len(cases)} texts, {tokens} tokens, "
          f"{len(cases) - failures} identical")
    return len(cases) - failures, failures


def main():
    if len(sys.argv) > 1:
        out_dir = sys.argv[1]
    else:
        out_dir = tempfile.mkdtemp(prefix="scratchgpt-hf-")
        export(out_dir)
    with open(os.path.join(out_dir, "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    print(f"trained on: {cases['source']}")
    passed = failed = 0
    for name in ["trained", "gpt2"]:
        p, f = check(os.path.join(out_dir, name), cases[name])
        passed, failed = passed + p, failed + f
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
