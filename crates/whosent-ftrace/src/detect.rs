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
}

impl Format {
    /// How many leading bytes [`detect`](Self::detect) wants; fewer
    /// are fine at the end of a short input.
    pub const PREFIX_LEN: usize = TRACE_DAT_MAGIC.len();

    /// Anything that is not a known binary format is read as text, whose
    /// parser skips what it does not recognise.
    pub fn detect(prefix: &[u8]) -> Format {
        if prefix.starts_with(TRACE_DAT_MAGIC) {
            Format::TraceDat
        } else {
            Format::Text
        }
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
    }
}
