//! `--stream`: the agent records, the host explains. Each CPU's pages
//! are read as they fill and sent raw in the capture stream
//! (docs/stream-format.md) through a bounded [`Spool`]; the only
//! decoding here is what must happen on the board and at once: the /proc
//! facts of a process that is born, execs, or shows up unknown in a
//! signal, read before it can exit.

use crate::args::Options;
use crate::capture::Capture;
use crate::drain::{self, Pages};
use crate::error::{AgentError, Result};
use crate::proc_frames::{read, reads_for, Known, Read, SIGNAL, TASK};
use crate::procfs;
use crate::reader::lost_by_stats;
use crate::run::{bad_page, teardown, uname};
use crate::segments::Segments;
use crate::spool::Spool;
use crate::stop::Stop;
use whosent_ftrace::page::Page;
use whosent_proto::record::EndReason;
use whosent_stream::encode;
use whosent_stream::frame::{reason, why, ProcFacts, Ready};

const STDOUT: i32 = 1;

struct Recorder {
    spool: Spool,
    known: Known,
    lineage: bool,
    /// `--out`: the segment files instead of stdout.
    seg: Option<Segments>,
    /// Signal events in the spool, not yet in a segment.
    signals: u64,
    /// What every segment starts with: the header and FORMAT frames,
    /// and the READY frame.
    head: Vec<u8>,
    ready: Vec<u8>,
    /// The last round sent read something: an empty one must follow, so
    /// the host releases what it holds back.
    busy: bool,
    /// This round read task events: a new process may exec and exit at
    /// once, so the next round must not wait (see `batch`).
    tasks: bool,
    tasks_last: bool,
    /// The most pages read from one CPU in this round, and in the last.
    pages: usize,
    pages_last: usize,
    /// Pages read in a row from `cpu`.
    cpu: Option<u32>,
    cpu_pages: usize,
    /// Pages in each CPU's kernel buffer (`--buffer-kb`).
    buffer_pages: usize,
    page_size: usize,
}

/// The END frame's reason byte (shared with the eBPF agent's `--stream`).
pub fn end_code(r: EndReason) -> u8 {
    match r {
        EndReason::Count => reason::COUNT,
        EndReason::Duration => reason::DURATION,
        EndReason::Interrupted => reason::INTERRUPTED,
        EndReason::Terminated => reason::TERMINATED,
        EndReason::StdinClosed => reason::STDIN_CLOSED,
        EndReason::OutputClosed => reason::OUTPUT_CLOSED,
        _ => reason::HANGUP,
    }
}

impl Recorder {
    /// The /proc reads this page's events call for.
    fn scan(&mut self, cap: &Capture, page: &Page<'_>) -> Result<usize> {
        let mut n = 0;
        let mut reads: Vec<Read> = Vec::new();
        for ev in page.events() {
            let ev = ev.map_err(bad_page)?;
            let Some(id) = ev.id() else { continue };
            n += 1;
            match reads_for(
                &mut self.known,
                &cap.signal,
                &cap.tasks,
                id,
                ev.data,
                ev.ts,
                &mut reads,
            ) {
                SIGNAL => self.signals += 1,
                TASK => self.tasks = true,
                _ => {}
            }
        }
        for r in reads {
            read(&mut self.known, self.lineage, &mut self.spool.buf, r);
        }
        Ok(n)
    }

    fn start(&mut self, o: &Options, cap: &mut Capture) {
        encode::header(&mut self.head);
        for (role, text) in &cap.formats {
            encode::format(&mut self.head, *role, text);
        }
        let (kernel, arch) = uname();
        let r = Ready {
            agent: env!("CARGO_PKG_VERSION").into(),
            kernel,
            arch,
            instance: cap.instance.name.clone(),
            filter: cap.filter.clone(),
            cpus: cap.readers.cpus.iter().map(|r| r.cpu).collect(),
            pids: o.query.pids.clone(),
            sender_pids: o.query.sender_pids.clone(),
            lineage: o.lineage,
            uid_events: !cap.uid.is_empty(),
            ebpf: false,
        };
        encode::ready(&mut self.ready, &r);
        self.begin(std::mem::take(&mut cap.known));
    }

    /// A stream's start: header, FORMATs, the snapshot, READY.
    fn begin(&mut self, snapshot: Vec<ProcFacts>) {
        let s = &mut self.spool.buf;
        s.extend_from_slice(&self.head);
        for mut f in snapshot {
            self.known.insert(f.tid);
            f.why = why::SNAPSHOT;
            encode::proc(s, &f);
        }
        s.extend_from_slice(&self.ready);
    }

    /// Writes the spool: to stdout (what it takes now, or `all`), or
    /// into the segments, starting the next one when this one is full.
    fn send(&mut self, all: bool) -> std::io::Result<()> {
        let Some(seg) = &mut self.seg else {
            return if all {
                self.spool.write_all(STDOUT)
            } else {
                self.spool.write(STDOUT)
            };
        };
        seg.put(&mut self.spool, std::mem::take(&mut self.signals))?;
        // Not at the end (`all`): the last segment ends with END.
        if !all && seg.full() {
            // The host may read the new segment alone: it learns again
            // what the old ones told, from a fresh snapshot and fresh
            // reads. Its start waits in the spool, before any frame
            // that follows.
            self.known = Known::default();
            self.begin(if self.lineage {
                procfs::snapshot()
            } else {
                Vec::new()
            });
            if let Some(seg) = &mut self.seg {
                // Not into the old segment: a start there would cut it.
                seg.rotate(self.spool.pending())
                    .inspect_err(|_| self.spool.buf.clear())?;
                seg.stat("running", true);
            }
        } else {
            seg.stat("running", false);
        }
        Ok(())
    }
}

