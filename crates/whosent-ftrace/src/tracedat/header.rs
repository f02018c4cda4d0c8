//! The start of every trace.dat (`trace-cmd.dat.v6(5)` and
//! `trace-cmd.dat.v7(5)`, "INITIAL FORMAT"): magic, version, byte
//! order, user-space long size, page size; v7 adds the compression
//! algorithm and the offset of the first options section.

use super::bytes::Cursor;
use super::compress::Codec;
use super::error::TraceDatError;

pub use crate::detect::TRACE_DAT_MAGIC as MAGIC;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// 6 or 7.
    pub version: u32,
    pub big_endian: bool,
    /// The traced machine's user-space `long` (4 or 8); the kernel's
    /// word size is header_page's commit size.
    pub long_size: u8,
    pub page_size: u32,
    /// v7: the algorithm and its version string; `None` for v6 and for
    /// v7's `"none"`.
    pub compression: Option<(Codec, String)>,
    /// v7: where the first options section starts.
    pub options_offset: Option<u64>,
}

impl FileHeader {
    /// Reads the header; `c` is left where the rest of the file starts.
    pub(crate) fn read(c: &mut Cursor<'_>) -> Result<Self, TraceDatError> {
        if c.remaining() < MAGIC.len() || c.take(MAGIC.len() as u64, "magic")? != MAGIC {
            return Err(TraceDatError::NotTraceDat);
        }
        let version = c.cstr("file version")?;
        let version = match version.as_str() {
            "6" => 6,
            "7" => 7,
            _ => return Err(TraceDatError::Version(version)),
        };
        let at = c.offset();
        let big_endian = match c.u8("byte order")? {
            0 => false,
            1 => true,
            b => return Err(TraceDatError::corrupt(format!("byte order flag {b}"), at)),
        };
        // The page decoder and format fields read the host's order.
        if big_endian != cfg!(target_endian = "big") {
            return Err(TraceDatError::ForeignEndian { big: big_endian });
        }
        c.set_big_endian(big_endian);
        let at = c.offset();
        let long_size = c.u8("long size")?;
        if long_size != 4 && long_size != 8 {
            return Err(TraceDatError::corrupt(format!("long size {long_size}"), at));
        }
        let at = c.offset();
        let page_size = c.u32("page size")?;
        if !plausible_page_size(page_size) {
            return Err(TraceDatError::corrupt(format!("page size {page_size}"), at));
        }
        let (mut compression, mut options_offset) = (None, None);
        if version >= 7 {
            let name = c.cstr("compression name")?;
            let cver = c.cstr("compression version")?;
            compression = Codec::from_name(&name)?.map(|codec| (codec, cver));
            options_offset = Some(c.u64("options offset")?);
        }
        Ok(FileHeader {
            version,
            big_endian,
            long_size,
            page_size,
            compression,
            options_offset,
        })
    }

    pub fn codec(&self) -> Option<Codec> {
        self.compression.as_ref().map(|(c, _)| *c)
    }
}

/// Linux pages are powers of two from 4 KiB (1 KiB allowed for old
/// ports) to 1 MiB; anything else is a corrupt field.
pub(crate) fn plausible_page_size(n: u32) -> bool {
    (1024..=1 << 20).contains(&n) && n.is_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(b: &[u8]) -> Result<FileHeader, TraceDatError> {
        FileHeader::read(&mut Cursor::new(b, false))
    }

    #[test]
    fn v6_and_v7_headers() {
        let v6 = read(b"\x17\x08\x44tracing6\0\0\x08\x00\x10\0\0").unwrap();
        assert_eq!((v6.version, v6.long_size, v6.page_size), (6, 8, 4096));
        assert_eq!((v6.compression, v6.options_offset), (None, None));
        let v7 = read(b"\x17\x08\x44tracing7\0\0\x04\x00\x10\0\0zstd\x001.5.4\0\x20\0\0\0\0\0\0\0")
            .unwrap();
        assert_eq!(v7.compression, Some((Codec::Zstd, "1.5.4".into())));
        assert_eq!((v7.long_size, v7.options_offset), (4, Some(32)));
        let none =
            read(b"\x17\x08\x44tracing7\0\0\x08\x00\x10\0\0none\0\0\x20\0\0\0\0\0\0\0").unwrap();
        assert_eq!(none.codec(), None);
    }

    #[test]
    fn what_is_refused_and_why() {
        assert_eq!(read(b"# tracer: nop\n"), Err(TraceDatError::NotTraceDat));
        assert_eq!(
            read(b"\x17\x08\x44tracing5\0\0\x08\x00\x10\0\0"),
            Err(TraceDatError::Version("5".into()))
        );
        let other = if cfg!(target_endian = "big") { 0u8 } else { 1 };
        let mut b = b"\x17\x08\x44tracing6\0".to_vec();
        b.extend([other, 8, 0, 0x10, 0, 0]);
        assert_eq!(
            read(&b),
            Err(TraceDatError::ForeignEndian { big: other == 1 })
        );
        assert!(matches!(
            read(b"\x17\x08\x44tracing6\0\0\x08\x00\x10\0"),
            Err(TraceDatError::Truncated { .. })
        ));
        assert!(matches!(
            read(b"\x17\x08\x44tracing6\0\0\x08\x01\x10\0\0"),
            Err(TraceDatError::Corrupt { .. })
        ));
        assert_eq!(
            read(b"\x17\x08\x44tracing7\0\0\x08\x00\x10\0\0lz4\x001\0"),
            Err(TraceDatError::Compression("lz4".into()))
        );
    }
}
