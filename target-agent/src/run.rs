//! The capture loop: drain every CPU's pages, order the events, keep
//! the process table, match the query, write records; stop on count,
//! duration, a signal or stdin EOF; then report losses and clean up.

use crate::args::Options;
use crate::capture::Capture;
use crate::error::{AgentError, Result};
use crate::proctable::ProcTable;
use crate::reader::lost_by_stats;
use crate::stop::Stop;
use std::io::Write;
use std::time::{Duration, Instant};
use whosent_ftrace::page::Page;
use whosent_ftrace::signal_generate::RawSignal;
use whosent_ftrace::task_events::TaskEvent;
use whosent_proto::record::{
    lineage_json, End, EndReason, Lost, Outcome, Ready, SignalEvent, Task,
};
use whosent_proto::render;

/// Pages read from one CPU before moving on, so that a storm on one CPU
/// cannot starve the others or delay stop checks.
const PAGES_PER_ROUND: usize = 64;

enum Item {
    Signal(u64, u32, RawSignal),
    Task(u64, TaskEvent),
}

impl Item {
    fn ts(&self) -> u64 {
        match self {
            Item::Signal(ts, ..) | Item::Task(ts, _) => *ts,
        }
    }
}

pub struct Output {
    human: bool,
    buf: String,
}

impl Output {
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let mut out = std::io::stdout().lock();
            out.write_all(self.buf.as_bytes())?;
            out.flush()?;
            self.buf.clear();
        }
        Ok(())
    }
}

fn uname() -> (String, String) {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let s = |f: &[libc::c_char]| {
        let b: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    };
    (s(&u.release), s(&u.machine))
}

/// Fills in a task from the process table; `comm` is what the trace
/// itself knew, used when the table does not know the task.
fn task(table: &mut ProcTable, tid: i32, comm: Option<&str>, full: bool) -> Task {
    let Some(p) = table.lookup(tid) else {
        return Task {
            tid,
            comm: comm.unwrap_or("<...>").to_string(),
            ..Default::default()
        };
    };
    Task {
        pid: p.tgid,
        tid,
        comm: if p.comm.is_empty() {
            comm.unwrap_or("<...>").to_string()
        } else {
            p.comm.clone()
        },
        uid: if full { p.uid } else { None },
        cmdline: if full { p.cmdline.clone() } else { None },
        nspid: (!p.nstgid.is_empty()).then(|| p.nstgid.clone()),
        lineage: None,
    }
}

/// Sorts `items` by `key`, stably, by merging its ascending runs: each
/// CPU's events arrive in time order, so there are about as many runs as
/// CPUs. Equal keys keep their order (one CPU can stamp two events with
/// the same time), as `sort_by_key` would, without the ~5 KB that the
/// std stable sort adds to the agent (docs/agent-size.md).
fn merge_runs<T>(items: &mut Vec<T>, key: impl Fn(&T) -> u64 + Copy) {
    let mut runs: Vec<Vec<T>> = Vec::new();
    for item in items.drain(..) {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|l| key(l) <= key(&item)) => run.push(item),
            _ => runs.push(vec![item]),
        }
    }
    while runs.len() > 1 {
        let mut pairs = runs.into_iter();
        runs = Vec::new();
        while let Some(a) = pairs.next() {
            runs.push(match pairs.next() {
                Some(b) => merge(a, b, key),
                None => a,
            });
        }
    }
    *items = runs.pop().unwrap_or_default();
}

/// Merges two sorted runs; on a tie the item from `a` (the earlier run) comes first.
fn merge<T>(a: Vec<T>, b: Vec<T>, key: impl Fn(&T) -> u64) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let from_b = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => key(y) < key(x),
            (x, _) => x.is_none(),
        };
        match if from_b { b.next() } else { a.next() } {
            Some(item) => out.push(item),
            None => return out,
        }
    }
}

/// The sender's lineage as JSON, walked and encoded once per sender and
/// table generation: in a storm from one sender, once.
fn cached_lineage<'c>(
    cache: &'c mut (i32, u64, String),
    table: &mut ProcTable,
    pid: i32,
) -> &'c str {
    if cache.0 != pid || cache.1 != table.generation {
        let l = table.lineage(pid);
        *cache = (pid, table.generation, lineage_json(&l));
    }
    &cache.2
}

struct Loop<'a> {
    o: &'a Options,
    cap: Capture,
    out: Output,
    signals: u64,
    lost_reported: Vec<u64>,
    page: Vec<u8>,
    /// Read but not yet applied: those after `horizon` wait for the
    /// next round.
    items: Vec<Item>,
    /// Every CPU's events up to this time have been read.
    horizon: u64,
    /// The latest event time read so far.
    seen: u64,
    /// (pid, table generation, lineage JSON) of the last sender.
    lineage: (i32, u64, String),
}

