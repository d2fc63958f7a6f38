//! Unicode classes for the pre-tokenizer regexes (`\p{L}`, `\p{N}`, `\s`, ...), and GPT-2's
//! byte ↔ printable-character mapping.
//!
//! The category table is generated from llama.cpp's own Unicode data (see gen_unicode_table.py),
//! so every code point is classified exactly as llama.cpp classifies it (~9 KB of data).

#[rustfmt::skip]
#[path = "unicode_table.rs"]
mod table;

pub const NUMBER: u8 = 0x02;
pub const LETTER: u8 = 0x04;
pub const MARK: u8 = 0x10;
pub const PUNCTUATION: u8 = 0x20;
pub const SYMBOL: u8 = 0x40;

/// The category bit of a code point (0 for code points beyond Unicode, like llama.cpp).
pub fn category(c: u32) -> u8 {
    if c > 0x10FFFF {
        return 0;
    }
    let ranges = &table::CATEGORY_RANGES;
    // Last range whose start is <= c.
    let i = ranges.partition_point(|&r| (r >> 8) <= c);
    if i == 0 {
        0
    } else {
        (ranges[i - 1] & 0xFF) as u8
    }
}

pub fn is_whitespace(c: u32) -> bool {
    table::WHITESPACE.binary_search(&c).is_ok()
}

/// GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes map to
/// themselves, the rest to U+0100.. in byte order.
pub fn byte_to_char_table() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let printable =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let c = if printable {
            b
        } else {
            next += 1;
            next - 1
        };
        out[b as usize] = char::from_u32(c).unwrap_or('\u{FFFD}');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        assert_eq!(category('a' as u32), LETTER);
        assert_eq!(category('Z' as u32), LETTER);
        assert_eq!(category('7' as u32), NUMBER);
        assert_eq!(category('!' as u32), PUNCTUATION);
        assert_eq!(category('+' as u32), SYMBOL);
        assert_eq!(category('中' as u32), LETTER);
        assert_eq!(category('٣' as u32), NUMBER);
        assert_eq!(category(0x301), MARK);
        assert!(is_whitespace(' ' as u32) && is_whitespace(0x3000) && !is_whitespace('x' as u32));
    }

    #[test]
    fn byte_map() {
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
    }
}
