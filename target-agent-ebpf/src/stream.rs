//! `--stream`: the eBPF agent records, the host explains, as the ftrace
//! agent's `--stream` does (docs/stream-format.md). Each of the
//! program's records goes out in an EVENT frame, its common fields
//! written as a ring-buffer page holds them ([`crate::event`]) and, for
//! a signal, with what the program read of the running task; the host
//! runs them through the same pipeline (whosent-analysis) as pages. The
//! only decoding here is what must happen on the board and at once: the
//! /proc facts of a process that is born, execs, or shows up unknown in
//! a signal (PROC frames, whosent_agent::proc_frames, the ftrace agent's
//! own code), and the namespaces the program looks the sender up in.

use crate::event::{self, Event};
use crate::load::{self, Formats, Loaded};
use crate::run::{describe, layouts, now_fold, wait, BATCH, DRAIN, TICK};
use crate::source::{self, Source};
use std::io::Write;
use std::time::Instant;
use whosent_agent::args::Options;
use whosent_agent::error::{AgentError, Result};
use whosent_agent::proc_frames::{read, reads_for, Known};
use whosent_agent::procfs;
use whosent_agent::stop::Stop;
use whosent_proto::record::{EndReason, Lost};
use whosent_stream::encode;
use whosent_stream::frame::{why, Ready};

/// Writes `buf` to stdout and empties it. A reader that went away is
/// `output_closed`, as for the ftrace agent.
fn send(buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    let r = o.write_all(buf).and_then(|()| o.flush());
    buf.clear();
    r
}

/// Header, FORMAT frames, the snapshot (PROC frames with why 0) and
/// READY: everything before the capture's frames.
fn start(o: &Options, formats: &Formats, l: &Loaded, src: &Source, known: &mut Known) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 << 16);
    encode::header(&mut buf);
    for (role, text) in &formats.texts {
        encode::format(&mut buf, *role, text);
    }
    // The task events are on already, so every process is in this
    // snapshot or born in the trace; without lineage, the watched ones.
    let procs: Vec<i32> = if o.lineage {
        procfs::pids("/proc")
    } else {
        let q = &o.query;
        q.pids.iter().chain(&q.sender_pids).copied().collect()
    };
    for p in procs {
        if let Some(mut f) = procfs::facts("/proc", p) {
            known.insert(f.tid);
            f.why = why::SNAPSHOT;
            encode::proc(&mut buf, &f);
        }
    }
    let (kernel, arch) = whosent_agent::run::uname();
    let cpus = match src {
        // One queue in reservation order: what was read is final.
        Source::Ring(_) => Vec::new(),
        // One buffer per CPU, read in this order, as ftrace's are.
        Source::Perf(_) => src.cpus(),
    };
    encode::ready(
        &mut buf,
        &Ready {
            agent: env!("CARGO_PKG_VERSION").into(),
            kernel,
            arch,
            instance: format!("bpf:{}", l.output.name()),
            filter: describe(&o.query),
            cpus,
            pids: o.query.pids.clone(),
            sender_pids: o.query.sender_pids.clone(),
            lineage: o.lineage,
            uid_events: false,
            ebpf: true,
        },
    );
    buf
}

/// Records until told to stop; the host counts the signals (and ends
/// the capture at `--count` or `--until-exit`). Returns 1: the exit
/// status is the host's to tell.
pub fn record(
    o: &Options,
    fold: bool,
    stop: &Stop,
    formats: &Formats,
    mut l: Loaded,
    mut src: Source,
) -> Result<u64> {
    let lay = layouts(formats)?;
    let mut known = Known::default();
    let mut buf = start(o, formats, &l, &src, &mut known);
    let mut folds = fold.then(crate::fold::Folds::default);
    let result = match send(&mut buf) {
        Ok(()) => capture(
            o, stop, formats, &lay, &mut l, &mut src, &mut known, &mut folds, &mut buf,
        ),
        Err(_) => Ok(EndReason::OutputClosed),
    };
    if let Some(f) = &mut folds {
        for c in f.grown(&l.ebpf) {
            encode::repeat(&mut buf, &c);
        }
    }
    // The program's count of events it had no room for, per CPU, and of
    // those the kernel did not run it for (docs/stream-format.md, STATS).
    let lost: Vec<(u32, u64)> = source::lost(&l.ebpf)
        .into_iter()
        .enumerate()
        .filter(|&(_, n)| n > 0)
        .map(|(cpu, n)| (cpu as u32, n))
        .chain(
            source::not_run(&l.ebpf)
                .filter(|&n| n > 0)
                .map(|n| (Lost::NOT_RUN, n)),
        )
        .collect();
    encode::stats(&mut buf, &lost);
    match &result {
        Ok(reason) => encode::end_frame(&mut buf, whosent_agent::record::end_code(*reason)),
        Err(e) => encode::error(&mut buf, e.kind, &e.message, &e.help),
    }
    let written = send(&mut buf);
    teardown(l, src);
    match result {
        Ok(_) => {
            if let Err(e) = written {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(AgentError::output(e));
                }
            }
            Ok(1)
        }
        Err(e) => {
            // The host has the ERROR frame; stdout must stay a stream.
            e.say();
            std::process::exit(2)
        }
    }
}

