//! The payload's number encoding (lowercase base 36) and a byte scanner over it: cheap to run
//! in wasm, no allocation, no UTF-8 or float parsing.

/// Appends `n` in lowercase base 36.
pub(crate) fn push_base36(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 13]; // u64::MAX is 13 base-36 digits
    let mut i = buf.len();
    loop {
        i -= 1;
        let d = (n % 36) as u8;
        buf[i] = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        n /= 36;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits and lowercase letters were written.
    out.extend(buf[i..].iter().map(|&b| b as char));
}

/// Base-36 digit values by byte; `NOT_A_DIGIT` elsewhere.
const DIGITS: [u8; 256] = {
    let mut t = [NOT_A_DIGIT; 256];
    let mut i = 0;
    while i < 36 {
        let c = if i < 10 { b'0' + i } else { b'a' + i - 10 };
        t[c as usize] = i;
        i += 1;
    }
    t
};
const NOT_A_DIGIT: u8 = 0xFF;

/// The lowest and highest byte the entries of a page are made of: `,` (0x2C) … `z` (0x7A).
const ENTRY_MIN: u8 = b',';
const ENTRY_MAX: u8 = b'z';

/// The index of the next `,` in `bytes[from..]` (`bytes.len()` when there is none), or `None`
/// when a byte outside `,`…`z` comes before it: how the Function skips the entries of variants
/// not in the cart.
///
/// Eight bytes per step (SWAR): the walk over up to 40 kB of pages is most of the Function's
/// cost above reading its input, and a byte loop costs ~8 wasm instructions per byte. Each
/// test below flags the lowest matching byte of a word exactly (a false flag can only sit
/// above a true one), which is all the comparisons need.
#[inline(always)]
pub(crate) fn next_separator(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = from;
    while let Some(word) = bytes.get(at..at + 8) {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let x = w ^ (ONES * u64::from(b','));
        let comma = x.wrapping_sub(ONES) & !x & HIGH;
        let below = w.wrapping_sub(ONES * u64::from(ENTRY_MIN)) & !w & HIGH;
        let above = (w.wrapping_add(ONES * u64::from(0x7F - ENTRY_MAX)) | w) & HIGH;
        let foreign = below | above;
        if comma != 0 {
            // A `,` is never foreign, so the lower of the two flags decides.
            return (foreign.trailing_zeros() > comma.trailing_zeros())
                .then(|| at + comma.trailing_zeros() as usize / 8);
        }
        if foreign != 0 {
            return None;
        }
        at += 8;
    }
    for (i, &b) in bytes[at.min(bytes.len())..].iter().enumerate() {
        if b == b',' {
            return Some(at + i);
        }
        if !(ENTRY_MIN..=ENTRY_MAX).contains(&b) {
            return None;
        }
    }
    Some(bytes.len())
}

/// Reads a base-36 number at `bytes[*at..]`, advancing `at`; `None` on no digit or overflow.
///
/// The hot loop of payload decoding. A `u64` `checked_mul` compiles to a 128-bit multiply
/// library call in wasm, so only the 13th digit (the first that can overflow: 36^12 < 2^64)
/// takes the checked path.
#[inline(always)]
pub(crate) fn read_base36(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let start = *at;
    let mut n = 0u64;
    while let Some(&b) = bytes.get(*at) {
        let d = DIGITS[usize::from(b)];
        if d == NOT_A_DIGIT {
            break;
        }
        let digits = *at - start;
        n = if digits < 12 {
            n * 36 + u64::from(d)
        } else if digits == 12 {
            n.checked_mul(36)?.checked_add(u64::from(d))?
        } else {
            return None;
        };
        *at += 1;
    }
    (*at > start).then_some(n)
}

/// A forward-only reader over a payload page.
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    /// The byte offset reached, for error messages.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.pos += usize::from(hit);
        hit
    }

    /// Consumes `lit` if it comes next.
    pub(crate) fn eat_literal(&mut self, lit: &[u8]) -> bool {
        let hit = self.bytes[self.pos.min(self.bytes.len())..].starts_with(lit);
        if hit {
            self.pos += lit.len();
        }
        hit
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(s)
    }

    /// Reads a base-36 number of at least one digit; `None` on no digit or overflow.
    pub(crate) fn number(&mut self) -> Option<u64> {
        read_base36(self.bytes, &mut self.pos)
    }

    /// The rest of the text and the offset it starts at.
    pub(crate) fn rest(&self) -> (&'a [u8], usize) {
        (self.bytes, self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_round_trips_the_whole_u64_range() {
        for n in [
            0,
            1,
            35,
            36,
            1295,
            44_712_345_678_901,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut s = String::new();
            push_base36(&mut s, n);
            let mut sc = Scanner::new(&s);
            assert_eq!(sc.number(), Some(n), "{s}");
            assert_eq!(sc.offset(), s.len());
        }
    }

    #[test]
    fn the_next_separator_is_found_at_every_offset_and_foreign_bytes_before_it_refuse() {
        let text = b"1I2S3k,2M4X9,abc,zz";
        let commas: Vec<usize> = (0..text.len()).filter(|&i| text[i] == b',').collect();
        for from in 0..=text.len() {
            let want = commas
                .iter()
                .copied()
                .find(|&c| c >= from)
                .unwrap_or(text.len());
            assert_eq!(next_separator(text, from), Some(want), "from {from}");
        }
        for bad in [b'{', b'|', b' ', b'"', 0x80, 0xFF, 0x00, b'+'] {
            for pos in 0..12 {
                let mut t = b"1I2S3k9M4X9q,5".to_vec();
                t[pos] = bad;
                assert_eq!(next_separator(&t, 0), None, "{bad:#x} at {pos}");
            }
            // After the comma, a foreign byte is the next entry's business.
            let mut t = b"1I2S3k9M4X9q,5".to_vec();
            t[13] = bad;
            assert_eq!(next_separator(&t, 0), Some(12));
        }
    }

    #[test]
    fn overflowing_or_missing_numbers_are_refused() {
        assert_eq!(Scanner::new("3w5e11264sgsga").number(), None); // u64::MAX + more
        assert_eq!(Scanner::new("Ix").number(), None);
        assert_eq!(Scanner::new("").number(), None);
        assert_eq!(Scanner::new("3w5e11264sgse").number(), Some(u64::MAX - 1));
    }
}
