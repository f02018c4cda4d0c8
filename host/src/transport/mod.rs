//! The seam between the deploy flow and whatever carries its commands:
//! an SSH connection to a board ([`crate::ssh::Conn`]), this machine
//! ([`local::Local`]), or a scripted board in memory ([`fake::FakeBoard`],
//! for tests of the flow without hardware, like probe-rs's in-memory
//! transport).
//!
//! The flow needs only three things from a board: run a short command,
//! put a file there, and run a long command whose stdout is read line by
//! line and which stops when its stdin closes (see [`crate::ssh::exec`]
//! for why stdin and not a signal).

pub mod fake;
pub mod local;
mod ssh;

pub use crate::ssh::{Flow, Output, SshError, UploadMethod};
use std::sync::atomic::AtomicBool;

/// While it lives, a [`Transport::hold`] command's stdin stays open.
pub trait Hold {}
impl Hold for () {}
impl Hold for crate::ssh::Held<'_> {}

pub trait Transport {
    /// Runs a short command to its end and collects its output.
    fn run(&self, cmd: &str) -> Result<Output, SshError>;

    /// Runs `cmd`, returning what it printed up to a line `.`, and keeps
    /// it running with its stdin open until the returned value drops or
    /// the connection ends (see [`crate::ssh::hold`]). By default it is
    /// run to its end with its stdin closed: for transports that only
    /// replay answers (the fake board).
    fn hold(&self, cmd: &str) -> Result<(Output, Box<dyn Hold + '_>), SshError> {
        Ok((self.run(cmd)?, Box::new(())))
    }

    /// Puts `data` at `path` with permissions `mode`, atomically (a
    /// broken transfer leaves no truncated `path`); `progress` gets
    /// (bytes sent, total).
    fn upload(
        &self,
        data: &[u8],
        path: &str,
        mode: i32,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<UploadMethod, SshError>;

    /// Runs `cmd`, handing its stdout to `on_line` line by line (without
    /// the `\n`) and its stderr to `on_stderr` in chunks. Once `stop` is
    /// set or `on_line` returns [`Flow::Stop`], the command's stdin is
    /// closed and it has [`crate::ssh::STOP_GRACE`] to exit. Returns its
    /// exit status (128 + n if signal n killed it).
    fn stream(
        &self,
        cmd: &str,
        on_line: &mut dyn FnMut(&[u8]) -> Flow,
        on_stderr: &mut dyn FnMut(&[u8]),
        stop: &AtomicBool,
    ) -> Result<i32, SshError>;

    /// As [`Transport::stream`], with stdout handed to `on_data` in
    /// chunks as they arrive: for the agent's binary capture stream
    /// (docs/stream-format.md). By default built on `stream`, whose lines
    /// joined again with `\n` are the same bytes (a last line without
    /// its `\n` gets none), for transports that only replay lines.
    fn stream_bytes(
        &self,
        cmd: &str,
        on_data: &mut dyn FnMut(&[u8]) -> Flow,
        on_stderr: &mut dyn FnMut(&[u8]),
        stop: &AtomicBool,
    ) -> Result<i32, SshError> {
        let mut line = Vec::new();
        self.stream(
            cmd,
            &mut |l| {
                line.clear();
                line.extend_from_slice(l);
                line.push(b'\n');
                on_data(&line)
            },
            on_stderr,
            stop,
        )
    }
}
