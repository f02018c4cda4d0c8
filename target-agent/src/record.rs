//! `--stream`: the agent records, the host explains. Each CPU's pages
//! are read as they fill and sent raw in the capture stream
//! (docs/stream-format.md) through a bounded [`Spool`]; the only
//! decoding here is what must happen on the board and at once: the /proc
//! facts of a process that is born, execs, or shows up unknown in a
//! signal, read before it can exit.

use crate::args::Options;
use crate::capture::Capture;
use crate::error::{AgentError, Result};
use crate::procfs;
use crate::reader::lost_by_stats;
use crate::run::{bad_page, should_stop, teardown, uname, wait, PAGES_PER_ROUND};
use crate::spool::Spool;
use crate::stop::Stop;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use whosent_ftrace::page::Page;
use whosent_ftrace::task_events::TaskEvent;
use whosent_proto::record::EndReason;
use whosent_stream::encode;
use whosent_stream::frame::{reason, why, Ready};

const STDOUT: i32 = 1;

/// Tasks whose facts were sent (or could not be read): bounded, since a
/// task forgotten here is only read again.
const MAX_KNOWN: usize = 1 << 16;

struct Recorder {
    cap: Capture,
    spool: Spool,
    page: Vec<u8>,
    known: HashSet<i32>,
    lineage: bool,
    /// The last round sent read something: an empty one must follow, so
    /// the host releases what it holds back.
    busy: bool,
}

fn end_code(r: EndReason) -> u8 {
    match r {
        EndReason::Count => reason::COUNT,
        EndReason::Duration => reason::DURATION,
        EndReason::Interrupted => reason::INTERRUPTED,
        EndReason::Terminated => reason::TERMINATED,
        EndReason::StdinClosed => reason::STDIN_CLOSED,
        _ => reason::HANGUP,
    }
}

impl Recorder {
    /// Sends /proc facts about `tid` (and, for lineage, its unknown
    /// parents), once.
    fn read(&mut self, tid: i32, why: u8, ts: u64) {
        let mut next = Some(tid);
        while let Some(t) = next.take() {
            if self.known.len() >= MAX_KNOWN {
                self.known.clear();
            }
            // Exec and fork are news even about a known task.
            if t <= 0 || (!self.known.insert(t) && (t != tid || why == why::MISS)) {
                break;
            }
            let Some(mut f) = procfs::facts("/proc", t) else {
                break;
            };
            (f.why, f.ts) = (why, ts);
            next = Some(f.ppid).filter(|_| self.lineage && why == why::MISS);
            encode::proc(&mut self.spool.buf, &f);
        }
    }

    /// The /proc reads this page's events call for.
    fn scan(&mut self, page: &Page<'_>) -> Result<usize> {
        let mut n = 0;
        let mut reads: Vec<(i32, u8, u64)> = Vec::new();
        for ev in page.events() {
            let ev = ev.map_err(bad_page)?;
            let Some(id) = ev.id() else { continue };
            n += 1;
            if id == self.cap.signal.id {
                if let Some((running, target)) = self.cap.signal.tids(ev.data) {
                    for t in [running, target] {
                        if !self.known.contains(&t) {
                            reads.push((t, why::MISS, ev.ts));
                        }
                    }
                }
                continue;
            }
            let ev_ts = ev.ts;
            match self.cap.tasks.decode(id, ev.data) {
                Some(TaskEvent::NewTask {
                    parent_tid,
                    tid,
                    thread,
                    ..
                }) => {
                    // The table takes the child's process and parent from
                    // the parent, e.g. a thread the snapshot (processes
                    // only) did not list.
                    if !self.known.contains(&parent_tid) {
                        reads.push((parent_tid, why::MISS, ev_ts));
                    }
                    if thread {
                        self.known.insert(tid);
                    } else {
                        reads.push((tid, why::NEWTASK, ev_ts));
                    }
                }
                Some(TaskEvent::Exec { tid, .. }) => reads.push((tid, why::EXEC, ev.ts)),
                _ => {}
            }
        }
        for (t, w, ts) in reads {
            self.read(t, w, ts);
        }
        Ok(n)
    }

