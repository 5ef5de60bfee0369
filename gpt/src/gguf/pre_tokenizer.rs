//! The pre-tokenizers GGUF names in `tokenizer.ggml.pre`, as llama.cpp
//! defines them.
//!
//! A byte-level BPE file (`tokenizer.ggml.model = "gpt2"`) stores its
//! vocabulary and merges but not how text is cut into words before BPE;
//! that is fixed by name: `llama-bpe` is Llama 3's regex, `qwen2` Qwen2's,
//! `smollm` digits one by one and then GPT-2's; a file with no `pre` is
//! cut as `default` is. llama.cpp cuts with a list
//! of regexes, each applied to the pieces the one before left, keeping the
//! text between matches as pieces too; that is `tokenizers`' `Split` with
//! `Isolated` behaviour, one per regex, which is how the reader lays them out
//! ([`tokenizer`](super::tokenizer)). The regexes are llama.cpp's spellings
//! (`(?:'[sS]|'[tT]...)` for the case-insensitive `(?i:'s|'t...)`), so a
//! name here cuts as llama.cpp cuts.
//!
//! `ignore_merges` is llama.cpp's flag for Llama 3's family: a word that is
//! itself a token becomes that token without merging; the same family puts
//! BOS in front unless the file says otherwise.

/// One family of `pre` names.
pub struct PreTokenizer {
    pub names: &'static [&'static str],
    /// Applied in order, each to the pieces of the one before.
    pub regexes: &'static [&'static str],
    pub ignore_merges: bool,
    /// Whether BOS goes in front when the file does not say.
    pub add_bos: bool,
}

/// GPT-2's regex as llama.cpp writes it (without GPT-2's final `|\s+`:
/// whitespace it leaves unmatched is kept as a piece anyway).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// Llama 3: letters with one leading non-letter, digits in threes, and
/// whitespace before a newline or a non-space kept apart.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2: Llama 3's regex with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

pub const PRE_TOKENIZERS: &[PreTokenizer] = &[
    // What llama.cpp uses when a file names no `pre` (or `"default"`):
    // punctuation runs first, then GPT-2's regex, then digit runs cut
    // into threes from the left.
    PreTokenizer {
        names: &["default"],
        regexes: &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
        ignore_merges: false,
        add_bos: false,
    },
    PreTokenizer {
        names: &["gpt-2", "phi-2", "mpt", "olmo", "jais", "exaone4", "trillion", "granite-docling"],
        regexes: &[GPT2],
        ignore_merges: false,
        add_bos: false,
    },
    PreTokenizer {
        names: &["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"],
        regexes: &[LLAMA3],
        ignore_merges: true,
        add_bos: true,
    },
    PreTokenizer { names: &["dbrx", "smaug-bpe"], regexes: &[LLAMA3], ignore_merges: false, add_bos: false },
    PreTokenizer {
        names: &["qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", "hunyuan"],
        regexes: &[QWEN2],
        ignore_merges: false,
        add_bos: false,
    },
    PreTokenizer {
        names: &["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"],
        regexes: &[r"\p{N}", GPT2],
        ignore_merges: false,
        add_bos: false,
    },
    PreTokenizer {
        names: &["deepseek-llm"],
        // The cased letters; escaped where a character (the Ohm and Kelvin
        // signs, some Greek with tonos) has a canonical equivalent that
        // Unicode normalization would silently substitute.
        regexes: &[
            r"[\r\n]",
            r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝ\x{1F5F}-\x{1F7D}ᾀ-ᾴᾶ-ᾼ\x{1FBE}ῂ-ῄῆ-ῌ\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\x{2126}ℨ\x{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
            r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
            r"\s+$",
            r"[一-龥ࠀ-一가-퟿]+",
            r"\p{N}+",
        ],
        ignore_merges: false,
        add_bos: false,
    },
    PreTokenizer {
        names: &["deepseek-coder"],
        regexes: &[r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", r"[一-龥ࠀ-一가-퟿]+", r"\p{N}"],
        ignore_merges: false,
        add_bos: false,
    },
    PreTokenizer {
        names: &["deepseek-v3"],
        regexes: &[
            r"\p{N}{1,3}",
            r"[一-龥぀-ゟ゠-ヿ]+",
            r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
        ],
        ignore_merges: false,
        add_bos: false,
    },
    PreTokenizer {
        names: &["falcon"],
        regexes: &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
        ignore_merges: false,
        add_bos: false,
    },
];

/// The pre-tokenizer a `pre` name stands for.
pub fn find(name: &str) -> Option<&'static PreTokenizer> {
    PRE_TOKENIZERS.iter().find(|p| p.names.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_regex_compiles_and_every_name_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for pre in PRE_TOKENIZERS {
            for name in pre.names {
                assert!(seen.insert(*name), "{name} is listed twice");
            }
            for regex in pre.regexes {
                fancy_regex::Regex::new(regex).unwrap_or_else(|e| panic!("{:?}: {e}", pre.names));
            }
        }
        assert_eq!(find("qwen2").unwrap().regexes, [QWEN2]);
        assert!(find("llama-bpe").unwrap().ignore_merges);
        assert_eq!(find("default").unwrap().regexes.len(), 4);
        assert!(find("no-such-pre").is_none());
    }
}
