//! What can be wrong with a trace.dat file. Each error names where in
//! the file it was found and carries a help line for the user.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceDatError {
    /// The file does not start with trace-cmd's magic.
    NotTraceDat,
    /// A file version this reader does not know (it reads 6 and 7).
    Version(String),
    /// Written on a machine of the other byte order; the page decoder
    /// reads the host's.
    ForeignEndian { big: bool },
    /// A latency-tracer file (`trace-cmd record -p irqsoff` and the
    /// like): its data is text, not ring-buffer pages.
    Latency,
    /// A compression algorithm other than zlib and zstd.
    Compression(String),
    /// The file ends inside something it announced.
    Truncated { what: String, at: u64 },
    /// A value that cannot be right, e.g. an offset out of the file.
    Corrupt { what: String, at: u64 },
    /// A compressed block that does not decompress to its stated size.
    Decompress { what: String, at: u64, msg: String },
    /// The decompressed data would exceed the reader's limit.
    TooLarge { what: String, at: u64, limit: u64 },
    /// An event format that does not parse (`format` module).
    Format { event: String, msg: String },
    /// A ring-buffer page that does not decode (`page` module).
    Page {
        buffer: String,
        cpu: u32,
        page: usize,
        msg: String,
    },
}

impl fmt::Display for TraceDatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TraceDatError::*;
        match self {
            NotTraceDat => write!(
                f,
                "not a trace-cmd trace.dat file (no \\x17\\x08\\x44tracing magic)"
            ),
            Version(v) => write!(f, "trace.dat version {v:?} is not supported (6 and 7 are)"),
            ForeignEndian { big } => write!(
                f,
                "trace.dat was written on a {}-endian machine; this host is {}-endian",
                if *big { "big" } else { "little" },
                if *big { "little" } else { "big" }
            ),
            Latency => write!(f, "trace.dat holds latency-tracer text, not signal events"),
            Compression(c) => write!(
                f,
                "trace.dat is compressed with {c:?}, which is not supported (zlib and zstd are)"
            ),
            Truncated { what, at } => write!(
                f,
                "trace.dat is truncated: {what} at byte {at} runs past the end"
            ),
            Corrupt { what, at } => write!(f, "trace.dat is corrupt: {what} at byte {at}"),
            Decompress { what, at, msg } => write!(
                f,
                "trace.dat is corrupt: {what} at byte {at} does not decompress: {msg}"
            ),
            TooLarge { what, at, limit } => write!(
                f,
                "trace.dat: {what} at byte {at} would decompress to more than {limit} bytes"
            ),
            Format { event, msg } => write!(f, "trace.dat: event format {event}: {msg}"),
            Page {
                buffer,
                cpu,
                page,
                msg,
            } => {
                let b = if buffer.is_empty() {
                    "top buffer"
                } else {
                    buffer
                };
                write!(f, "trace.dat: {b}, CPU {cpu}, page {page}: {msg}")
            }
        }
    }
}

impl std::error::Error for TraceDatError {}

impl TraceDatError {
    /// What the user can do about it.
    pub fn help(&self) -> &'static str {
        use TraceDatError::*;
        match self {
            NotTraceDat => "give a trace.dat from `trace-cmd record`, or ftrace text",
            Version(_) => "convert it with `trace-cmd convert --file-version 7 -i FILE -o NEW`",
            ForeignEndian { .. } => "run `trace-cmd report` on it and parse that text instead",
            Latency => "record with `trace-cmd record -e signal:signal_generate`",
            Compression(_) => {
                "convert it with `trace-cmd convert --compression none -i FILE -o NEW`"
            }
            Truncated { .. } | Corrupt { .. } | Decompress { .. } | Page { .. } => {
                "the file is damaged (an interrupted copy or recording?); record or copy it again"
            }
            TooLarge { .. } => "split it with `trace-cmd split`, or report it with trace-cmd",
            Format { .. } => "report it with `trace-cmd report` and parse that text instead",
        }
    }

    pub(crate) fn truncated(what: impl Into<String>, at: usize) -> Self {
        TraceDatError::Truncated {
            what: what.into(),
            at: at as u64,
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, at: usize) -> Self {
        TraceDatError::Corrupt {
            what: what.into(),
            at: at as u64,
        }
    }
}
