//! Reading trace.dat's numbers and strings: fixed-width integers in
//! the byte order the file declares, and NUL-terminated strings. Every
//! read is bounds-checked and names what it was reading.

use super::error::TraceDatError;

#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
    /// The file offset of `buf[0]`, for error messages; 0 for data that
    /// was decompressed (then `pos` is the offset inside the block).
    base: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], big_endian: bool) -> Self {
        Cursor {
            buf,
            pos: 0,
            big_endian,
            base: 0,
        }
    }

    /// A cursor at `offset` of the whole file `buf`.
    pub(crate) fn at(
        buf: &'a [u8],
        offset: u64,
        big_endian: bool,
        what: &str,
    ) -> Result<Self, TraceDatError> {
        match usize::try_from(offset) {
            Ok(o) if o <= buf.len() => Ok(Cursor {
                buf,
                pos: o,
                big_endian,
                base: 0,
            }),
            // Offsets point forward: a file cut short ends before them.
            _ => Err(TraceDatError::Truncated {
                what: format!("the {what} section (the file has {} bytes)", buf.len()),
                at: offset,
            }),
        }
    }

    /// The byte order for the numbers that follow (the file header
    /// declares it after the magic).
    pub(crate) fn set_big_endian(&mut self, big: bool) {
        self.big_endian = big;
    }

    pub(crate) fn big_endian(&self) -> bool {
        self.big_endian
    }

    /// The file offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], TraceDatError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                TraceDatError::truncated(format!("{what} ({n} bytes)"), self.offset())
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], TraceDatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N as u64, what)?);
        if self.big_endian {
            a.reverse();
        }
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, TraceDatError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, TraceDatError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, TraceDatError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, TraceDatError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A NUL-terminated string, without its NUL. Not UTF-8 is replaced.
    pub(crate) fn cstr(&mut self, what: &str) -> Result<String, TraceDatError> {
        let rest = &self.buf[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| TraceDatError::truncated(format!("{what} (a string)"), self.offset()))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    /// Checks for a fixed tag such as `"flyrecord\0"`.
    pub(crate) fn expect(&mut self, tag: &[u8], what: &str) -> Result<(), TraceDatError> {
        let at = self.offset();
        if self.take(tag.len() as u64, what)? != tag {
            return Err(TraceDatError::corrupt(format!("expected {what}"), at));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_files_byte_order() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(Cursor::new(&b, false).u32("x").unwrap(), 0x0403_0201);
        assert_eq!(Cursor::new(&b, true).u32("x").unwrap(), 0x0102_0304);
        assert_eq!(
            Cursor::new(&b, true).u64("x").unwrap(),
            0x0102_0304_0506_0708
        );
        assert_eq!(Cursor::new(&b, false).u16("x").unwrap(), 0x0201);
    }

    #[test]
    fn short_reads_and_unterminated_strings_are_errors() {
        let mut c = Cursor::new(b"abc", false);
        assert!(matches!(
            c.u32("word"),
            Err(TraceDatError::Truncated { .. })
        ));
        assert!(c.cstr("name").is_err());
        let mut c = Cursor::new(b"ab\0cd", false);
        assert_eq!(c.cstr("name").unwrap(), "ab");
        assert_eq!(c.remaining(), 2);
        assert!(c.take(u64::MAX, "huge").is_err());
        assert!(Cursor::at(b"ab", 3, false, "x").is_err());
    }
}
