//! What a backend owns. The flow calls these in order: `prepare` once
//! the board is known, `push` into the private directory, then `line`
//! and `stderr` for the command's output, and `finish` once it ended.
//! A new backend (eBPF, audit) is one module implementing this trait.

use super::push::Pusher;
use crate::board::Facts;
use crate::build::Target as Arch;
use crate::error::HostError;
use crate::session::{Limits, Session};
use crate::transport::{Flow, SshError, Transport};
use std::sync::atomic::AtomicBool;

pub trait Backend {
    /// After the probe: builds or picks the payload for this board.
    /// `stop` is Ctrl-C, for long builds.
    fn prepare(&mut self, facts: &Facts, arch: Arch, stop: &AtomicBool) -> Result<(), HostError>;

    /// With `--keep`: the key (a hash of the payload) that names the
    /// directory kept on the board between runs.
    fn keep(&self) -> Option<String> {
        None
    }

    /// Puts the payload into the directory (`existing`: kept from an
    /// earlier run), checked there; returns the command to run in it,
    /// without sudo and without the clean-up, which the flow adds.
    fn push(&mut self, p: &Pusher<'_>, existing: bool) -> Result<String, HostError>;

    /// What the host must enforce itself, because the command does not.
    fn limits(&self) -> Limits {
        Limits::default()
    }

    /// Whether the command's stdout is a byte stream (the agent's
    /// capture stream) rather than lines.
    fn raw_output(&self) -> bool {
        false
    }

    /// One line of the command's stdout (with [`Backend::raw_output`],
    /// a chunk of it as it arrived), turned into records.
    fn line(&mut self, raw: &[u8], s: &mut Session<'_>) -> Flow;

    /// A chunk of the command's stderr; by default passed on, escaped
    /// for the terminal (it can echo names from the board).
    fn stderr(&mut self, chunk: &[u8], _s: &mut Session<'_>) {
        let text = whosent_proto::escape::escape_lines(chunk);
        crate::fleet::tag::bytes(text.as_bytes());
    }

    /// After the stream: the last records and checks on the board.
    /// Returns the command's exit status.
    fn finish(
        &mut self,
        t: &dyn Transport,
        streamed: Result<i32, SshError>,
        s: &mut Session<'_>,
    ) -> Result<i32, HostError> {
        let _ = (t, s);
        Ok(streamed?)
    }
}