    /// One drain round: every CPU's pages while the spool has room.
    fn round(&mut self) -> Result<usize> {
        let mut n = 0;
        let mut cut = Vec::new();
        for i in 0..self.cap.readers.cpus.len() {
            let cpu = self.cap.readers.cpus[i].cpu;
            for round in 1.. {
                // Full, or at the page limit: not read to empty.
                if round > PAGES_PER_ROUND || !self.spool.room(2 * self.page.len()) {
                    cut.push(cpu);
                    break;
                }
                let len = self.cap.readers.cpus[i]
                    .read_page(&mut self.page)
                    .map_err(|e| {
                        AgentError::io("cannot read", &format!("cpu{cpu}/trace_pipe_raw"), e)
                    })?;
                if len == 0 {
                    break;
                }
                let page_buf = std::mem::take(&mut self.page);
                let page = Page::parse(&self.cap.page, &page_buf[..len]).map_err(bad_page)?;
                let used = page.used(&self.cap.page).min(len);
                encode::page(&mut self.spool.buf, cpu, &page_buf[..used]);
                let r = self.scan(&page);
                self.page = page_buf;
                n += r?;
            }
        }
        if n > 0 || self.busy {
            encode::round(&mut self.spool.buf, &cut);
        }
        self.busy = n > 0;
        Ok(n)
    }

    fn start(&mut self, o: &Options) {
        let s = &mut self.spool.buf;
        encode::header(s);
        for (role, text) in &self.cap.formats {
            encode::format(s, *role, text);
        }
        for mut f in std::mem::take(&mut self.cap.known) {
            self.known.insert(f.tid);
            f.why = why::SNAPSHOT;
            encode::proc(s, &f);
        }
        let (kernel, arch) = uname();
        let r = Ready {
            agent: env!("CARGO_PKG_VERSION").into(),
            kernel,
            arch,
            instance: self.cap.instance.name.clone(),
            filter: self.cap.filter.clone(),
            cpus: self.cap.readers.cpus.iter().map(|r| r.cpu).collect(),
            pids: o.query.pids.clone(),
            sender_pids: o.query.sender_pids.clone(),
            lineage: o.lineage,
            uid_events: !self.cap.uid.is_empty(),
        };
        encode::ready(s, &r);
    }

    fn capture(&mut self, o: &Options, stop: &Stop) -> Result<EndReason> {
        let deadline = o.duration.and_then(|d| Instant::now().checked_add(d));
        loop {
            if self.spool.write(STDOUT).is_err() {
                return Ok(EndReason::Hangup);
            }
            if let Some(r) = should_stop(stop, deadline) {
                return Ok(r);
            }
            let full = !self.spool.room(2 * self.page.len());
            let n = if full { 0 } else { self.round()? };
            if n == 0 {
                let most = Duration::from_millis(if self.busy { 2 } else { 200 });
                let left = deadline.map_or(most, |d| d.saturating_duration_since(Instant::now()));
                let out = (self.spool.pending() > 0).then_some(STDOUT);
                if wait(&self.cap, stop, left.min(most), out) && stop.stdin_closed() {
                    return Ok(EndReason::StdinClosed);
                }
            }
        }
    }
}

/// Records until told to stop; the signals are counted by the host.
pub fn run(o: &Options, cap: Capture, stop: &Stop) -> Result<u64> {
    // SAFETY: fcntl on stdout. Non-blocking, so a slow reader never
    // stalls the draining; a bigger pipe means fewer wake-ups (the
    // kernel caps it at pipe-max-size; failure is harmless).
    unsafe {
        let fl = libc::fcntl(STDOUT, libc::F_GETFL);
        libc::fcntl(STDOUT, libc::F_SETFL, fl | libc::O_NONBLOCK);
        libc::fcntl(STDOUT, libc::F_SETPIPE_SZ, 1 << 20);
    }
    let mut r = Recorder {
        page: vec![0; cap.readers.page_size],
        spool: Spool::new(o.spool_kb as usize * 1024),
        cap,
        known: HashSet::new(),
        lineage: o.lineage,
        busy: false,
    };
    r.start(o);
    let result = r.capture(o, stop).and_then(|reason| {
        // What is already in the buffer was generated before we stopped:
        // wait for stdout rather than leave it unread (one round, as a
        // storm that goes on must not keep the agent from stopping).
        if r.spool.write_all(STDOUT).is_ok() {
            r.round()?;
        }
        Ok(reason)
    });
    let lost: Vec<(u32, u64)> = r
        .cap
        .readers
        .cpus
        .iter()
        .map(|c| (c.cpu, lost_by_stats(&r.cap.instance.dir, c.cpu)))
        .collect();
    encode::stats(&mut r.spool.buf, &lost);
    match &result {
        Ok(reason) => encode::end_frame(&mut r.spool.buf, end_code(*reason)),
        Err(e) => encode::error(&mut r.spool.buf, e.kind, &e.message, &e.help),
    }
    let _ = r.spool.write_all(STDOUT);
    teardown(r.cap)?;
    match result {
        Ok(_) => Ok(1),
        Err(e) => {
            // The host has the ERROR frame; stdout must stay a stream.
            eprintln!("whosent-agent: error: {} (help: {})", e.message, e.help);
            std::process::exit(2)
        }
    }
}
