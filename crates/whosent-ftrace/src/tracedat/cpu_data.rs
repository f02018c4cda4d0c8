//! Loading one buffer's per-CPU data: a slice of the file, or the
//! decompressed chunks of a compressed v7 buffer (`<u32 count>` then
//! count `<u32 compressed size><u32 size><data>` chunks, trace-cmd.dat.v7(5)
//! "COMPRESSION FORMAT OF THE TRACE DATA").

use super::bytes::Cursor;
use super::compress::{self, Budget};
use super::error::TraceDatError;
use super::header::FileHeader;
use super::layout::BufferSpec;
use super::{Buffer, CpuData};
use std::borrow::Cow;

pub(crate) fn load<'a>(
    file: &'a [u8],
    hdr: &FileHeader,
    spec: BufferSpec,
    budget: &mut Budget,
    warnings: &mut Vec<TraceDatError>,
) -> Buffer<'a> {
    let page_size = spec.page_size as usize;
    let label = |cpu: u32| {
        let b = if spec.name.is_empty() {
            "top buffer"
        } else {
            &spec.name
        };
        format!("{b} CPU {cpu} data")
    };
    let cpus = spec
        .cpus
        .iter()
        .filter(|c| c.size > 0)
        .map(|c| {
            let what = label(c.cpu);
            let pages = if spec.compressed {
                let codec = hdr.codec().expect("checked when the section was read");
                let mut out = Vec::new();
                if let Err(e) = chunks(file, hdr, c.offset, codec, budget, &what, &mut out) {
                    warnings.push(e);
                }
                Cow::Owned(out)
            } else {
                Cow::Borrowed(slice(file, c.offset, c.size, page_size, &what, warnings))
            };
            CpuData { cpu: c.cpu, pages }
        })
        .collect();
    Buffer {
        name: spec.name,
        clock: spec.clock,
        page_size,
        cpus,
    }
}

/// The data at (offset, size); when the file ends early, the whole pages
/// that are there, and a warning.
fn slice<'a>(
    file: &'a [u8],
    offset: u64,
    size: u64,
    page_size: usize,
    what: &str,
    warnings: &mut Vec<TraceDatError>,
) -> &'a [u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(file.len());
    let want = usize::try_from(size).unwrap_or(usize::MAX);
    let end = start.saturating_add(want);
    if end <= file.len() {
        return &file[start..end];
    }
    warnings.push(TraceDatError::truncated(
        format!("{what} ({size} bytes at {offset})"),
        file.len(),
    ));
    let have = (file.len() - start) / page_size * page_size;
    &file[start..start + have]
}

fn chunks(
    file: &[u8],
    hdr: &FileHeader,
    offset: u64,
    codec: compress::Codec,
    budget: &mut Budget,
    what: &str,
    out: &mut Vec<u8>,
) -> Result<(), TraceDatError> {
    let mut c = Cursor::at(file, offset, hdr.big_endian, what)?;
    let n = c.u32("chunk count")?;
    for i in 0..n {
        compress::block(codec, &mut c, budget, &format!("{what}, chunk {i}"), out)?;
    }
    Ok(())
}
