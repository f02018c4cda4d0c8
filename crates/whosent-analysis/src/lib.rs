//! From raw ftrace pages and /proc facts to whosent's records, free of
//! I/O. The standalone agent runs it in-process over its live readers
//! and /proc; the host runs it over the capture stream the agent sent
//! (live, or a file saved with `--save`). One path from raw event to
//! record, whichever way the bytes came.
//!
//! - [`merge`]: the per-CPU runs merged into time order, and how far
//!   that order is final (the horizon);
//! - [`proctable`]: the process table kept from task events, with uid
//!   changes, and the lineage walk;
//! - [`facts`]: where /proc facts come from (live /proc, or PROC frames);
//! - [`fate`]: the `exit` records of watched processes;
//! - [`pipeline`]: pages in, typed records out (query matched);
//! - [`repeat`]: storms folded in the kernel, as `repeat` records;
//! - [`session`]: a whole capture stream to records, with its end.

pub mod facts;
#[cfg(feature = "exits")]
pub mod fate;
pub mod merge;
pub mod pipeline;
pub mod proctable;
pub mod repeat;
pub mod session;
