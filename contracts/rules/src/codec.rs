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

/// The value of a base-36 digit, if `b` is one.
fn digit(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'z' => Some(u64::from(b - b'a') + 10),
        _ => None,
    }
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

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
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
        let mut n = digit(self.peek()?)?;
        self.pos += 1;
        while let Some(d) = self.peek().and_then(digit) {
            n = n.checked_mul(36)?.checked_add(d)?;
            self.pos += 1;
        }
        Some(n)
    }

    /// Reads a base-36 number that fits a `u32`.
    pub(crate) fn number_u32(&mut self) -> Option<u32> {
        self.number().and_then(|n| u32::try_from(n).ok())
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
            assert!(sc.at_end());
        }
    }

    #[test]
    fn overflowing_or_missing_numbers_are_refused() {
        assert_eq!(Scanner::new("3w5e11264sgsga").number(), None); // u64::MAX + more
        assert_eq!(Scanner::new("Ix").number(), None);
        assert_eq!(Scanner::new("").number(), None);
        assert_eq!(Scanner::new("1z141z4").number_u32(), None); // > u32::MAX
    }
}
