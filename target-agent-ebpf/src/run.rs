//! The capture: load, then read events until told to stop. Each event
//! becomes the record the ftrace backend reads ([`crate::event`]) and
//! goes through the same pipeline (whosent-analysis: process table and
//! lineage, OOM kills, `cause`, exit records, the query), which writes
//! the same JSON Lines records (docs/json-schema.md), or human lines.

use crate::event::{self, Event, Kinds};
use crate::load::{self, Loaded, Setup};
use crate::object::Output;
use crate::source::{self, Source};
use std::io::Write;
use std::time::{Duration, Instant};
use whosent_agent::args::Options;
use whosent_agent::error::{AgentError, Result};
use whosent_agent::procfs::{self, Live};
use whosent_agent::stop::Stop;
use whosent_analysis::pipeline::{Layouts, Lineage, Pipeline, Sink};
use whosent_ftrace::fate_events::FateLayouts;
use whosent_ftrace::signal_generate::SignalLayout;
use whosent_ftrace::task_events::TaskLayouts;
use whosent_ftrace::uid_events::UidLayouts;
use whosent_proto::query::Query;
use whosent_proto::record::{End, EndReason, ExitRec, Lost, Ready, SignalEvent};
use whosent_proto::render;

/// Events handled between checks of the stop conditions and output.
pub(crate) const BATCH: usize = 4096;
/// How often the namespaces are looked for again, lost counts reported
/// and the /proc cache dropped.
pub(crate) const TICK: Duration = Duration::from_millis(500);
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
    /// Storms folded in the kernel, when asked for.
    folds: Option<crate::fold::Folds>,
}

impl Sink for Out {
    fn signal(&mut self, e: &SignalEvent, lineage: Option<&Lineage>) {
        if let Some(f) = &mut self.folds {
            f.signal(e);
        }
        if self.human {
            let list = lineage.map(|l| l.list.as_slice());
            self.buf.push_str(&render::signal_line_with(e, list));
            self.buf.push('\n');
        } else {
            e.encode_with(&mut self.buf, lineage.map(|l| l.json.as_str()));
        }
        if self.buf.len() >= 1 << 16 {
            // A failed write is seen by the loop's own flush.
            let _ = self.flush();
        }
    }

    /// The pipeline's own losses are a ring-buffer page's; the program
    /// counts its own ([`report_lost`]).
    fn lost(&mut self, l: &Lost) {
        if !self.human {
            l.encode(&mut self.buf);
        }
    }

    fn exit(&mut self, x: &ExitRec) {
        if self.human {
            self.buf.push_str(&render::exit_line(x));
            self.buf.push('\n');
        } else {
            x.encode(&mut self.buf);
        }
    }
}

/// The layouts the pipeline decodes the program's records with: the
/// same as the ftrace backend's, from the same format files.
pub(crate) fn layouts(f: &load::Formats) -> Result<Layouts> {
    let k = &f.kinds;
    let bad = |e: whosent_ftrace::format::FormatError| {
        AgentError::new(
            "bad_format",
            e.0,
            "report this with the kernel release; `--backend ftrace` reads the same events without eBPF",
        )
    };
    let signal = SignalLayout::new(k.get(event::KIND_SIGNAL).expect("required")).map_err(bad)?;
    let mut tasks = TaskLayouts::default();
    let mut fate = FateLayouts::default();
    for kind in event::KIND_NEWTASK..=event::KIND_EXIT_GROUP {
        let Some(fm) = k.get(kind) else { continue };
        // A layout this reader cannot use tells less; it stops nothing.
        let _ = if kind >= event::KIND_VICTIM {
            fate.add(fm)
        } else {
            tasks.add(fm)
        };
    }
    Ok(Layouts {
        page: f.page,
        signal,
        tasks,
        uid: UidLayouts::default(),
        fate,
    })
}

