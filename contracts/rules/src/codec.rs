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

/// What a byte is inside a page's entries, by byte.
pub(crate) const ENTRY_BYTES: [EntryByte; 256] = {
    let mut t = [EntryByte::Foreign; 256];
    let mut i = 0;
    while i < 256 {
        if DIGITS[i] != NOT_A_DIGIT {
            t[i] = EntryByte::Inside;
        }
        i += 1;
    }
    let tags = b"IMXQSN";
    let mut j = 0;
    while j < tags.len() {
        t[tags[j] as usize] = EntryByte::Inside;
        j += 1;
    }
    t[b',' as usize] = EntryByte::Separator;
    t
};

/// The classes of [`ENTRY_BYTES`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryByte {
    /// A base-36 digit or a field tag.
    Inside,
    /// The comma between entries.
    Separator,
    /// A byte the format never writes.
    Foreign,
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
    fn overflowing_or_missing_numbers_are_refused() {
        assert_eq!(Scanner::new("3w5e11264sgsga").number(), None); // u64::MAX + more
        assert_eq!(Scanner::new("Ix").number(), None);
        assert_eq!(Scanner::new("").number(), None);
        assert_eq!(Scanner::new("3w5e11264sgse").number(), Some(u64::MAX - 1));
    }
}
