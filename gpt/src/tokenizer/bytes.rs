//! GPT-2's byte ↔ unicode table.
//!
//! Byte-level BPE works on raw bytes, so every possible input — any language,
//! emoji, even bytes that are not UTF-8 — is made of the same 256 symbols and
//! nothing is ever "unknown". But GPT-2's vocabulary files (`vocab.json`,
//! `merges.txt`) are text, and some bytes are invisible or awkward in text
//! (control characters, the space that separates the two halves of a merge
//! line). So GPT-2 gives each byte a visible stand-in character:
//!
//! - the 188 bytes that already print as themselves (`!`..`~`, `¡`..`¬`,
//!   `®`..`ÿ`, read as Latin-1) keep their own character;
//! - the other 68 (control bytes, space, `0x7F`..`0xA0`, `0xAD`) are given the
//!   characters from U+0100 upwards, in byte order.
//!
//! That is why a space shows up as `Ġ` (U+0120, the 33rd stand-in) and a
//! newline as `Ċ` (U+010A) in GPT-2's files: `"Ġthe"` is the token for the
//! bytes `" the"`. The table is only a file-format detail; inside the tokenizer
//! tokens are plain byte strings.

/// Number of stand-in characters: one per byte value.
const N: usize = 256;

/// `BYTE_TO_CHAR[b]` is the character that stands for byte `b` in GPT-2's files.
pub const BYTE_TO_CHAR: [char; N] = build_table();

/// Whether byte `b` prints as itself (and so stands for itself).
const fn prints_as_itself(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

const fn build_table() -> [char; N] {
    let mut table = ['\0'; N];
    // The bytes that do not print take U+0100, U+0101, ... in byte order.
    let mut next_stand_in = 256u32;
    let mut b = 0;
    while b < N {
        let code = if prints_as_itself(b as u8) {
            b as u32
        } else {
            next_stand_in += 1;
            next_stand_in - 1
        };
        table[b] = match char::from_u32(code) {
            Some(c) => c,
            None => panic!("stand-in characters are all below U+0144"),
        };
        b += 1;
    }
    table
}

/// The byte a stand-in character represents, or `None` for any other character.
pub fn char_to_byte(c: char) -> Option<u8> {
    // Every stand-in is below U+0100 + 68, so a small inverse table is enough.
    const INVERSE: [i16; 256 + 68] = {
        let mut inv = [-1i16; 256 + 68];
        let mut b = 0;
        while b < N {
            inv[BYTE_TO_CHAR[b] as usize] = b as i16;
            b += 1;
        }
        inv
    };
    match INVERSE.get(c as usize) {
        Some(&b) if b >= 0 => Some(b as u8),
        _ => None,
    }
}

/// Writes `bytes` the way GPT-2's vocabulary files spell them.
pub fn bytes_to_unicode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| BYTE_TO_CHAR[b as usize]).collect()
}

/// Reads a token as spelled in GPT-2's files back into bytes; `None` when the
/// text holds a character that is not one of the 256 stand-ins.
pub fn unicode_to_bytes(text: &str) -> Option<Vec<u8>> {
    text.chars().map(char_to_byte).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_bytes_stand_for_themselves() {
        assert_eq!(BYTE_TO_CHAR[b'A' as usize], 'A');
        assert_eq!(BYTE_TO_CHAR[b'!' as usize], '!');
        assert_eq!(BYTE_TO_CHAR[0xE9], 'é');
    }

    #[test]
    fn space_and_newline_match_gpt2_files() {
        // 'Ġ' and 'Ċ' are what GPT-2's merges.txt shows for space and newline.
        assert_eq!(BYTE_TO_CHAR[b' ' as usize], 'Ġ');
        assert_eq!(BYTE_TO_CHAR[b'\n' as usize], 'Ċ');
        assert_eq!(BYTE_TO_CHAR[0], '\u{100}');
        assert_eq!(BYTE_TO_CHAR[0xAD], '\u{143}');
    }

    #[test]
    fn table_is_a_bijection() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = BYTE_TO_CHAR[b as usize];
            assert!(seen.insert(c), "two bytes share {c:?}");
            assert_eq!(char_to_byte(c), Some(b));
        }
        assert_eq!(char_to_byte('\u{144}'), None);
        assert_eq!(char_to_byte('€'), None);
    }

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unicode_to_bytes(&bytes_to_unicode(&all)), Some(all));
        assert_eq!(bytes_to_unicode(b" the"), "Ġthe");
        assert_eq!(unicode_to_bytes("a€"), None);
    }
}