/// `WHOSENT_EBPF_OUTPUT=perf_event_array` (or `ringbuf`): that output
/// and no other, for tests of the perf path on kernels that have a ring
/// buffer.
pub fn forced_output() -> Result<Option<Output>> {
    match std::env::var("WHOSENT_EBPF_OUTPUT").ok().as_deref() {
        None | Some("") => Ok(None),
        Some("ringbuf") => Ok(Some(Output::RingBuf)),
        Some("perf_event_array") => Ok(Some(Output::PerfArray)),
        Some(other) => Err(AgentError::usage(format!(
            "WHOSENT_EBPF_OUTPUT={other}: give ringbuf or perf_event_array"
        ))),
    }
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

/// How often folded counts are read ([`crate::fold`]).
pub(crate) const FOLD_EVERY: Duration = Duration::from_millis(200);

/// Whether the folded counts are due, and if so from when the next are.
pub(crate) fn now_fold(at: &mut Instant) -> bool {
    let now = Instant::now();
    if now < *at {
        return false;
    }
    *at = now + FOLD_EVERY;
    true
}

/// The lost counts already reported: per CPU, and the events the kernel
/// did not run the program for ([`source::not_run`]) as the last.
fn report_lost(l: &Loaded, seen: &mut Vec<u64>, out: &mut Out) {
    let mut now = source::lost(&l.ebpf);
    let cpus = now.len();
    now.push(source::not_run(&l.ebpf).unwrap_or(0));
    seen.resize(now.len(), 0);
    for (cpu, (&n, s)) in now.iter().zip(seen.iter_mut()).enumerate() {
        let cpu = if cpu == cpus {
            Lost::NOT_RUN
        } else {
            cpu as u32
        };
        if n > *s {
            if !out.human {
                Lost {
                    cpu,
                    count: Some(n - *s),
                }
                .encode(&mut out.buf);
            }
            *s = n;
        }
    }
}

pub(crate) fn wait(fds: &[i32], stop: &Stop, timeout: Duration) -> bool {
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
/// `human`: one line per signal instead of JSON; `until_exit`: end
/// once every `--pid` target has ended; `fold`: fold storms in the
/// kernel ([`crate::fold`]).
pub fn run(mut o: Options, human: bool, until_exit: bool, fold: bool) -> Result<u64> {
    if o.stream && human {
        return Err(AgentError::usage(
            "--stream writes the capture stream, --human lines: give one",
        ));
    }
    if o.clean {
        // It leaves no instance or probe: its programs go with it.
        return Err(AgentError::usage(
            "--clean is the ftrace agent's: it removes stale ftrace instances and uprobes",
        ));
    }
    let forced = forced_output()?;
    let stop = Stop::install().map_err(|e| {
        AgentError::new(
            "io",
            format!("cannot set up signal handling: {e}"),
            "check the board's resource limits",
        )
    })?;
    o.query = whosent_agent::pidns::resolve(std::mem::take(&mut o.query), "/proc")?;
    let root = whosent_agent::tracefs::locate(o.tracefs.as_deref())?;
    // Exit records are for the watched processes (whosent-analysis's
    // fate.rs): their events only then.
    let fates = !o.query.pids.is_empty() || o.query.comm.is_some();
    let formats = load::formats(&root, fates)?;
    // Checked before anything is loaded, and read again once the
    // programs are attached.
    targets(&o.query.pids)?;
    let pids = o.query.pids.clone();
    // With --stream the host counts, and asks for --fold only without
    // --count.
    let fold_wanted = fold && !human && (o.stream || o.count.is_none());
    let setup = Setup {
        formats: &formats,
        targets: &move || targets(&pids),
        query: o.query.clone(),
        // JSON only (the host renders the folded lines), and not with
        // --count, which counts the records the pipeline reports.
        fold: fold_wanted,
    };
    let mut l = load::load(&setup, o.buffer_kb, forced)?;
    let mut src = Source::open(&mut l, o.buffer_kb)?;
    if o.stream {
        return crate::stream::record(&o, fold_wanted, &stop, &formats, l, src);
    }
    let (release, arch) = whosent_agent::run::uname();
    let mut out = Out {
        human,
        buf: String::with_capacity(1 << 16),
        folds: fold_wanted.then(crate::fold::Folds::default),
    };
    let mut pipeline = Pipeline::new(layouts(&formats)?, o.query.clone(), o.lineage, o.count);
    pipeline.until_exit = until_exit;
    // The task events are on already, so every process is in this
    // snapshot or born in the trace (as the ftrace agent's add_lineage);
    // without lineage, the watched ones, which a SIGKILL makes go fast.
    let known: Vec<i32> = if o.lineage {
        procfs::pids("/proc")
    } else {
        o.query
            .pids
            .iter()
            .chain(&o.query.sender_pids)
            .copied()
            .collect()
    };
    for f in known.into_iter().filter_map(|p| procfs::facts("/proc", p)) {
        pipeline.table.learn(f);
    }
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
    // The ring buffer is one queue in the order events were reserved:
    // what was read is final. The perf array is one per CPU, read in
    // this order, as ftrace's are (whosent_analysis::merge::Horizon).
    let cpus: Vec<u32> = match &src {
        Source::Ring(_) => Vec::new(),
        Source::Perf(_) => src.cpus(),
    };
    let mut lost_seen = Vec::new();
    let mut tick = Instant::now() + TICK;
    let mut rec = Vec::with_capacity(event::REC_EXEC);
    let kinds: &Kinds = &formats.kinds;
    let mut fold_at = Instant::now();
    let reason = 'run: loop {
        let namespaces = &l.namespaces;
        let n = src.drain(BATCH, &mut |bytes| {
            let Some(e) = Event::parse(bytes) else {
                return;
            };
            if !kinds.record(&e, &mut rec) {
                return;
            }
            let running = e
                .signal
                .as_ref()
                .map(|s| Box::new(event::running(&e, s, namespaces)));
            pipeline.record(e.head.cpu, e.head.ts, &rec, running);
        });
        pipeline.end_round(&cpus, &[], &mut Live, &mut out);
        if now_fold(&mut fold_at) {
            if let Some(f) = &mut out.folds {
                f.drain(&l.ebpf, &mut out.buf);
            }
        }
        if out.flush().is_err() {
            // stdout is gone: nobody to report to.
            break 'run EndReason::Hangup;
        }
        if pipeline.targets_exited {
            break 'run EndReason::TargetsExited;
        }
        if pipeline.done {
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
    if !pipeline.done {
        pipeline.finish(&mut Live, &mut out);
    }
    if let Some(f) = &mut out.folds {
        f.drain(&l.ebpf, &mut out.buf);
    }
    report_lost(&l, &mut lost_seen, &mut out);
    let lost: u64 = lost_seen.iter().sum();
    // Folded repeats are signals reported, in their `repeat` records.
    let signals = pipeline.signals + out.folds.as_ref().map_or(0, |f| f.repeats.repeats);
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
