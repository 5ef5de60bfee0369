#!/usr/bin/env python3
"""Writes `tests/fixtures/gguf_tokenizers/`: small vocabulary-only GGUF files
with the tokenizers downloaded models carry, and the ids and text llama.cpp
gives for a set of awkward strings (`tests/gguf_tokenizer.rs` checks ours
against them).

Requirements: `pip install gguf tokenizers sentencepiece llama-cpp-python`
(llama-cpp-python 0.3.x). Run from anywhere:

    python3 scripts/make_gguf_tokenizer_fixtures.py

and commit the files it writes (about 100 KB in all):

- `spm.gguf`: `tokenizer.ggml.model = "llama"`, a SentencePiece BPE model
  trained here as Llama 2's was (byte fallback, digits split, whitespace-only
  pieces allowed, a dummy prefix), written as llama.cpp's converter writes
  one: pieces, scores, token types (byte tokens `<0x0A>` of type 6), no
  merges; plus one user-defined piece, `<sep>`, matched before anything;
- `llama_bpe.gguf`, `qwen2.gguf`, `smollm.gguf`: `model = "gpt2"` with
  `pre` set to that name (Llama 3's regex, Qwen2's, SmolLM's digits then
  GPT-2's), all three with one byte-level BPE trained here with `tokenizers`
  on uncut lines, so that its merges cross every boundary a pre-tokenizer
  might draw and the ids show where each one cuts; two whole words no merge
  forms are added for Llama 3's `ignore_merges`. Written as the converter
  writes one: GPT-2 byte stand-ins, `merges` as `left right`, special
  tokens of type 3;
- `no_pre.gguf`: the same vocabulary with no `pre` at all, which llama.cpp
  cuts with its `default` regexes (punctuation runs, GPT-2's regex, digit
  runs, digits in threes);
- `cases.json`: for each file and each string, llama.cpp's
  `tokenize(text, add_bos=False, special=False)`, and its `llama_detokenize`
  of those ids (special tokens not rendered) together with the plain
  concatenation of each token's piece (what llama.cpp prints as it
  generates).

The files hold no tensors: llama.cpp reads their vocabulary alone
(`vocab_only=True`); the architecture's few hyper-parameters are there
because the loader reads them first.
"""

import ctypes
import io
import json
from pathlib import Path

import gguf
import llama_cpp
import sentencepiece as spm
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "gguf_tokenizers"

CORPUS = """\
The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs on.
It's what we'll see: they're here, you've been there, I'm sure he'd agree.
Numbers: 12, 345, 6789, 2024-12-03, 3.14159 and 1000000 people counted 42 times.
Tokenizers cut text into pieces, and pieces into tokens, for the model to read.
Spaces   come in runs,  tabs\tcome alone, and lines end
with newlines.\n\nTwo of them make a paragraph.
Café, naïve, façade, über, señor, déjà vu: accents are letters too.
def main():\n    print("hello, world")\n    return 0\n
Hello world! Hello again, world. Goodbye, world?
Call f(x) on (world) and (words); (wait) (while) (we) (work) (with) (worlds).
I'M SURE THEY'LL AGREE; WE'RE SURE, YOU'LL SEE, IT'S DONE, THEY'RE HERE.
\n\n\nThree newlines, then\n \n a space between two.\n\n\n
In 2024, 2025 and 2026 we counted 1234, 123456 and 12345678.
"""

# Strings whose encoding shows what each stage does.
CASES = [
    "Hello world",
    " Hello world",
    "Hello world ",
    "Hello  world   again    ",
    "   ",
    " ",
    "",
    "a",
    "\n",
    "\n\nTwo lines\nand one\n",
    "tabs\tand\r\ncarriage returns",
    "digits 1234567 and 3.14159 and 2024",
    "It's what we'll see, THEY'RE here",
    "Café naïve façade über",
    "emoji 😀🎉 done",
    "漢字 and Кириллица are not in the corpus",
    "bytes: ʬ ℵ ☃ \u00a0nbsp",
    "x=1+2*3; y<=4 && z!=5 // comment",
    "    print(\"hello, world\")\n",
    "The end. The end , the end !",
    "left<sep>right <sep> spaced",
    "a zebra and a quokka",
    "Hello(world) \"hello\" [2024]",
    "I'M SURE THEY'LL AGREE",
    "end\n\n\nstart\n \n",
    "Wait!!! Really?? $1000+$20000 <= 123456789; can't, won't  don't... (ok) |x|^2 ~ y",
    "the theme, then the end",
]

# In byte stand-ins (`Ġ` is a space), appended to the byte-level vocabulary.
WHOLE_WORDS = ["Ġzebra", "quokka"]



def lines():
    return [line for line in CORPUS.splitlines() if line] * 3


def write_llama_hparams(w: gguf.GGUFWriter):
    # The loader reads these before the vocabulary, even without weights.
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_block_count(1)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(4)


def write(path: Path, fill):
    w = gguf.GGUFWriter(str(path), "llama")
    write_llama_hparams(w)
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def spm_file(path: Path):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines()),
        model_writer=model,
        model_type="bpe",
        vocab_size=360,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        character_coverage=0.98,
        user_defined_symbols=["<sep>"],
        unk_id=0,
        bos_id=1,
        eos_id=2,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        elif tokens[-1] == "<sep>":
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)

    def fill(w):
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores(scores)
        w.add_token_types(types)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)

    write(path, fill)


def train_byte_level_bpe(vocab_size: int, specials):
    """A byte-level BPE trained on whole lines, uncut: its merges join across
    words, digits, punctuation and spaces, so the ids each file's `pre`
    gives depend on exactly where that pre-tokenizer cuts."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS] * 4, trainer)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    tokens = [None] * len(vocab)
    for token, i in vocab.items():
        tokens[i] = token
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    # Whole words no merge forms: Llama 3's `ignore_merges` takes them as
    # they are, everyone else spells them from smaller tokens.
    tokens += WHOLE_WORDS
    return tokens, merges


def bpe_file(path: Path, pre_name, tokens, merges, specials):
    types = [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens]

    def fill(w):
        w.add_tokenizer_model("gpt2")
        if pre_name is not None:
            w.add_tokenizer_pre(pre_name)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(0)
        w.add_eos_token_id(1)
        w.add_add_bos_token(False)

    write(path, fill)


def llama_cpp_cases(path: Path):
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    out = []
    for text in CASES:
        ids = llm.tokenize(text.encode(), add_bos=False, special=False)
        arr = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
        buf = ctypes.create_string_buffer(4096)
        n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, 4096, False, False)
        assert 0 <= n < 4096
        pieces = b"".join(llm._model.token_to_piece(i, False).rstrip(b"\0") for i in ids)
        out.append({
            "text": text,
            "ids": ids,
            "detokenized": buf.raw[:n].decode("utf-8", errors="replace"),
            "pieces": pieces.decode("utf-8", errors="replace"),
        })
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    spm_file(OUT / "spm.gguf")
    specials = ["<|endoftext|>", "<|im_end|>"]
    tokens, merges = train_byte_level_bpe(600, specials)
    for name, pre in [("llama_bpe", "llama-bpe"), ("qwen2", "qwen2"), ("smollm", "smollm"), ("no_pre", None)]:
        bpe_file(OUT / f"{name}.gguf", pre, tokens, merges, specials)
    kinds = ["spm", "llama_bpe", "qwen2", "smollm", "no_pre"]
    cases = {name: llama_cpp_cases(OUT / f"{name}.gguf") for name in kinds}
    (OUT / "cases.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n")
    for f in sorted(OUT.iterdir()):
        print(f"{f.name}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