/// Closing the descriptors detaches and frees everything, but each
/// tracepoint's last perf user waits for RCU grace periods under the
/// kernel's `event_mutex` (`perf_trace_destroy`,
/// kernel/trace/trace_event_perf.c): 1.1 s for the 14 programs on this
/// 2-CPU machine, more than the 3 s whosent-deploy gives an agent to
/// exit after closing its stdin on the emulated armv7 board. The END
/// frame is out, so the agent exits at once and a child of its own,
/// away from the host's stdio, holds the descriptors and releases them
/// (the programs in parallel, [`load::detach_all`]); the kernel frees
/// what is left when the child exits, however it exits.
fn teardown(mut l: Loaded, src: Source) {
    // SAFETY: fork in a process with one thread; the child only closes
    // descriptors and exits.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: closing our own stdio, so the host sees the end.
            unsafe {
                libc::close(0);
                libc::close(1);
                libc::close(2);
                libc::setsid();
            }
            load::detach_all(&mut l.ebpf);
            drop(src);
            drop(l);
            // SAFETY: no cleanup of the parent's state is due here.
            unsafe { libc::_exit(0) }
        }
        -1 => {
            load::detach_all(&mut l.ebpf);
            drop(src);
            drop(l);
        }
        // The child's copies keep everything: ours close cheaply as we
        // exit.
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)] // reason: the capture's parts, borrowed apart
fn capture(
    o: &Options,
    stop: &Stop,
    formats: &Formats,
    lay: &whosent_analysis::pipeline::Layouts,
    l: &mut Loaded,
    src: &mut Source,
    known: &mut Known,
    folds: &mut Option<crate::fold::Folds>,
    buf: &mut Vec<u8>,
) -> Result<EndReason> {
    let deadline = o.duration.map(|d| Instant::now() + d);
    let fds = src.fds();
    let mut tick = Instant::now() + TICK;
    let mut fold_at = Instant::now();
    let mut rec = Vec::with_capacity(event::REC_EXEC);
    let mut reads = Vec::new();
    // The last round read something (or the host's heartbeat came): an
    // empty ROUND must follow, so the host releases what it holds back.
    let mut busy = false;
    loop {
        let namespaces = &l.namespaces;
        let n = src.drain(BATCH, &mut |bytes| {
            let Some(e) = Event::parse(bytes) else {
                return;
            };
            if !formats.kinds.record(&e, &mut rec) {
                return;
            }
            let facts = e.signal.as_ref().map(|s| event::facts(&e, s, namespaces));
            let id = u16::from_ne_bytes([rec[0], rec[1]]);
            reads_for(
                known,
                &lay.signal,
                &lay.tasks,
                id,
                &rec,
                e.head.ts,
                &mut reads,
            );
            encode::event(buf, e.head.cpu, e.head.ts, facts.as_ref(), &rec);
        });
        for r in reads.drain(..) {
            read(known, o.lineage, buf, r);
        }
        if n > 0 || busy {
            encode::round(buf, &[]);
        }
        busy = n > 0;
        if now_fold(&mut fold_at) {
            if let Some(f) = folds {
                for c in f.grown(&l.ebpf) {
                    encode::repeat(buf, &c);
                }
            }
        }
        if send(buf).is_err() {
            // stdout's reader is gone: nobody to report to.
            return Ok(EndReason::OutputClosed);
        }
        if let Some(r) = stop.signalled() {
            return Ok(r);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(EndReason::Duration);
        }
        if o.alive_timeout.is_some_and(|t| stop.silent(t)) {
            // The host's heartbeat stopped: the link is dead.
            return Ok(EndReason::Hangup);
        }
        if now >= tick {
            tick = now + TICK;
            if l.namespaces.len() < crate::pidns::MAX {
                let ns = crate::pidns::scan("/proc", &l.namespaces);
                if ns.len() > l.namespaces.len() {
                    load::set_namespaces(&mut l.ebpf, &ns)?;
                    l.namespaces = ns;
                }
            }
        }
        let mut timeout = std::time::Duration::ZERO;
        if n == 0 {
            timeout = tick.saturating_duration_since(now).min(DRAIN);
            if let Some(d) = deadline {
                timeout = timeout.min(d.saturating_duration_since(now));
            }
        }
        if wait(&fds, stop, timeout) {
            if stop.stdin_closed() {
                return Ok(EndReason::StdinClosed);
            }
            // The host's heartbeat: answered with the next ROUND.
            busy = true;
        }
    }
}
