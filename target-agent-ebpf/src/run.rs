//! The capture: load, then read events until told to stop, writing the
//! same JSON Lines records as the ftrace agent (docs/json-schema.md),
//! or human lines.

use crate::facts::Facts;
use crate::load::{self, Loaded, Setup};
use crate::source::{self, Source};
use std::io::Write;
use std::time::{Duration, Instant};
use whosent_agent::args::Options;
use whosent_agent::error::{AgentError, Result};
use whosent_agent::stop::Stop;
use whosent_proto::query::Query;
use whosent_proto::record::{End, EndReason, Lost, Ready};
use whosent_proto::render;

/// Events handled between checks of the stop conditions and output.
const BATCH: usize = 4096;
/// How often the namespaces are looked for again, lost counts reported
/// and the /proc cache dropped.
const TICK: Duration = Duration::from_millis(500);
/// How long events may wait when the program did not wake the agent: it
/// wakes it only once `WAKE_BYTES` are waiting (src/load.rs), so a lone
/// kill is read by this timer.
pub const DRAIN: Duration = Duration::from_millis(20);

/// The in-kernel filter in the words of the ftrace one (`ready.filter`).
pub fn describe(q: &Query) -> String {
    let mut terms = Vec::new();
    let any = |name: &str, v: &[i32]| {
        let t: Vec<String> = v.iter().map(|x| format!("{name} == {x}")).collect();
        if t.len() > 1 {
            format!("({})", t.join(" || "))
        } else {
            t.join("")
        }
    };
    if !q.sigs.is_empty() {
        terms.push(any("sig", &q.sigs));
    }
    if !q.pids.is_empty() {
        terms.push(any("pid", &q.pids));
    }
    if let Some(c) = &q.comm {
        terms.push(format!("comm == \"{c}\""));
    }
    if !q.sender_pids.is_empty() {
        terms.push(any("sender_pid", &q.sender_pids));
    }
    if let Some(c) = &q.sender_comm {
        terms.push(format!("sender_comm == \"{c}\""));
    }
    terms.join(" && ")
}

/// Each thread of each `--pid` process, with its process.
fn targets(pids: &[i32]) -> Result<Vec<(i32, i32)>> {
    let mut out = Vec::new();
    for &p in pids {
        let tids = whosent_agent::procfs::threads("/proc", p).ok_or_else(|| {
            AgentError::new(
                "no_such_process",
                format!("--pid {p}: no such process"),
                "check the pid with `ps` or `pidof NAME`; to wait for a program that has not started yet, use --comm",
            )
        })?;
        out.extend(tids.into_iter().map(|t| (t, p)));
    }
    Ok(out)
}

struct Out {
    human: bool,
    buf: String,
}

