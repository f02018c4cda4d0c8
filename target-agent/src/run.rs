//! The standalone capture loop: drain every CPU's pages into the shared
//! pipeline (whosent-analysis: merge, process table, query, records),
//! write records; stop on count, duration, a signal or stdin EOF; then
//! report losses and clean up. `--stream` records instead
//! ([`crate::record`]): the same pages, sent raw for the host to decode.

use crate::args::Options;
use crate::capture::Capture;
use crate::error::{AgentError, Result};
use crate::procfs::Live;
use crate::reader::lost_by_stats;
use crate::stop::Stop;
use std::io::Write;
use std::time::{Duration, Instant};
use whosent_analysis::pipeline::{Layouts, Lineage, Pipeline, Sink};
use whosent_proto::record::{End, EndReason, Lost, Ready, SignalEvent};
use whosent_proto::render;

/// Pages read from one CPU before moving on, so that a storm on one CPU
/// cannot starve the others or delay stop checks.
pub const PAGES_PER_ROUND: usize = 64;

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

impl Sink for Output {
    fn signal(&mut self, e: &SignalEvent, lineage: Option<&Lineage>) {
        if self.human {
            let mut e = e.clone();
            e.running.lineage = lineage.map(|l| l.list.clone());
            self.buf.push_str(&render::signal_line(&e));
            self.buf.push('\n');
        } else {
            e.encode_with(&mut self.buf, lineage.map(|l| l.json.as_str()));
        }
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
}

pub fn uname() -> (String, String) {
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

pub fn bad_page(e: impl std::fmt::Display) -> AgentError {
    AgentError::new(
        "bad_page",
        e.to_string(),
        "report this with the kernel release",
    )
}

/// Waits until a CPU has data, stdin changes or `timeout` passes, also
/// for `out` to take more when given; true when stdin needs a look.
pub fn wait(cap: &Capture, stop: &Stop, timeout: Duration, out: Option<i32>) -> bool {
    let mut fds: Vec<libc::pollfd> = cap
        .readers
        .fds()
        .into_iter()
        .map(|fd| (fd, libc::POLLIN))
        .chain(out.map(|fd| (fd, libc::POLLOUT)))
        .chain([(stop.wake_fd, libc::POLLIN)])
        .chain(stop.stdin_fd.map(|fd| (fd, libc::POLLIN)))
        .map(|(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: fds is a valid array of pollfd for its length.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    stop.stdin_fd.is_some() && fds.last().is_some_and(|p| p.revents != 0)
}

/// Why to stop now, if anything says so.
pub fn should_stop(stop: &Stop, deadline: Option<Instant>) -> Option<EndReason> {
    if let Some(r) = stop.signalled() {
        return Some(r);
    }
    deadline
        .filter(|d| Instant::now() >= *d)
        .map(|_| EndReason::Duration)
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

struct Loop {
    cap: Capture,
    pipeline: Pipeline,
    out: Output,
    page: Vec<u8>,
    cpus: Vec<u32>,
}

impl Loop {
    /// Reads what the kernel has now into the pipeline and applies what
    /// is in final order; returns how many events were read.
    fn round(&mut self) -> Result<usize> {
        let mut n = 0;
        let mut cut = Vec::new();
        for r in &mut self.cap.readers.cpus {
            for round in 1.. {
                if round > PAGES_PER_ROUND {
                    cut.push(r.cpu);
                    break;
                }
                let len = r.read_page(&mut self.page).map_err(|e| {
                    AgentError::io("cannot read", &format!("cpu{}/trace_pipe_raw", r.cpu), e)
                })?;
                if len == 0 {
                    break;
                }
                n += self
                    .pipeline
                    .page(r.cpu, &self.page[..len], &mut self.out)
                    .map_err(bad_page)?;
            }
        }
        self.pipeline
            .end_round(&self.cpus, &cut, &mut Live, &mut self.out);
        Ok(n)
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
    if o.stream {
        return crate::record::run(o, cap, &stop);
    }
    let (release, arch) = uname();
    let mut out = Output {
        human: o.human,
        buf: String::with_capacity(1 << 16),
    };
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
        Ready::new("ftrace", &release, &arch, &cap.instance.name, &cap.filter).encode(&mut out.buf);
    }
    let layouts = Layouts {
        page: cap.page,
        signal: cap.signal.clone(),
        tasks: cap.tasks.clone(),
        uid: cap.uid.clone(),
    };
    let mut pipeline = Pipeline::new(layouts, o.query.clone(), o.lineage, o.count);
    for f in std::mem::take(&mut cap.known) {
        pipeline.table.learn(f);
    }
    let mut l = Loop {
        page: vec![0; cap.readers.page_size],
        cpus: cap.readers.cpus.iter().map(|r| r.cpu).collect(),
        cap,
        pipeline,
        out,
    };
    // A deadline past what Instant can hold is no deadline.
    let deadline = o.duration.and_then(|d| Instant::now().checked_add(d));
    let reason = loop {
        if l.out.flush().is_err() {
            break EndReason::Hangup;
        }
        if let Some(r) = should_stop(&stop, deadline) {
            break r;
        }
        let n = l.round()?;
        if l.pipeline.done {
            break EndReason::Count;
        }
        if n == 0 {
            // Held-back events are released by the next round.
            let most = Duration::from_millis(if l.pipeline.held() == 0 { 200 } else { 2 });
            let left = deadline.map_or(most, |d| d.saturating_duration_since(Instant::now()));
            if wait(&l.cap, &stop, left.min(most), None) && stop.stdin_closed() {
                break EndReason::StdinClosed;
            }
        }
    };
    // What is already in the buffer was generated before we stopped.
    if reason != EndReason::Count {
        l.round()?;
        l.pipeline.finish(&mut Live, &mut l.out);
    }
    let mut lost = 0;
    for r in &l.cap.readers.cpus {
        let by_stats = lost_by_stats(&l.cap.instance.dir, r.cpu);
        let reported = l
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
            .encode(&mut l.out.buf);
        }
        lost += by_stats.max(reported);
    }
    let signals = l.pipeline.signals;
    if o.human {
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
    teardown(l.cap)?;
    Ok(signals)
}
