#!/usr/bin/env python3
"""Writes the `tokenizer.json` parity fixtures that `gpt/tests/hf_json_parity.rs`
compares scratchgpt's tokenizer.json reader against.

Requirements: `pip install tokenizers`. Run from anywhere:

    python3 scripts/make_hf_json_fixtures.py

and commit what it writes under `gpt/tests/fixtures/hf_json/`. The training
text is generated here from a fixed seed, so a rerun on the same `tokenizers`
version rewrites the same files.

Five small tokenizers (a few hundred tokens each), one per family layout:

- `gpt2`: byte-level BPE, `ByteLevel` pre-tokenizer with its own regex,
  `ByteLevel` decoder and post-processor, `<|endoftext|>`.
- `llama3`: `Split` with Llama 3's look-ahead regex (isolated), then
  `ByteLevel(use_regex=false)`; BPE with `ignore_merges`; a
  `TemplateProcessing` post-processor that puts `<|begin_of_text|>` first.
- `qwen`: the NFC normalizer, `Split` with Qwen2's regex (digits one at a
  time), `ByteLevel(use_regex=false)`; added tokens with lstrip/rstrip and a
  non-special added token.
- `metaspace`: SentencePiece-style BPE through the `Metaspace` pre-tokenizer
  (prepend first, split) with `byte_fallback`, `<unk>` and the `Metaspace`
  decoder; a small alphabet so that rare characters fall back to `<0xNN>`.
- `llama2`: Llama 2's layout: `Prepend("▁")` + `Replace(" ", "▁")`
  normalizers, no pre-tokenizer, `byte_fallback` + `fuse_unk`, the
  Replace/ByteFallback/Fuse/Strip decoder, `<s> $A` template; added tokens
  with `single_word`, `lstrip`, `rstrip`, and one that is normalized.

`cases.json` holds, for every tokenizer and every text of the hard-case
corpus, the ids with and without special tokens (`encode(text,
add_special_tokens=...)`) and the text decoded back from the first with and
without `skip_special_tokens`.
"""

import json
import os
import random

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "gpt", "tests", "fixtures", "hf_json")

LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

WORDS = (
    "the of and to in is was he for it with as his on be at by had are but from or have an they which one you "
    "were her all she there would their we him been has when who will more no if out so said what up its about "
    "into than them can only other new some could time these two may then do first any my now such like our over "
    "man me even most made after also did many before must through back years where much your way well down "
    "should because each just those people how too little state good very make world still own see men work long "
    "get here between both life being under never day same another know while last might us great old year off "
    "come since against go came right used take three café naïve résumé über straße"
).split()


def training_text():
    rng = random.Random(1234)
    lines = []
    for _ in range(1500):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 10 ** rng.randint(1, 6))))
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), rng.choice(["don't", "it's", "we'll", "I'm", "they've", "you'd"]))
        line = " ".join(words)
        line = line[0].upper() + line[1:] + rng.choice([".", "!", "?", ",", ";"])
        lines.append(line)
    text = "\n".join(lines)
    # A little code-like whitespace so runs of spaces and tabs get tokens.
    text += "\n" + "\n".join("    if x == %d:\n\treturn y" % i for i in range(40))
    return text


CASES = [
    "",
    "Hello world",
    "hello",
    " leading space",
    "trailing space ",
    "two  spaces and   three",
    "tabs\tand\t\ttabs",
    "line one\nline two\n\nline four\r\nwindows",
    "\n\n\n",
    "   ",
    "digits 1 12 123 1234 12345 123456 1234567",
    "pi is 3.14159, year 2024!",
    "DON'T WE'LL I'M YOU'D THEY'VE IT'S SHE'S",
    "don't we'll I'm it's",
    "Caf\u00e9 cafe\u0301 na\u00efve nai\u0308ve",
    "\u00c5ngstr\u00f6m A\u030angstro\u0308m",
    "\ufb01ne \u2460 \u00bd",
    "emoji \U0001F600\U0001F44D\U0001F3FD and \u2764\ufe0f",
    "CJK \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587",
    "Arabic \u0645\u0631\u062d\u0628\u0627 Hebrew \u05e9\u05dc\u05d5\u05dd",
    "bytes \u0001\u0002\u007f and \u00a0nbsp",
    "    if x == 3:\n\treturn y",
    "<|endoftext|>",
    "before<|endoftext|>after",
    "a <s> b </s> c",
    "<s>starts with bos",
    "special <|begin_of_text|>inside<|eot_id|> text",
    "<|im_start|>user\nhi<|im_end|>\n",
    "mask <mask> in   <mask>the middle",
    "[TOOL] call [TOOL]x and x[TOOL] y",
    "custom_word is added, custom_wordy is not",
    "The quick brown fox jumps over the lazy dog. The end.",
    "<unk> literal and <0x41> literal",
]