impl Out {
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let mut o = std::io::stdout().lock();
            o.write_all(self.buf.as_bytes())?;
            o.flush()?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Per-CPU lost counts already reported.
fn report_lost(l: &Loaded, seen: &mut Vec<u64>, out: &mut Out) {
    let now = source::lost(&l.ebpf);
    seen.resize(now.len(), 0);
    for (cpu, (&n, s)) in now.iter().zip(seen.iter_mut()).enumerate() {
        if n > *s {
            if !out.human {
                Lost {
                    cpu: cpu as u32,
                    count: Some(n - *s),
                }
                .encode(&mut out.buf);
            }
            *s = n;
        }
    }
}

fn wait(fds: &[i32], stop: &Stop, timeout: Duration) -> bool {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .chain(std::iter::once(&stop.wake_fd))
        .chain(stop.stdin_fd.iter())
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: p is a valid array of pollfd for its length.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    // stdin, when watched, is last.
    stop.stdin_fd.is_some() && p.last().is_some_and(|s| s.revents != 0)
}

/// Runs a capture to its end; returns how many signals were reported.
/// `human`: one line per signal instead of JSON.
pub fn run(mut o: Options, human: bool) -> Result<u64> {
    if o.stream {
        return Err(AgentError::usage(
            "--stream is the ftrace agent's; the eBPF agent writes records",
        ));
    }
    if o.clean {
        // It leaves no instance or probe: its programs go with it.
        return Err(AgentError::usage(
            "--clean is the ftrace agent's: it removes stale ftrace instances and uprobes",
        ));
    }
    let stop = Stop::install().map_err(|e| {
        AgentError::new(
            "io",
            format!("cannot set up signal handling: {e}"),
            "check the board's resource limits",
        )
    })?;
    o.query = whosent_agent::pidns::resolve(std::mem::take(&mut o.query), "/proc")?;
    let root = whosent_agent::tracefs::locate(o.tracefs.as_deref())?;
    let (signal, tasks) = load::offsets(&root)?;
    let setup = Setup {
        signal,
        tasks,
        targets: targets(&o.query.pids)?,
        query: o.query.clone(),
    };
    let mut l = load::load(&setup, o.buffer_kb)?;
    let mut src = Source::open(&mut l, o.buffer_kb)?;
    let (release, arch) = whosent_agent::run::uname();
    let mut out = Out {
        human,
        buf: String::with_capacity(1 << 16),
    };
    let filter = describe(&o.query);
    let instance = format!("bpf:{}", l.output.name());
    if human {
        eprintln!(
            "whosent-ebpf-agent: tracing signals on {release} (eBPF, {}), filter: {}",
            l.output.name(),
            if filter.is_empty() { "none" } else { &filter }
        );
    } else {
        Ready::new("ebpf", &release, &arch, &instance, &filter).encode(&mut out.buf);
    }
    let _ = out.flush();

    let deadline = o.duration.map(|d| Instant::now() + d);
    let fds = src.fds();
    let mut facts = Facts::default();
    let mut signals = 0u64;
    let mut lost_seen = Vec::new();
    let mut tick = Instant::now() + TICK;
    let query = &o.query;
    let reason = 'run: loop {
        let mut n = 0;
        // Up to BATCH events, then the checks below, then on.
        let mut done = false;
        n += src.drain(BATCH, &mut |bytes| {
            if done {
                return;
            }
            let Some(raw) = crate::event::RawEvent::parse(bytes) else {
                return;
            };
            let extra = facts.extra(&raw, &l.namespaces);
            let e = crate::event::to_signal(&raw, extra);
            // The kernel filtered already; this is the one definition
            // of a match (names longer than the kernel's, irq context).
            if !query.matches(&e) {
                return;
            }
            if out.human {
                out.buf.push_str(&render::signal_line(&e));
                out.buf.push('\n');
            } else {
                e.encode(&mut out.buf);
            }
            signals += 1;
            done = o.count.is_some_and(|c| signals >= c);
        });
        if out.flush().is_err() {
            // stdout is gone: nobody to report to.
            break 'run EndReason::Hangup;
        }
        if done {
            break 'run EndReason::Count;
        }
        if let Some(r) = stop.signalled() {
            break 'run r;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break 'run EndReason::Duration;
        }
        if now >= tick {
            tick = now + TICK;
            facts.clear();
            report_lost(&l, &mut lost_seen, &mut out);
            if l.namespaces.len() < crate::pidns::MAX {
                let ns = crate::pidns::scan("/proc", &l.namespaces);
                if ns.len() > l.namespaces.len() {
                    load::set_namespaces(&mut l.ebpf, &ns)?;
                    l.namespaces = ns;
                }
            }
        }
        // Idle: wait for events, a stop or the next tick. Busy: only
        // look, so that stdin's EOF is seen during a storm too.
        let mut timeout = Duration::ZERO;
        if n == 0 {
            timeout = tick.saturating_duration_since(now).min(DRAIN);
            if let Some(d) = deadline {
                timeout = timeout.min(d.saturating_duration_since(now));
            }
        }
        let stdin_stirred = wait(&fds, &stop, timeout);
        if stdin_stirred && stop.stdin_closed() {
            break 'run EndReason::StdinClosed;
        }
    };
    report_lost(&l, &mut lost_seen, &mut out);
    let lost: u64 = lost_seen.iter().sum();
    if human {
        if lost > 0 {
            out.buf
                .push_str(&format!("whosent-ebpf-agent: {lost} events lost\n"));
        }
    } else {
        End {
            reason,
            signals,
            lost,
        }
        .encode(&mut out.buf);
    }
    let _ = out.flush();
    // Closing the descriptors detaches and frees everything.
    drop(src);
    drop(l);
    Ok(signals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_reads_like_the_ftrace_one() {
        let q = Query {
            sigs: vec![9, 15],
            pids: vec![650],
            sender_comm: Some("kill".into()),
            ..Default::default()
        };
        assert_eq!(
            describe(&q),
            r#"(sig == 9 || sig == 15) && pid == 650 && sender_comm == "kill""#
        );
        assert_eq!(describe(&Query::default()), "");
    }
}
