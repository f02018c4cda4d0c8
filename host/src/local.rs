//! `--host local`: the same agent and record stream as on a board,
//! without SSH ([`crate::transport::local`]). The agent's stdin is a
//! pipe, so closing it stops the agent exactly as a dropped SSH session
//! would.

use crate::died::{Exit, LastWords};
use crate::error::HostError;
use crate::report::Report;
use crate::session::{Limits, Session, Stop};
use crate::ssh::upload::quote;
use crate::stream::Feed;
use crate::transport::local::Local;
use crate::transport::Transport;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use whosent_proto::record::EndReason;

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

/// Runs the agent here (with `--stream` in `args`) and reports what
/// `feed` decodes of it; returns the exit status.
pub fn run(
    agent: &Path,
    args: &[String],
    json: bool,
    mut feed: Feed,
    stop: &AtomicBool,
) -> Result<i32, HostError> {
    // sh would report a missing agent as status 127; say which file.
    if let Err(e) = std::fs::metadata(agent) {
        return Err(HostError::Io(
            format!("cannot start {}", agent.display()),
            e,
        ));
    }
    // exec: the agent itself, not a shell, gets the stdin and signals.
    let mut cmd = format!("exec {}", quote(&agent.display().to_string()));
    for a in args {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    // The report buffers (the session flushes after each chunk of the
    // stream) and counts what fd 1 took.
    let mut out = crate::stdout::Raw;
    let mut report = Report::new(&mut out as &mut dyn Write, json, None);
    report.quiet = !io::stderr().is_terminal() && json;
    let halt = Stop::default();
    let mut session = Session::new(report, Limits::default(), &halt);
    let done = AtomicBool::new(false);
    let mut words = LastWords::default();
    // Once our stdout is gone (`| head`) or --count is reached, the
    // stream stops the agent and drains its output until it exits.
    let streamed = std::thread::scope(|sc| {
        sc.spawn(|| crate::deploy::flow::watch(stop, None, &halt, &done));
        let _done = crate::deploy::flow::Done(&done);
        Local.stream_bytes(
            &cmd,
            &mut |chunk| feed.bytes(chunk, &mut session),
            &mut |chunk| {
                words.feed(chunk);
                // The agent's stderr can carry names: no raw control bytes.
                let text = whosent_proto::escape::escape_lines(chunk);
                let _ = io::stderr().write_all(text.as_bytes());
            },
            &halt.halt,
        )
    });
    let exit = streamed.as_ref().ok().map(|&status| Exit {
        status,
        last: words.last(),
    });
    let death = feed.finish(EndReason::Hangup, exit, &mut session);
    // The agent is stopped and gone: now the run's own error, if any.
    if let Some(e) = session.output_error() {
        return Err(e);
    }
    if let Some(d) = death {
        return Err(d.error());
    }
    Ok(session.status(streamed?))
}
