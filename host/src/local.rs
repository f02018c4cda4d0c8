//! `--host local`: the same agent and record stream as on a board,
//! without SSH. The agent's stdin is a pipe, so closing it stops the
//! agent exactly as a dropped SSH session would.

use crate::error::HostError;
use crate::stream::Feed;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The agent for this machine: `--agent`, `WHOSENT_AGENT`, or the
/// `whosent-agent` installed next to whosent-deploy.
pub fn find_agent(explicit: Option<&Path>) -> Result<PathBuf, HostError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("WHOSENT_AGENT").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe =
        std::env::current_exe().map_err(|e| HostError::Io("cannot find own path".into(), e))?;
    let sibling = exe.with_file_name("whosent-agent");
    if sibling.is_file() {
        return Ok(sibling);
    }
    Err(HostError::NoLocalAgent(sibling))
}

pub fn run<W: Write>(
    agent: &Path,
    args: &[String],
    mut feed: Feed<'_, W>,
    stop: &'static AtomicBool,
) -> Result<i32, HostError> {
    let mut child = Command::new(agent)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| HostError::Io(format!("cannot start {}", agent.display()), e))?;
    let stdin = child.stdin.take();
    // Closing the agent's stdin is the one way to stop it that works the
    // same here and over SSH.
    std::thread::spawn(move || {
        let _stdin = stdin;
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // Once our stdout is gone (`| head`) or --count is reached, stop
        // the agent and drain its output until it exits: not an error.
        if !feed.bytes(&buf[..n]) {
            stop.store(true, Ordering::SeqCst);
        }
    }
    feed.finish(whosent_proto::record::EndReason::Hangup);
    let status = child
        .wait()
        .map_err(|e| HostError::Io("waiting for the agent".into(), e))?;
    Ok(status.code().unwrap_or(2))
}
