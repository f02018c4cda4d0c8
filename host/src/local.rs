//! `--host local`: the same agent and record stream as on a board,
//! without SSH ([`crate::transport::local`]). The agent's stdin is a
//! pipe, so closing it stops the agent exactly as a dropped SSH session
//! would.

use crate::build::Target;
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
/// `whosent-agent` installed next to whosent-deploy. One the user named
/// gets the same ELF check as over SSH (`--agent /bin/ls` used to run
/// ls); the sibling is the one cargo built with whosent-deploy, which
/// may be dynamically linked, and is taken as it is.
pub fn find_agent(explicit: Option<&Path>) -> Result<PathBuf, HostError> {
    let named = explicit.map(Path::to_path_buf).or_else(|| {
        std::env::var_os("WHOSENT_AGENT")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    if let Some(p) = named {
        if let Some(arch) = this_machine() {
            crate::build::check_elf(&p, arch)?;
        }
        return Ok(p);
    }
    let exe =
        std::env::current_exe().map_err(|e| HostError::Io("cannot find own path".into(), e))?;
    let sibling = exe.with_file_name("whosent-agent");
    if sibling.is_file() {
        return Ok(sibling);
    }
    Err(HostError::NoLocalAgent(sibling))
}

/// This machine's architecture as a build target (`uname -m`), if
/// whosent builds agents for it.
fn this_machine() -> Option<Target> {
    // SAFETY: utsname is plain bytes, filled in by uname(2).
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    // SAFETY: uname(2) NUL-terminates the field.
    let m = unsafe { std::ffi::CStr::from_ptr(u.machine.as_ptr()) };
    Target::from_uname_m(m.to_str().ok()?)
}

/// The command prefix for `--sudo`: `sudo -n` when not root, after
/// checking that sudo works without a password (as on a board); nothing
/// for root, who needs no sudo.
fn sudo_prefix(sudo: bool) -> Result<&'static str, HostError> {
    // SAFETY: geteuid has no preconditions.
    if !sudo || unsafe { libc::geteuid() } == 0 {
        return Ok("");
    }
    let works = std::process::Command::new("sudo")
        .args(["-n", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        return Err(HostError::other(
            "--sudo was given, but `sudo -n true` fails here (no sudo, or it wants a password)",
            "run `sudo -v` first so sudo remembers your password, or run whosent-deploy as root",
        ));
    }
    Ok("sudo -n -- ")
}

/// Runs the agent here (with `--stream` in `args`), through sudo with
/// `sudo`, and reports what `feed` decodes of it; returns the exit
/// status.
pub fn run(
    agent: &Path,
    args: &[String],
    sudo: bool,
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
    let sudo = sudo_prefix(sudo)?;
    // exec: the agent itself (or sudo, which relays signals to it), not
    // a shell, gets the stdin and signals.
    let mut cmd = format!("exec {sudo}{}", quote(&agent.display().to_string()));
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
