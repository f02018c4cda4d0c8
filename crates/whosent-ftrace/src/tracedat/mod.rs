//! trace-cmd's `trace.dat`, versions 6 and 7, compressed or not, read
//! from bytes in memory (the caller reads the file).
//!
//! The formats are described in trace-cmd's
//! Documentation/trace-cmd/trace-cmd.dat.v6.5.txt and
//! trace-cmd.dat.v7.5.txt; where trace-cmd's reader
//! (lib/trace-cmd/trace-input.c) differs from them, the module that
//! depends on it says so. What this reader takes from a file:
//! - the kernel's event formats, parsed with [`crate::format`];
//! - header_page, parsed with [`crate::header_page`];
//! - saved_cmdlines, which names the tasks that were running;
//! - each buffer's per-CPU ring-buffer pages, decoded with
//!   [`crate::page`] into events in timestamp order ([`records`]).
//!
//! A file damaged in its metadata is an error. Damage in the CPU data
//! (a truncated copy, a bad chunk) keeps what came before it and is
//! listed in [`TraceDat::warnings`].

mod bytes;
mod compress;
mod cpu_data;
mod error;
mod header;
mod layout;
mod metadata;
pub mod records;
mod sections;
pub mod signals;
mod v6;

pub use compress::Codec;
pub use error::TraceDatError;
pub use header::{FileHeader, MAGIC};

use crate::format::EventFormat;
use crate::header_page::PageLayout;
use bytes::Cursor;
use compress::Budget;
use metadata::Metadata;
use std::borrow::Cow;
use std::collections::HashMap;

/// A trace.dat read into memory.
#[derive(Debug)]
pub struct TraceDat<'a> {
    pub header: FileHeader,
    pub page_layout: PageLayout,
    /// Every event format in the file, ftrace's own included.
    pub formats: Vec<EventFormat>,
    /// pid → comm, from the kernel's saved_cmdlines when recorded.
    pub cmdlines: HashMap<i32, String>,
    pub buffers: Vec<Buffer<'a>>,
    /// Damage that left the rest readable: formats that did not parse,
    /// CPU data cut short or not decompressing.
    pub warnings: Vec<TraceDatError>,
}

/// One ftrace buffer: the top one (`name` empty) or an instance.
#[derive(Debug)]
pub struct Buffer<'a> {
    pub name: String,
    /// The trace clock (`local`, `mono`, ...) when the file names it.
    pub clock: Option<String>,
    pub page_size: usize,
    pub cpus: Vec<CpuData<'a>>,
}

/// One CPU's ring-buffer pages, back to back.
#[derive(Debug)]
pub struct CpuData<'a> {
    pub cpu: u32,
    pub pages: Cow<'a, [u8]>,
}

/// The most a file may decompress to, unless the caller sets a limit:
/// 1 GiB, or 64 times the file's size if that is more (trace data
/// compresses about 5 times; see tests/fixtures/host-6.18/tracedat).
pub fn default_limit(file_len: usize) -> u64 {
    (1u64 << 30).max(file_len as u64 * 64)
}

impl<'a> TraceDat<'a> {
    pub fn parse(file: &'a [u8]) -> Result<Self, TraceDatError> {
        Self::parse_with_limit(file, default_limit(file.len()))
    }

    /// Like [`parse`](Self::parse), decompressing at most `limit` bytes.
    pub fn parse_with_limit(file: &'a [u8], limit: u64) -> Result<Self, TraceDatError> {
        let mut c = Cursor::new(file, false);
        let header = FileHeader::read(&mut c)?;
        let mut meta = Metadata::default();
        let mut budget = Budget::new(limit);
        let specs = if header.version >= 7 {
            sections::read(file, &header, &mut meta, &mut budget)?
        } else {
            v6::read(file, &mut c, &header, &mut meta)?
        };
        let page_layout = meta
            .layout
            .ok_or_else(|| TraceDatError::corrupt("no header_page in the file", 0))?;
        let mut warnings = meta.format_errors;
        let buffers = specs
            .into_iter()
            .map(|spec| cpu_data::load(file, &header, spec, &mut budget, &mut warnings))
            .collect();
        Ok(TraceDat {
            header,
            page_layout,
            formats: meta.formats,
            cmdlines: meta.cmdlines,
            buffers,
            warnings,
        })
    }

    pub fn format(&self, name: &str) -> Option<&EventFormat> {
        self.formats.iter().find(|f| f.name == name)
    }

    /// Every event and loss marker of every buffer, in timestamp order.
    pub fn records(&self) -> records::Records<'_> {
        records::Records::new(self)
    }
}
