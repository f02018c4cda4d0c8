//! Version 7: sections anywhere in the file, found through a chain of
//! options sections (`trace-cmd.dat.v7(5)`). Each section starts with
//! a 16-byte header: u16 id, u16 flags (1 = compressed), u32 string id
//! of its description, u64 size. The doc says 4 bytes for the size;
//! trace-cmd reads and writes 8 (read_section_header() in
//! lib/trace-cmd/trace-input.c, tcmd_out_write_section_header() in
//! trace-output.c).

use super::bytes::Cursor;
use super::compress::{self, Budget};
use super::error::TraceDatError;
use super::header::FileHeader;
use super::layout::{BufferSpec, CpuSpec};
use super::metadata::Metadata;
use super::v6::selected_clock;
use std::borrow::Cow;

/// Section and option ids (`enum tracecmd_file_options` in trace-cmd.h).
const OPT_DONE: u16 = 0;
const OPT_BUFFER: u16 = 3;
const OPT_TRACECLOCK: u16 = 4;
const OPT_HEADER_INFO: u16 = 16;
const OPT_FTRACE_EVENTS: u16 = 17;
const OPT_EVENT_FORMATS: u16 = 18;
const OPT_CMDLINES: u16 = 21;
const FLAG_COMPRESSED: u16 = 1;

struct Section<'a> {
    flags: u16,
    body: Cow<'a, [u8]>,
}

/// The section at `offset`, which must have id `id`; its body is
/// decompressed if it is compressed. For BUFFER sections only the
/// header matters: the CPU data has its own offsets.
fn section<'a>(
    file: &'a [u8],
    offset: u64,
    id: u16,
    what: &str,
    hdr: &FileHeader,
    budget: &mut Budget,
) -> Result<Section<'a>, TraceDatError> {
    let mut c = Cursor::at(file, offset, hdr.big_endian, what)?;
    let at = c.offset();
    let got = c.u16("section id")?;
    if got != id {
        return Err(TraceDatError::corrupt(
            format!("{what} section has id {got}, expected {id}"),
            at,
        ));
    }
    let flags = c.u16("section flags")?;
    c.u32("section description")?;
    let size = c.u64("section size")?;
    if id == OPT_BUFFER {
        return Ok(Section {
            flags,
            body: Cow::Borrowed(&[]),
        });
    }
    let body = if flags & FLAG_COMPRESSED != 0 {
        let codec = hdr.codec().ok_or_else(|| {
            TraceDatError::corrupt(format!("{what} section is compressed, the file is not"), at)
        })?;
        let mut out = Vec::new();
        compress::block(codec, &mut c, budget, what, &mut out)?;
        Cow::Owned(out)
    } else {
        Cow::Borrowed(c.take(size, what)?)
    };
    Ok(Section { flags, body })
}

pub(crate) fn read(
    file: &[u8],
    hdr: &FileHeader,
    meta: &mut Metadata,
    budget: &mut Budget,
) -> Result<Vec<BufferSpec>, TraceDatError> {
    let mut next = hdr.options_offset.unwrap_or(0);
    let mut seen = Vec::new();
    let (mut buffers, mut clock) = (Vec::new(), None);
    let mut offsets: Vec<(u16, u64)> = Vec::new();
    while next != 0 {
        if seen.contains(&next) {
            return Err(TraceDatError::corrupt(
                "options sections loop",
                next as usize,
            ));
        }
        seen.push(next);
        let s = section(file, next, OPT_DONE, "options", hdr, budget)?;
        let mut c = Cursor::new(&s.body, hdr.big_endian);
        next = 0;
        while c.remaining() > 0 {
            let id = c.u16("option id")?;
            let size = c.u32("option size")?;
            let mut data = Cursor::new(c.take(size as u64, "option")?, hdr.big_endian);
            match id {
                OPT_DONE => {
                    next = data.u64("next options offset")?;
                    break;
                }
                OPT_BUFFER => buffers.push(buffer_option(&mut data, hdr)?),
                OPT_TRACECLOCK => clock = selected_clock(&data.cstr("TRACECLOCK")?),
                OPT_HEADER_INFO | OPT_FTRACE_EVENTS | OPT_EVENT_FORMATS | OPT_CMDLINES => {
                    // One section per kind, the last option naming it
                    // wins (section_add_or_update() in trace-input.c);
                    // a file naming one section a thousand times is not
                    // read a thousand times.
                    let offset = data.u64("section offset")?;
                    offsets.retain(|&(i, _)| i != id);
                    offsets.push((id, offset));
                }
                _ => {}
            }
        }
    }
    for (id, offset) in offsets {
        let what = match id {
            OPT_HEADER_INFO => "header info",
            OPT_FTRACE_EVENTS => "ftrace event formats",
            OPT_EVENT_FORMATS => "event formats",
            _ => "cmdlines",
        };
        let s = section(file, offset, id, what, hdr, budget)?;
        let mut c = Cursor::new(&s.body, hdr.big_endian);
        match id {
            OPT_HEADER_INFO => meta.header_info(&mut c)?,
            OPT_FTRACE_EVENTS => meta.ftrace_formats(&mut c)?,
            OPT_EVENT_FORMATS => meta.event_formats(&mut c)?,
            _ => meta.cmdlines(&mut c)?,
        }
    }
    for b in &mut buffers {
        let s = section(file, b.1, OPT_BUFFER, "buffer", hdr, budget)?;
        b.0.compressed = s.flags & FLAG_COMPRESSED != 0;
        if b.0.compressed && hdr.codec().is_none() {
            return Err(TraceDatError::corrupt(
                "buffer section is compressed, the file is not",
                b.1 as usize,
            ));
        }
        if b.0.clock.is_none() {
            b.0.clock.clone_from(&clock);
        }
    }
    Ok(buffers.into_iter().map(|(b, _)| b).collect())
}

/// The BUFFER option: u64 section offset, name, clock, u32 page size,
/// u32 CPU count, then per CPU u32 id, u64 offset, u64 size. The page
/// size came in trace-cmd 3.1 (commit ac3ee689, "Introduce buffer page
/// size per instance"); files from 3.0 lack it, which the length of the
/// option tells.
fn buffer_option(c: &mut Cursor<'_>, hdr: &FileHeader) -> Result<(BufferSpec, u64), TraceDatError> {
    let offset = c.u64("BUFFER offset")?;
    let name = c.cstr("BUFFER name")?;
    let clock = c.cstr("BUFFER clock")?;
    let mut probe = c.clone();
    let old_count = probe.u32("BUFFER CPU count")? as usize;
    let at = c.offset();
    let page_size = if c.remaining() == 4 + old_count.saturating_mul(20) {
        hdr.page_size
    } else {
        c.u32("BUFFER page size")?
    };
    if !super::header::plausible_page_size(page_size) {
        return Err(TraceDatError::corrupt(
            format!("BUFFER page size {page_size}"),
            at,
        ));
    }
    let n = c.u32("BUFFER CPU count")?;
    let cpus = (0..n)
        .map(|_| {
            Ok(CpuSpec {
                cpu: c.u32("CPU id")?,
                offset: c.u64("CPU data offset")?,
                size: c.u64("CPU data size")?,
            })
        })
        .collect::<Result<_, TraceDatError>>()?;
    Ok((
        BufferSpec {
            name,
            clock: (!clock.is_empty()).then_some(clock),
            page_size,
            compressed: false,
            cpus,
        },
        offset,
    ))
}