impl Loop<'_> {
    /// Reads what the kernel has now; returns how many events were read.
    ///
    /// The CPUs are read one after another, so a CPU read early may
    /// still get events older than ones already read from a later CPU
    /// (a fork on CPU 0 after it was read, its child's kill on CPU 1
    /// before that was read; the agent may even be stopped between the
    /// two). Applying those out of order would name the child before its
    /// fork is known, so `horizon` says how far the merged order is
    /// final: a CPU read to empty has given every event older than any
    /// event read before it, one cut at PAGES_PER_ROUND every event up
    /// to its last. A round that reads nothing releases what is left.
    fn drain(&mut self) -> Result<usize> {
        let mut n = 0;
        let mut horizon = u64::MAX;
        for i in 0..self.cap.readers.cpus.len() {
            let (mut last, mut cut) = (0, false);
            for round in 1.. {
                if round > PAGES_PER_ROUND {
                    cut = true;
                    break;
                }
                let r = &mut self.cap.readers.cpus[i];
                let cpu = r.cpu;
                let len = r.read_page(&mut self.page).map_err(|e| {
                    AgentError::io("cannot read", &format!("cpu{cpu}/trace_pipe_raw"), e)
                })?;
                if len == 0 {
                    break;
                }
                let page = Page::parse(&self.cap.page, &self.page[..len]).map_err(|e| {
                    AgentError::new(
                        "bad_page",
                        e.to_string(),
                        "report this with the kernel release",
                    )
                })?;
                if let Some(count) = page.missed {
                    Lost { cpu, count }.encode(&mut self.out.buf);
                    self.lost_reported[i] += count.unwrap_or(0);
                }
                for ev in page.events() {
                    let ev = ev.map_err(|e| {
                        AgentError::new(
                            "bad_page",
                            e.to_string(),
                            "report this with the kernel release",
                        )
                    })?;
                    last = ev.ts;
                    let Some(id) = ev.id() else { continue };
                    n += 1;
                    if id == self.cap.signal.id {
                        if let Some(s) = self.cap.signal.decode(ev.data) {
                            self.items.push(Item::Signal(ev.ts, cpu, s));
                        }
                    } else if let Some(t) = self.cap.tasks.decode(id, ev.data) {
                        self.items.push(Item::Task(ev.ts, t));
                    }
                }
            }
            self.seen = self.seen.max(last);
            horizon = horizon.min(if cut { last } else { self.seen });
        }
        self.horizon = if n == 0 { u64::MAX } else { horizon };
        Ok(n)
    }

    /// Applies the drained items up to the horizon (all of them when
    /// `last`) in time order; true when --count is reached.
    fn process(&mut self, last: bool) -> bool {
        merge_runs(&mut self.items, Item::ts);
        let horizon = if last { u64::MAX } else { self.horizon };
        let ready = self.items.partition_point(|i| i.ts() <= horizon);
        let later = self.items.split_off(ready);
        let mut done = false;
        for item in std::mem::replace(&mut self.items, later) {
            match item {
                Item::Task(_, t) => self.cap.table.apply(&t),
                Item::Signal(_, _, _) if done => {}
                Item::Signal(ts, cpu, s) => {
                    let mut running = task(&mut self.cap.table, s.running_tid, None, true);
                    if s.running_tid == 0 {
                        // The idle task: pid 0 has no /proc entry.
                        running.pid = Some(0);
                        running.comm = format!("swapper/{cpu}");
                    }
                    let target = task(
                        &mut self.cap.table,
                        s.target_tid,
                        Some(&s.target_comm),
                        false,
                    );
                    let e = SignalEvent {
                        ts_ns: ts,
                        cpu,
                        sig: s.sig,
                        code: s.code,
                        errno: s.errno,
                        group: s.group,
                        result: s.result.map(Outcome::from_raw),
                        context: s.context,
                        running,
                        target: Task {
                            comm: s.target_comm,
                            ..target
                        },
                    };
                    if !self.o.query.matches(&e) {
                        continue;
                    }
                    // Only for matches: the walk costs a lookup per parent.
                    let mut e = e;
                    let lineage = e
                        .running
                        .pid
                        .filter(|_| self.o.lineage && e.sender().is_some());
                    if self.out.human {
                        if let Some(pid) = lineage {
                            e.running.lineage = Some(self.cap.table.lineage(pid));
                        }
                        self.out.buf.push_str(&render::signal_line(&e));
                        self.out.buf.push('\n');
                    } else {
                        let json = lineage
                            .map(|pid| cached_lineage(&mut self.lineage, &mut self.cap.table, pid));
                        e.encode_with(&mut self.out.buf, json);
                    }
                    self.signals += 1;
                    done = self.o.count.is_some_and(|c| self.signals >= c);
                    // A round can hold thousands of records: write them
                    // as they come rather than grow the buffer (a failed
                    // write is seen by the loop's own flush).
                    if self.out.buf.len() >= 1 << 20 {
                        let _ = self.out.flush();
                    }
                }
            }
        }
        done
    }

    fn wait(&self, stop: &Stop, timeout: Duration) -> bool {
        let mut fds: Vec<libc::pollfd> = self
            .cap
            .readers
            .fds()
            .into_iter()
            .chain([stop.wake_fd])
            .chain(stop.stdin_fd)
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: fds is a valid array of pollfd for its length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        stop.stdin_fd.is_some() && fds.last().is_some_and(|p| p.revents != 0)
    }
}

