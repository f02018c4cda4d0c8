//! trace.dat v7 compression. The file header names the algorithm
//! (`"name\0version\0"`); trace-cmd 3.x writes `zlib` (zlib's
//! `compress2()`, so RFC 1950 streams) or `zstd` (one zstd frame per
//! block), see lib/trace-cmd/trace-compress-zlib.c and
//! trace-compress-zstd.c in trace-cmd. Metadata sections are one block,
//! the CPU data a series of chunks (`trace-cmd.dat.v7(5)`, "COMPRESSION
//! FORMAT"): both are `<u32 compressed size><u32 size><data>`.

use super::bytes::Cursor;
use super::error::TraceDatError;
use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Zlib,
    Zstd,
}

impl Codec {
    /// `None` for `"none"`, the name v7 files without compression carry.
    pub fn from_name(name: &str) -> Result<Option<Codec>, TraceDatError> {
        match name {
            "none" => Ok(None),
            "zlib" => Ok(Some(Codec::Zlib)),
            "zstd" => Ok(Some(Codec::Zstd)),
            other => Err(TraceDatError::Compression(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Zlib => "zlib",
            Codec::Zstd => "zstd",
        }
    }

    /// Decompresses `data`, which must give exactly `size` bytes.
    fn decompress(self, data: &[u8], size: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        // One byte more than announced, so that a block that is longer
        // than its header says is noticed without reading all of it.
        let limit = size as u64 + 1;
        let got = match self {
            Codec::Zlib => flate2::read::ZlibDecoder::new(data)
                .take(limit)
                .read_to_end(out),
            Codec::Zstd => {
                let mut src = data;
                let dec =
                    ruzstd::decoding::StreamingDecoder::new(&mut src).map_err(|e| e.to_string())?;
                dec.take(limit).read_to_end(out)
            }
        }
        .map_err(|e| e.to_string())?;
        if got != size {
            out.truncate(start);
            return Err(format!("gave {got} bytes, the header says {size}"));
        }
        Ok(())
    }
}

/// How many bytes a file may decompress to in all; a small corrupt (or
/// hostile) file cannot make the reader allocate without bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) left: u64,
    pub(crate) limit: u64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Budget { left: limit, limit }
    }

    fn spend(&mut self, n: u64, what: &str, at: usize) -> Result<(), TraceDatError> {
        if n > self.left {
            return Err(TraceDatError::TooLarge {
                what: what.to_string(),
                at: at as u64,
                limit: self.limit,
            });
        }
        self.left -= n;
        Ok(())
    }
}

/// Reads one `<u32 compressed size><u32 size><data>` block at `c`.
pub(crate) fn block(
    codec: Codec,
    c: &mut Cursor<'_>,
    budget: &mut Budget,
    what: &str,
    out: &mut Vec<u8>,
) -> Result<(), TraceDatError> {
    let at = c.offset();
    let csize = c.u32(what)?;
    let size = c.u32(what)?;
    let data = c.take(csize as u64, what)?;
    budget.spend(size as u64, what, at)?;
    out.try_reserve(size as usize)
        .map_err(|e| TraceDatError::Decompress {
            what: what.to_string(),
            at: at as u64,
            msg: e.to_string(),
        })?;
    codec
        .decompress(data, size as usize, out)
        .map_err(|msg| TraceDatError::Decompress {
            what: format!("{what} ({} block)", codec.name()),
            at: at as u64,
            msg,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn framed(z: &[u8], size: u32) -> Vec<u8> {
        let mut b = (z.len() as u32).to_le_bytes().to_vec();
        b.extend(size.to_le_bytes());
        b.extend(z);
        b
    }

    #[test]
    fn a_zlib_block_must_give_its_stated_size() {
        let text = b"header_page\0".repeat(50);
        let buf = framed(&zlib(&text), text.len() as u32);
        let mut out = Vec::new();
        let mut budget = Budget::new(1 << 20);
        block(
            Codec::Zlib,
            &mut Cursor::new(&buf, false),
            &mut budget,
            "s",
            &mut out,
        )
        .unwrap();
        assert_eq!(out, text);
        assert_eq!(budget.left, (1 << 20) - text.len() as u64);

        for size in [text.len() as u32 - 1, text.len() as u32 + 1] {
            let buf = framed(&zlib(&text), size);
            let e = block(
                Codec::Zlib,
                &mut Cursor::new(&buf, false),
                &mut budget,
                "s",
                &mut out,
            );
            assert!(
                matches!(e, Err(TraceDatError::Decompress { .. })),
                "{size}: {e:?}"
            );
        }
    }

    #[test]
    fn the_budget_stops_a_block_that_claims_too_much() {
        let buf = framed(&zlib(b"x"), u32::MAX);
        let mut budget = Budget::new(1000);
        let e = block(
            Codec::Zlib,
            &mut Cursor::new(&buf, false),
            &mut budget,
            "s",
            &mut Vec::new(),
        );
        assert!(matches!(
            e,
            Err(TraceDatError::TooLarge { limit: 1000, .. })
        ));
    }

    #[test]
    fn garbage_does_not_decompress() {
        let buf = framed(&[0xde, 0xad, 0xbe, 0xef], 10);
        for codec in [Codec::Zlib, Codec::Zstd] {
            let mut budget = Budget::new(1000);
            let e = block(
                codec,
                &mut Cursor::new(&buf, false),
                &mut budget,
                "s",
                &mut Vec::new(),
            );
            assert!(
                matches!(e, Err(TraceDatError::Decompress { .. })),
                "{codec:?}"
            );
        }
        assert!(matches!(
            Codec::from_name("lz4"),
            Err(TraceDatError::Compression(_))
        ));
        assert_eq!(Codec::from_name("none").unwrap(), None);
    }
}
