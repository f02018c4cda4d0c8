//! The deploy flow's steps, in order, over any transport.

use super::backend::Backend;
use super::push::Pusher;
use super::{dir, probe};
use crate::board::Facts;
use crate::error::HostError;
use crate::report::Report;
use crate::session::{Session, Stop};
use crate::ssh::upload::quote;
use crate::transport::Transport;
use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use whosent_proto::record::EndReason;

/// What the flow needs of the command line.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// `user@host:port`, for the "connected" line.
    pub login: String,
    /// The `host` given, added to JSON records.
    pub host: String,
    /// `--target`.
    pub target: Option<String>,
    pub sudo: bool,
    pub keep: bool,
    pub json: bool,
    /// No human progress on stderr.
    pub quiet: bool,
    /// The agent ends by itself after this long without the host's
    /// heartbeat (`--alive-timeout`); `None` for a capture that must
    /// outlive the connection (detached).
    pub alive_timeout: Option<Duration>,
}

/// Ctrl-C (`stop`) turns a step's error into [`HostError::Interrupted`].
fn step<'s>(stop: &'s AtomicBool, during: &'static str) -> impl Fn(HostError) -> HostError + 's {
    move |e: HostError| {
        if stop.load(Ordering::SeqCst) {
            HostError::Interrupted(during)
        } else {
            e
        }
    }
}

fn check(stop: &AtomicBool, during: &'static str) -> Result<(), HostError> {
    if stop.load(Ordering::SeqCst) {
        Err(HostError::Interrupted(during))
    } else {
        Ok(())
    }
}

/// The steps every run takes before its directory: the probe, the
/// architecture and privilege checks, the "connected" line, and the
/// backend's payload built for this board. A live run ([`run`]) and a
/// detached capture's start (`crate::detach::start`) go on from here.
pub fn prepare(
    t: &dyn Transport,
    plan: &Plan,
    backend: &mut dyn Backend,
    stop: &AtomicBool,
) -> Result<Facts, HostError> {
    let facts = probe::probe(t, plan.sudo).map_err(step(stop, "probing the board"))?;
    let arch = probe::arch(plan.target.as_deref(), &facts)?;
    probe::check_privileges(&facts, plan.sudo)?;
    say!(
        "whosent: connected to {} ({}, Linux {})",
        plan.login,
        whosent_proto::escape::escape(&facts.arch),
        whosent_proto::escape::escape(&facts.release)
    );
    // A backend's own word on an interrupted build says more (stap's).
    backend.prepare(&facts, arch, stop)?;
    check(stop, "preparing the capture")?;
    Ok(facts)
}

/// Runs `backend` on the board behind `t`, its records to `out`;
/// returns the exit status. `stop` is Ctrl-C (and stdout gone): before
/// the stream it ends the run at the next step (the SSH transport also
/// drops the connection at once, see `ssh::watch`), with
/// [`HostError::Interrupted`]; the agent is never started just to be
/// stopped.
pub fn run(
    t: &dyn Transport,
    plan: &Plan,
    backend: &mut dyn Backend,
    out: &mut dyn Write,
    stop: &AtomicBool,
) -> Result<i32, HostError> {
    let step = |during| step(stop, during);
    let check = |during| check(stop, during);
    let facts = prepare(t, plan, backend, stop)?;
    let keep = if plan.keep { backend.keep() } else { None };
    let mut dir = dir::make(t, keep.as_deref()).map_err(step("making the directory"))?;
    let pusher = Pusher {
        t,
        facts: &facts,
        dir: &dir.path,
        alive_timeout: plan.alive_timeout,
    };
    let cmd = backend
        .push(&pusher, dir.existing)
        .map_err(step("uploading"))?;
    check("uploading")?;
    let cleanup = if keep.is_some() {
        String::new()
    } else {
        format!("rm -rf {}; ", quote(&dir.path))
    };
    let sudo = probe::sudo_prefix(&facts);
    let mark = if dir.guarded() {
        dir::started_mark(&dir.path)
    } else {
        String::new()
    };
    let cmd = format!("{mark}{sudo}{cmd}; st=$?; {cleanup}exit $st");
    // From here the remote command removes the directory itself.
    dir.remove_on_drop = false;

    let mut report = Report::new(
        &mut *out as &mut dyn Write,
        plan.json,
        Some(plan.host.clone()),
    );
    report.quiet = plan.quiet;
    let halt = Stop::default();
    let limits = backend.limits();
    let mut session = Session::new(report, limits, &halt);
    let deadline = limits
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let done = AtomicBool::new(false);
    let streamed = std::thread::scope(|sc| {
        // Ctrl-C and a host-side --duration become a stop of this stream.
        sc.spawn(|| watch(stop, deadline, &halt, &done));
        let _done = Done(&done);
        // Both callbacks feed the one session, never at the same time.
        let raw = backend.raw_output();
        let shared = RefCell::new((&mut *backend, &mut session));
        let mut on_out = |data: &[u8]| {
            let (b, s) = &mut *shared.borrow_mut();
            b.line(data, s)
        };
        let mut on_err = |chunk: &[u8]| {
            let (b, s) = &mut *shared.borrow_mut();
            b.stderr(chunk, s)
        };
        if raw {
            t.stream_bytes(&cmd, &mut on_out, &mut on_err, &halt.halt)
        } else {
            t.stream(&cmd, &mut on_out, &mut on_err, &halt.halt)
        }
    });
    // Dropped before the agent could start (Ctrl-C during its start).
    if matches!(streamed, Err(crate::ssh::SshError::Interrupted)) {
        return Err(HostError::Interrupted("starting the agent"));
    }
    let status = backend.finish(t, streamed, &mut session);
    // A failed stdout first: it is why the stream was stopped.
    if let Some(e) = session.output_error() {
        return Err(e);
    }
    let status = status?;
    // Ctrl-C after the agent was started but before it was tracing (its
    // `ready` not yet come): it stopped and cleaned up like a traced
    // run, yet nothing was traced, which is an interrupted start, not an
    // empty capture (exit 2, as at the steps before; boards.rs saw
    // exit 1 here).
    if stop.load(Ordering::SeqCst) && !session.live_before_stop && !session.errored() {
        return Err(HostError::Interrupted("starting the agent"));
    }
    Ok(session.status(status))
}

/// Sets `done` when dropped, also while a panic unwinds: the watcher
/// then ends and the panic is not turned into a hang of the scope.
pub(crate) struct Done<'a>(pub &'a AtomicBool);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Until `done`: turns Ctrl-C (`stop`) and the deadline into a stop of
/// the stream (`halt`).
pub(crate) fn watch(stop: &AtomicBool, deadline: Option<Instant>, halt: &Stop, done: &AtomicBool) {
    while !done.load(Ordering::SeqCst) {
        if stop.load(Ordering::SeqCst) {
            return halt.request(crate::interrupt::reason(), true);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return halt.request(EndReason::Duration, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
