//! Decoding a stream of tokens as they are generated.
//!
//! A GPT produces one token at a time, and we want to print each as it
//! arrives. But a token is a byte string that may end in the middle of a
//! UTF-8 character (GPT-2 spells many emoji and CJK characters in two or
//! three tokens), and printing those bytes one token at a time would show
//! `�` where the character should be. [`Utf8Stream`] holds back the bytes of
//! an unfinished character until the rest arrive, and releases everything
//! that is complete.

/// Turns a sequence of byte chunks into text, holding back incomplete characters.
#[derive(Clone, Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` (a token's bytes) and returns the text that is now
    /// complete. Bytes that can never become valid UTF-8 come out as `�`.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("checked valid"));
                    match e.error_len() {
                        // The end is the start of a character still coming.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that no continuation can fix.
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: whatever is still held back comes out, lossily.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_a_split_character() {
        let mut s = Utf8Stream::new();
        let zebra = "🦓".as_bytes(); // F0 9F A6 93
        assert_eq!(s.push(b"a "), "a ");
        assert_eq!(s.push(&zebra[..2]), "");
        assert_eq!(s.push(&zebra[2..3]), "");
        assert_eq!(s.push(&[zebra[3], b'!']), "🦓!");
    }

    #[test]
    fn broken_bytes_become_replacement_characters() {
        let mut s = Utf8Stream::new();
        assert_eq!(s.push(b"x\xFFy"), "x\u{FFFD}y");
        assert_eq!(s.push(b"\xE2\x82"), "");
        assert_eq!(s.push(b"z"), "\u{FFFD}z");
        assert_eq!(s.push(b"\xE2\x82"), "");
        assert_eq!(s.finish(), "\u{FFFD}");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn streaming_gpt2_tokens_gives_the_whole_text() {
        let tok = crate::tokenizer::BpeTokenizer::gpt2();
        let text = "Zebras 🦓 and 日本語 — done.";
        let mut s = Utf8Stream::new();
        let mut out = String::new();
        for id in tok.encode_ordinary(text) {
            let piece = s.push(tok.token_bytes(id).unwrap());
            assert!(!piece.contains('\u{FFFD}'));
            out.push_str(&piece);
        }
        out.push_str(&s.finish());
        assert_eq!(out, text);
    }
}
