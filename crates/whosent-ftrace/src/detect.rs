//! Which kind of recorded trace a file is, from its first bytes rather
//! than its name, so that `trace.txt`, `trace.dat` and stdin all work.
//! A new format adds a variant and its test in [`Format::detect`].

/// The start of every trace-cmd trace.dat: `0x17 0x08 0x44` then
/// `tracing` (TRACECMD_MAGIC in trace-cmd's
/// lib/trace-cmd/include/trace-cmd-local.h, compared by
/// tracecmd_alloc_fd() in lib/trace-cmd/trace-input.c).
pub const TRACE_DAT_MAGIC: &[u8; 10] = b"\x17\x08\x44tracing";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ftrace text: `trace`, `trace_pipe`, `trace-cmd report`/`show`.
    Text,
    /// trace-cmd's binary trace.dat (see `crate::tracedat`).
    TraceDat,
    /// Not a trace: binary data of a kind named here (`an ELF file`).
    /// ftrace text never holds a NUL byte (a comm is a C string), so
    /// one in the first bytes says it is not text either.
    NotATrace(&'static str),
}

/// Kinds of file users pass by mistake, by their magic bytes.
const OTHER_MAGIC: &[(&[u8], &str)] = &[
    (b"\x7fELF", "an ELF file (a program or library)"),
    (b"\x1f\x8b", "gzip-compressed data (decompress it first)"),
    (
        b"\x28\xb5\x2f\xfd",
        "zstd-compressed data (decompress it first)",
    ),
    (b"\xfd7zXZ\0", "xz-compressed data (decompress it first)"),
    (b"BZh", "bzip2-compressed data (decompress it first)"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PERFILE2", "a perf.data file (read it with `perf script`)"),
];

impl Format {
    /// How many leading bytes [`detect`](Self::detect) wants; fewer
    /// are fine at the end of a short input.
    pub const PREFIX_LEN: usize = 512;

    /// Text that is not a trace is still read as text, whose parser
    /// skips what it does not recognise; binary data that is not a
    /// trace.dat is [`Format::NotATrace`].
    pub fn detect(prefix: &[u8]) -> Format {
        if prefix.starts_with(TRACE_DAT_MAGIC) {
            return Format::TraceDat;
        }
        if let Some((_, kind)) = OTHER_MAGIC.iter().find(|(m, _)| prefix.starts_with(m)) {
            return Format::NotATrace(kind);
        }
        if prefix.contains(&0) {
            return Format::NotATrace("binary data");
        }
        Format::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_content_not_by_name() {
        assert_eq!(Format::detect(b"\x17\x08\x44tracing6\0"), Format::TraceDat);
        assert_eq!(Format::detect(b"# tracer: nop\n"), Format::Text);
        assert_eq!(Format::detect(b"\x17\x08\x44trac"), Format::Text);
        assert_eq!(Format::detect(b""), Format::Text);
        // Hostile names are bytes, but never NUL.
        assert_eq!(Format::detect(b"  \x1b[2K-12 [000] ....\n"), Format::Text);
    }

    #[test]
    fn an_elf_file_is_not_a_trace() {
        let ls = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0";
        assert!(matches!(Format::detect(ls), Format::NotATrace(k) if k.contains("ELF")));
        assert!(
            matches!(Format::detect(b"\x1f\x8b\x08\0"), Format::NotATrace(k) if k.contains("gzip"))
        );
        assert_eq!(
            Format::detect(b"abc\0def"),
            Format::NotATrace("binary data")
        );
    }
}