impl Pages for Recorder {
    fn page(&mut self, cap: &Capture, cpu: u32, buf: &[u8]) -> Result<usize> {
        let page = Page::parse(&cap.page, buf).map_err(bad_page)?;
        let used = page.used(&cap.page).min(buf.len());
        encode::page(&mut self.spool.buf, cpu, &buf[..used]);
        self.cpu_pages = if self.cpu == Some(cpu) {
            self.cpu_pages + 1
        } else {
            1
        };
        self.cpu = Some(cpu);
        self.pages = self.pages.max(self.cpu_pages);
        let n = self.scan(cap, &page)?;
        if self.seg.is_some() {
            // A page at a time, so that a segment ends near its size.
            self.send(false).map_err(AgentError::output)?;
        }
        Ok(n)
    }
    fn end_round(&mut self, _: &[u32], cut: &[u32], events: usize) {
        self.tasks_last = std::mem::take(&mut self.tasks);
        self.pages_last = std::mem::take(&mut self.pages);
        self.cpu = None;
        if events > 0 || self.busy {
            encode::round(&mut self.spool.buf, cut);
        }
        self.busy = events > 0;
    }
    fn room(&self) -> bool {
        // A page and the /proc facts its events may bring.
        self.spool.room(2 * self.page_size)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send(false)
    }
    fn holding(&self) -> bool {
        self.busy
    }
    fn batch(&self) -> Option<std::time::Duration> {
        // 2 MiB per CPU holds about 80 ms of a 500k/s storm
        // (docs/benchmarks.md): 5 ms leaves a wide margin. Not after task
        // events: the /proc facts of a short-lived process must be read
        // while it still runs.
        // And only while a round takes a small part of the kernel's
        // buffer: a small --buffer-kb fills up within the wait.
        let calm = self.pages_last * 4 < self.buffer_pages;
        (!self.tasks_last && calm).then(|| std::time::Duration::from_millis(5))
    }
    fn settle(&mut self) {
        let _ = self.send(true);
    }
    fn out_fd(&self) -> Option<i32> {
        (self.spool.pending() > 0).then_some(STDOUT)
    }
    fn heard(&mut self) {
        // An empty round is the answer: the host releases nothing it
        // does not hold, and knows the link and the agent are alive.
        self.busy = true;
    }
}

/// Records until told to stop; the signals are counted by the host.
pub fn run(o: &Options, mut cap: Capture, stop: &Stop, seg: Option<Segments>) -> Result<u64> {
    // SAFETY: fcntl on stdout. Non-blocking, so a slow reader never
    // stalls the draining; a bigger pipe means fewer wake-ups (the
    // kernel caps it at pipe-max-size; failure is harmless).
    unsafe {
        let fl = libc::fcntl(STDOUT, libc::F_GETFL);
        libc::fcntl(STDOUT, libc::F_SETFL, fl | libc::O_NONBLOCK);
        libc::fcntl(STDOUT, libc::F_SETPIPE_SZ, 1 << 20);
    }
    let mut r = Recorder {
        spool: Spool::new(o.spool_kb as usize * 1024),
        known: Known::default(),
        lineage: o.lineage,
        seg,
        signals: 0,
        head: Vec::new(),
        ready: Vec::new(),
        busy: false,
        tasks: false,
        tasks_last: false,
        pages: 0,
        pages_last: 0,
        cpu: None,
        cpu_pages: 0,
        buffer_pages: o.buffer_kb as usize * 1024 / cap.readers.page_size.max(1),
        page_size: cap.readers.page_size,
    };
    r.start(o, &mut cap);
    // With --out, `ready` is made once READY is in the file: the
    // capture is live. A failed write ends it in the loop's first flush.
    if r.seg.is_some() && r.send(false).is_ok() {
        if let Some(seg) = &mut r.seg {
            seg.ready();
        }
    }
    let result = drain::capture(&mut cap, stop, o.duration, o.alive_timeout, &mut r);
    if matches!(result, Ok(EndReason::Hangup)) {
        // The host is gone: the last frames must not wait for it.
        r.spool.stalled = true;
    }
    let lost: Vec<(u32, u64)> = cap
        .readers
        .cpus
        .iter()
        .map(|c| (c.cpu, lost_by_stats(&cap.instance.dir, c.cpu)))
        .collect();
    encode::stats(&mut r.spool.buf, &lost);
    match &result {
        Ok(reason) => encode::end_frame(&mut r.spool.buf, end_code(*reason)),
        Err(e) => encode::error(&mut r.spool.buf, e.kind, &e.message, &e.help),
    }
    let written = r.send(true);
    let torn = teardown(cap);
    let result = match (result, written) {
        (Ok(_), Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(AgentError::output(e)),
        (result, _) => result,
    };
    if let Some(seg) = &mut r.seg {
        // After the teardown: `ended` means nothing is left in the kernel.
        let ok = result.is_ok() && torn.is_ok();
        seg.stat(if ok { "ended" } else { "error" }, true);
    }
    torn?;
    match result {
        Ok(_) => Ok(1),
        Err(e) => {
            // The host has the ERROR frame; stdout must stay a stream.
            e.say();
            std::process::exit(2)
        }
    }
}
