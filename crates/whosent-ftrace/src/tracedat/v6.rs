//! Version 6: everything in sequence after the file header
//! (`trace-cmd.dat.v6(5)`): header_page/header_event, ftrace and event
//! formats, kallsyms, printk formats, saved cmdlines, the CPU count,
//! options, then `flyrecord` and the top buffer's (offset, size) per CPU.
//! An instance (`-B NAME`) is a BUFFER option whose offset points at
//! its own `flyrecord` list (tracecmd_buffer_instance_handle() in
//! trace-cmd's lib/trace-cmd/trace-input.c).

use super::bytes::Cursor;
use super::error::TraceDatError;
use super::header::FileHeader;
use super::layout::{BufferSpec, CpuSpec};
use super::metadata::{skip_u32_sized, Metadata};

/// Option ids (`enum tracecmd_file_options` in trace-cmd.h).
const OPT_DONE: u16 = 0;
const OPT_BUFFER: u16 = 3;
const OPT_TRACECLOCK: u16 = 4;

pub(crate) fn read(
    file: &[u8],
    c: &mut Cursor<'_>,
    hdr: &FileHeader,
    meta: &mut Metadata,
) -> Result<Vec<BufferSpec>, TraceDatError> {
    meta.header_info(c)?;
    meta.ftrace_formats(c)?;
    meta.event_formats(c)?;
    skip_u32_sized(c, "kallsyms")?;
    skip_u32_sized(c, "printk formats")?;
    meta.cmdlines(c)?;
    let cpus = c.u32("CPU count")?;

    let (mut instances, mut clock) = (Vec::new(), None);
    let top_cpus = flyrecord(c, cpus, &mut |id, mut data| {
        match id {
            OPT_BUFFER => instances.push((data.u64("BUFFER offset")?, data.cstr("BUFFER name")?)),
            // The trace_clock file: "[local] global ...", brackets
            // around the one in use.
            OPT_TRACECLOCK => clock = selected_clock(&data.cstr("TRACECLOCK")?),
            _ => {}
        }
        Ok(())
    })?;
    let spec = |name: String, cpus: Vec<CpuSpec>| BufferSpec {
        name,
        clock: clock.clone(),
        page_size: hdr.page_size,
        compressed: false,
        cpus,
    };
    let mut buffers = vec![spec(String::new(), top_cpus)];
    for (offset, name) in instances {
        let mut c = Cursor::at(file, offset, hdr.big_endian, "BUFFER")?;
        let cpus = flyrecord(&mut c, cpus, &mut |_, _| Ok(()))?;
        buffers.push(spec(name, cpus));
    }
    Ok(buffers)
}

/// Optional `"options  \0"` with its options, then `"flyrecord\0"` and
/// `cpus` (offset, size) pairs (read_options_type() and
/// read_cpu_data() in trace-input.c).
fn flyrecord(
    c: &mut Cursor<'_>,
    cpus: u32,
    on_option: &mut dyn FnMut(u16, Cursor<'_>) -> Result<(), TraceDatError>,
) -> Result<Vec<CpuSpec>, TraceDatError> {
    let mut at = c.offset();
    let mut tag = c.take(10, "section tag")?;
    if tag == b"options  \0" {
        loop {
            let id = c.u16("option id")?;
            if id == OPT_DONE {
                break;
            }
            let size = c.u32("option size")?;
            let data = c.take(size as u64, "option")?;
            on_option(id, Cursor::new(data, c.big_endian()))?;
        }
        at = c.offset();
        tag = c.take(10, "section tag")?;
    }
    match tag {
        b"flyrecord\0" => {}
        b"latency  \0" => return Err(TraceDatError::Latency),
        _ => {
            return Err(TraceDatError::corrupt(
                "expected \"flyrecord\" or \"latency\"",
                at,
            ))
        }
    }
    (0..cpus)
        .map(|cpu| {
            Ok(CpuSpec {
                cpu,
                offset: c.u64("CPU data offset")?,
                size: c.u64("CPU data size")?,
            })
        })
        .collect()
}

/// The clock in brackets in a `trace_clock` listing.
pub(crate) fn selected_clock(list: &str) -> Option<String> {
    let open = list.find('[')?;
    let close = list[open..].find(']')? + open;
    Some(list[open + 1..close].to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bracketed_clock_is_the_one_in_use() {
        assert_eq!(
            super::selected_clock("[local] global counter\n").as_deref(),
            Some("local")
        );
        assert_eq!(
            super::selected_clock("local mono [boot]").as_deref(),
            Some("boot")
        );
        assert_eq!(super::selected_clock("local"), None);
    }
}
