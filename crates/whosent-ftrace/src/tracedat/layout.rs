//! Where each buffer's per-CPU data lies in the file, as the v6
//! header or the v7 BUFFER options say.

/// One ftrace buffer (the top one, or an instance made with
/// `trace-cmd record -B NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BufferSpec {
    /// `""` for the top buffer, as trace-cmd writes it.
    pub(crate) name: String,
    pub(crate) clock: Option<String>,
    pub(crate) page_size: u32,
    /// v7: the CPU data is a series of compressed chunks.
    pub(crate) compressed: bool,
    pub(crate) cpus: Vec<CpuSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuSpec {
    pub(crate) cpu: u32,
    pub(crate) offset: u64,
    /// In the file (compressed size when compressed).
    pub(crate) size: u64,
}