def bpe_trainer(vocab_size, specials, **kw):
    return BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False, **kw)


def gpt2(text):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(
        [text], bpe_trainer(600, ["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    return tok


def llama3(text):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tok.train_from_iterator(
        [text], bpe_trainer(650, specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A:0 <|begin_of_text|>:1 $B:1",
                special_tokens=[("<|begin_of_text|>", bos)],
            ),
        ]
    )
    return tok


def qwen(text):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(
        [text], bpe_trainer(600, ["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    tok.add_special_tokens(
        [
            AddedToken("<|im_start|>", special=True, normalized=False),
            AddedToken("<|im_end|>", special=True, normalized=False),
            AddedToken("<mask>", special=True, lstrip=True, rstrip=True, normalized=False),
        ]
    )
    tok.add_tokens([AddedToken("custom_word", special=False, normalized=True)])
    return tok


def with_byte_fallback_vocab(trained, specials):
    """Llama 2's id layout: specials, then <0x00>..<0xFF>, then the trained tokens."""
    model = json.loads(trained.to_str())["model"]
    vocab = {}
    for s in specials:
        vocab[s] = len(vocab)
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for token, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return vocab, merges


def metaspace(text):
    specials = ["<unk>", "<s>", "</s>"]
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    trainer_tok.train_from_iterator([text], bpe_trainer(450, [], limit_alphabet=49))
    vocab, merges = with_byte_fallback_vocab(trainer_tok, specials)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="\u2581", prepend_scheme="first")])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", 1), ("</s>", 2)]
    )
    return tok


def llama2(text):
    specials = ["<unk>", "<s>", "</s>"]
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer_tok.train_from_iterator([text], bpe_trainer(480, [], limit_alphabet=45))
    vocab, merges = with_byte_fallback_vocab(trainer_tok, specials)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, rstrip=False, normalized=False)])
    tok.add_tokens(
        [
            AddedToken("[TOOL]", special=False, single_word=True, normalized=False),
            AddedToken("custom_word", special=False, rstrip=True, normalized=True),
        ]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return tok


def main():
    os.makedirs(OUT, exist_ok=True)
    text = training_text()
    builders = {"gpt2": gpt2, "llama3": llama3, "qwen": qwen, "metaspace": metaspace, "llama2": llama2}
    cases = {"texts": CASES, "tokenizers": {}}
    for name, build in builders.items():
        tok = build(text)
        path = os.path.join(OUT, name + ".tokenizer.json")
        tok.save(path, pretty=False)
        tok = Tokenizer.from_file(path)  # what we check is what was saved
        rows = []
        for case in CASES:
            with_special = tok.encode(case, add_special_tokens=True).ids
            without = tok.encode(case, add_special_tokens=False).ids
            rows.append(
                {
                    "ids": with_special,
                    "ids_plain": without,
                    "decoded": tok.decode(with_special, skip_special_tokens=False),
                    "decoded_skip": tok.decode(with_special, skip_special_tokens=True),
                }
            )
        cases["tokenizers"][name] = rows
        print(f"{name}: {tok.get_vocab_size()} tokens, {os.path.getsize(path)} bytes")
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    import tokenizers

    print(f"wrote {OUT} with tokenizers {tokenizers.__version__}")


if __name__ == "__main__":
    main()
