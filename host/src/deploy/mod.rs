//! The one deploy flow, for every backend: connect, probe, check the
//! architecture and privileges, decide sudo, make a private directory,
//! let the backend push its payload (uploaded and sha256-checked there),
//! stream its records, clean up. What differs between the ftrace agent
//! and a stap module is a [`Backend`]; what carries the commands is a
//! [`crate::transport::Transport`], so the flow is tested against a
//! fake board ([`crate::transport::fake`]).
//!
//! Clean-up does not depend on this process surviving: the remote
//! command removes the directory itself after the backend's command
//! exits, and that command exits when its stdin closes, which is what
//! happens when the SSH connection drops or whosent-deploy is killed.
//!
//! - [`connect`]: SSH as ssh would, with known_hosts and a password prompt;
//! - [`probe`]: the board's facts, its architecture, privileges and sudo;
//! - [`dir`]: the private directory;
//! - [`push`]: uploading and checking files there;
//! - [`backend`]: what a backend owns;
//! - [`flow`]: the steps in order.

pub mod backend;
pub mod connect;
pub mod dir;
pub mod flow;
pub mod probe;
pub mod push;

#[cfg(test)]
mod tests;

pub use backend::Backend;
pub use connect::connect;
pub use flow::Plan;

use crate::cli::RunArgs;
use crate::error::HostError;
use std::io::{self, IsTerminal};
use std::sync::atomic::AtomicBool;

/// Traces `host` over SSH with `backend`; returns the exit status.
/// As [`run`], on this machine (`--host local`): the same flow over
/// the local transport, as root.
pub fn run_local(
    r: &RunArgs,
    backend: &mut dyn Backend,
    stop: &AtomicBool,
) -> Result<i32, HostError> {
    let plan = Plan {
        login: "local".into(),
        host: "local".into(),
        target: r.target.clone(),
        sudo: r.sudo,
        keep: r.keep,
        json: r.capture.json,
        quiet: r.capture.json && !io::stderr().is_terminal(),
        // Nothing writes a heartbeat here, and the agent's stdin is a
        // pipe from this process: its EOF is enough.
        alive_timeout: None,
    };
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    flow::run(
        &crate::transport::local::Local,
        &plan,
        backend,
        &mut out,
        stop,
    )
}

pub fn run(
    r: &RunArgs,
    host: &str,
    backend: &mut dyn Backend,
    stop: &'static AtomicBool,
) -> Result<i32, HostError> {
    run_to(r, host, backend, stop, &mut crate::stdout::Raw)
}

/// As [`run`], the records to `out` (one board of several:
/// [`crate::fleet`]); `r.ssh.host` is the board.
pub fn run_to(
    r: &RunArgs,
    host: &str,
    backend: &mut dyn Backend,
    stop: &'static AtomicBool,
    out: &mut dyn io::Write,
) -> Result<i32, HostError> {
    let interrupted = |e: HostError| {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            HostError::Interrupted("connecting")
        } else {
            e
        }
    };
    let (target, conn) = connect(&r.ssh, Some(stop)).map_err(interrupted)?;
    let plan = Plan {
        login: login(&target),
        host: host.to_string(),
        target: r.target.clone(),
        sudo: r.sudo,
        keep: r.keep,
        json: r.capture.json,
        quiet: r.capture.json && !io::stderr().is_terminal(),
        alive_timeout: Some(conn.alive().dead_after()),
    };
    // The report buffers (the session flushes after each chunk of the
    // stream) and counts what fd 1 took.
    flow::run(&conn, &plan, backend, out, stop)
}

/// `user@host:port`, then ` via user@jump:port` for each jump host.
pub fn login(t: &crate::ssh::Target) -> String {
    let mut s = format!("{}@{}:{}", t.user, t.host, t.port);
    let mut hop = t.jump.as_deref();
    while let Some(j) = hop {
        s.push_str(&format!(" via {}@{}:{}", j.user, j.host, j.port));
        hop = j.jump.as_deref();
    }
    s
}