/// Runs a capture to its end; returns how many signals were reported.
pub fn run(o: &Options) -> Result<u64> {
    let stop = Stop::install().map_err(|e| {
        AgentError::new(
            "io",
            format!("cannot set up signal handling: {e}"),
            "check the board's resource limits",
        )
    })?;
    // From here on, every pid in the query is a host pid.
    let o = &Options {
        query: crate::pidns::resolve(&o.query, "/proc")?,
        ..o.clone()
    };
    let mut cap = crate::capture::start(o)?;
    if o.lineage {
        cap.add_lineage();
    }
    let (release, arch) = uname();
    let mut out = Output {
        human: o.human,
        buf: String::with_capacity(1 << 16),
    };
    let ready = Ready::new("ftrace", &release, &arch, &cap.instance.name, &cap.filter);
    if o.human {
        eprintln!(
            "whosent-agent: tracing signals on {release} ({}), filter: {}",
            cap.instance.name,
            if cap.filter.is_empty() {
                "none"
            } else {
                &cap.filter
            }
        );
    } else {
        ready.encode(&mut out.buf);
    }

    let mut l = Loop {
        o,
        lost_reported: vec![0; cap.readers.cpus.len()],
        page: vec![0; cap.readers.page_size],
        cap,
        out,
        signals: 0,
        items: Vec::new(),
        horizon: 0,
        seen: 0,
        lineage: (0, u64::MAX, String::new()),
    };
    // A deadline past what Instant can hold is no deadline.
    let deadline = o.duration.and_then(|d| Instant::now().checked_add(d));
    let reason = loop {
        if l.out.flush().is_err() {
            break EndReason::Hangup;
        }
        if let Some(r) = stop.signalled() {
            break r;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break EndReason::Duration;
        }
        let n = l.drain()?;
        if l.process(false) {
            break EndReason::Count;
        }
        if n == 0 {
            // Held-back events are released by the next round.
            let most = Duration::from_millis(if l.items.is_empty() { 200 } else { 2 });
            let left = deadline.map_or(most, |d| d.saturating_duration_since(Instant::now()));
            if l.wait(&stop, left.min(most)) && stop.stdin_closed() {
                break EndReason::StdinClosed;
            }
        }
    };
    // What is already in the buffer was generated before we stopped.
    if reason != EndReason::Count {
        l.drain()?;
        l.process(true);
    }
    let mut lost = 0;
    for (i, r) in l.cap.readers.cpus.iter().enumerate() {
        let by_stats = lost_by_stats(&l.cap.instance.dir, r.cpu);
        if by_stats > l.lost_reported[i] {
            Lost {
                cpu: r.cpu,
                count: Some(by_stats - l.lost_reported[i]),
            }
            .encode(&mut l.out.buf);
        }
        lost += by_stats.max(l.lost_reported[i]);
    }
    let signals = l.signals;
    if l.o.human {
        if lost > 0 {
            l.out
                .buf
                .push_str(&format!("whosent-agent: {lost} events lost\n"));
        }
    } else {
        End {
            reason,
            signals,
            lost,
        }
        .encode(&mut l.out.buf);
    }
    let _ = l.out.flush();
    let Capture {
        readers,
        mut instance,
        argv_probe,
        ..
    } = l.cap;
    drop(readers);
    instance.remove()?;
    drop(argv_probe);
    Ok(signals)
}

#[cfg(test)]
mod tests {
    use super::merge_runs;

    #[test]
    fn merging_runs_is_a_stable_sort() {
        // (time, arrival order): per-CPU runs, ties within and across runs.
        let cases: [&[u64]; 6] = [
            &[],
            &[5],
            &[1, 3, 3, 7, 2, 3, 8, 0, 3, 9],
            &[4, 3, 2, 1, 0],
            &[1, 1, 1, 1],
            &[10, 20, 30, 5, 15, 25, 35, 1, 2, 3, 40, 0],
        ];
        for ts in cases {
            let mut got: Vec<(u64, usize)> = ts.iter().copied().zip(0..).collect();
            let mut want = got.clone();
            want.sort_by_key(|i| i.0);
            merge_runs(&mut got, |i| i.0);
            assert_eq!(got, want, "{ts:?}");
        }
    }
}
