//! The capture stream: what `whosent-agent --stream` writes and the host
//! reads (also what `--save FILE` keeps). It carries the kernel's raw
//! ring-buffer pages and the few /proc facts only the board can supply,
//! so the board records and the host explains.
//!
//! The format is documented frame by frame in `docs/stream-format.md`;
//! [`VERSION`] changes when a frame's layout or meaning changes. Both
//! halves are free of I/O: [`encode`] appends to a `Vec<u8>` (and is
//! small, for the agent's size budget), [`decode::Decoder`] takes bytes
//! as they come and says when the stream was cut.

pub mod decode;
pub mod encode;
pub mod frame;

/// The first bytes of every stream (and of a saved file).
pub const MAGIC: [u8; 8] = *b"WHOSENT\x1a";

/// The version in the stream header. A reader refuses other versions.
pub const VERSION: u16 = 1;

/// Header flag: the board's byte order is big-endian. Pages and the
/// kernel's own words inside them are in the board's byte order; the
/// frame fields are always little-endian.
pub const FLAG_BIG_ENDIAN: u16 = 1;

/// Magic, version (u16 LE) and flags (u16 LE).
pub const HEADER_LEN: usize = 12;
