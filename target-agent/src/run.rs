//! The standalone capture: the shared pipeline (whosent-analysis: merge,
//! process table, query, records) runs here over the live readers and
//! /proc, and records are written as JSON Lines. With
//! `--stream` the agent records instead ([`crate::record`]).

use crate::args::Options;
use crate::capture::Capture;
use crate::drain::{self, Pages};
use crate::error::{AgentError, Result};
use crate::procfs::Live;
use crate::reader::lost_by_stats;
use crate::segments::Segments;
use crate::stop::Stop;
use std::io::Write;
use whosent_analysis::pipeline::{Layouts, Lineage, Pipeline, Sink};
use whosent_proto::record::{End, EndReason, ExitRec, Lost, Ready, SignalEvent};

struct Output {
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

impl Sink for Output {
    fn signal(&mut self, e: &SignalEvent, lineage: Option<&Lineage>) {
        e.encode_with(&mut self.buf, lineage.map(|l| l.json.as_str()));
        // A round can hold thousands of records: write them as they come
        // rather than grow the buffer (a failed write is seen by the
        // loop's own flush).
        if self.buf.len() >= 1 << 16 {
            let _ = self.flush();
        }
    }

    fn lost(&mut self, l: &Lost) {
        l.encode(&mut self.buf);
    }

    /// Exit records come from whosent-deploy's pipeline only
    /// (whosent-analysis's `exits`, docs/agent-size.md).
    fn exit(&mut self, _: &ExitRec) {}
}

struct Standalone {
    pipeline: Pipeline,
    out: Output,
}

impl Pages for Standalone {
    fn page(&mut self, _: &Capture, cpu: u32, buf: &[u8]) -> Result<usize> {
        self.pipeline
            .page(cpu, buf, &mut self.out)
            .map_err(bad_page)
    }
    fn end_round(&mut self, cpus: &[u32], cut: &[u32], _: usize) {
        self.pipeline.end_round(cpus, cut, &mut Live, &mut self.out);
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
    fn done(&self) -> bool {
        self.pipeline.done
    }
    fn holding(&self) -> bool {
        self.pipeline.held() > 0
    }
}

pub fn uname() -> (String, String) {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    // The kernel ends each field with a NUL (include/uapi/linux/utsname.h:
    // __NEW_UTS_LEN + 1 bytes). CStr rather than an iterator chain:
    // smaller in the agent (docs/agent-size.md).
    let s = |f: &[libc::c_char]| {
        // SAFETY: the field is NUL-terminated within its array.
        let c = unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) };
        c.to_string_lossy().into_owned()
    };
    (s(&u.release), s(&u.machine))
}

pub fn bad_page(e: impl std::fmt::Display) -> AgentError {
    AgentError::new(
        "bad_page",
        e.to_string(),
        "report this with the kernel release",
    )
}

/// Closes the readers, then removes the instance, then the probe.
pub fn teardown(cap: Capture) -> Result<()> {
    let Capture {
        readers,
        mut instance,
        argv_probe,
        ..
    } = cap;
    drop(readers);
    instance.remove()?;
    drop(argv_probe);
    Ok(())
}

fn start(o: &mut Options) -> Result<Capture> {
    // From here on, every pid in the query is a host pid.
    o.query = crate::pidns::resolve(std::mem::take(&mut o.query), "/proc")?;
    let mut cap = crate::capture::start(o)?;
    if o.lineage {
        cap.add_lineage();
    }
    Ok(cap)
}

/// `--out`: the capture outlives the SSH session that started it: a
/// session of its own (no SIGHUP when that one ends), and /dev/null as
/// stdin and stdout, so that no EOF and no reader going away stops it.
/// stderr stays (the host sends it to `agent.err`).
fn detach() {
    // SAFETY: plain syscalls on the agent's own process and stdio; a
    // failed setsid (already a group leader) leaves it as it was. open
    // takes the lowest free descriptors: 0, then 1.
    unsafe {
        libc::setsid();
        libc::close(0);
        libc::close(1);
        libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
    }
}

/// Runs a capture to its end; returns how many signals were reported.
/// Takes the options by value: the query is resolved and then moved into
/// the pipeline, and each clone of it was code in the agent
/// (docs/agent-size.md).
pub fn run(mut o: Options) -> Result<u64> {
    let mut seg = None;
    if let Some(dir) = o.out.take() {
        detach();
        seg = Some(Segments::open(dir, o.max_size)?);
    }
    let stop = Stop::install().map_err(|e| {
        AgentError::new(
            "io",
            format!("cannot set up signal handling: {e}"),
            "check the board's resource limits",
        )
    })?;
    let mut cap = match start(&mut o) {
        Ok(c) => c,
        Err(e) => {
            if let Some(s) = &mut seg {
                s.failed(&e);
            }
            return Err(e);
        }
    };
    if o.stream {
        return crate::record::run(&o, cap, &stop, seg);
    }
    let (release, arch) = uname();
    let mut out = Output {
        buf: String::with_capacity(1 << 16),
    };
    {
        Ready::new("ftrace", &release, &arch, &cap.instance.name, &cap.filter).encode(&mut out.buf);
    }
    // Moved, not cloned: from here on only the pipeline decodes, and
    // each clone of a layout's fields is code in the agent
    // (docs/agent-size.md).
    let layouts = Layouts {
        page: cap.page,
        signal: cap.signal.clone(),
        tasks: std::mem::take(&mut cap.tasks),
        uid: std::mem::take(&mut cap.uid),
        fate: std::mem::take(&mut cap.fate),
    };
    let mut s = Standalone {
        pipeline: Pipeline::new(layouts, o.query, o.lineage, o.count),
        out,
    };
    for f in std::mem::take(&mut cap.known) {
        s.pipeline.table.learn(f);
    }
    let reason = drain::capture(&mut cap, &stop, o.duration, o.alive_timeout, &mut s)?;
    if reason != EndReason::Count {
        s.pipeline.finish(&mut Live, &mut s.out);
    }
    let mut lost = 0;
    for r in &cap.readers.cpus {
        let by_stats = lost_by_stats(&cap.instance.dir, r.cpu);
        let reported = s
            .pipeline
            .lost_reported
            .iter()
            .find(|x| x.0 == r.cpu)
            .map_or(0, |x| x.1);
        if by_stats > reported {
            Lost {
                cpu: r.cpu,
                count: Some(by_stats - reported),
            }
            .encode(&mut s.out.buf);
        }
        lost += by_stats.max(reported);
    }
    let signals = s.pipeline.signals;
    End {
        reason,
        signals,
        lost,
    }
    .encode(&mut s.out.buf);
    // A reader that went away is how `| head` ends, not an error.
    let written = s.out.flush();
    teardown(cap)?;
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(AgentError::output(e)),
        _ => Ok(signals),
    }
}
