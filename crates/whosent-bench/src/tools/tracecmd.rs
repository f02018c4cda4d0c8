//! `trace-cmd record` into a private instance.
//!
//! On this kernel it needs `--no-filter -B <instance> -d`: without `-B`
//! it would take over the global buffer, and it leaves the instance
//! behind when it exits, so the harness adopts it at once and removes
//! it afterwards (also on errors). Its events are counted afterwards
//! with `trace-cmd report`, whose time is reported as post-processing,
//! not as recording cost.

use super::{classify_ftrace_text, stderr_tail, workdir, Filter, Outcome, Running, Session, Tool};
use crate::child::Proc;
use crate::cleanup::tag;
use crate::lines::{contains, Class, Feed};
use crate::tracefs::Instance;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub struct TraceCmd {
    pub buffer_kb: u64,
}

fn classify(line: &[u8], _target: i32) -> Class {
    if contains(line, b"Hit Ctrl^C") {
        Class::Ready
    } else {
        Class::Keep
    }
}

struct TSession {
    r: Running,
    instance: Instance,
    out: PathBuf,
    target: i32,
}

impl Tool for TraceCmd {
    fn name(&self) -> String {
        "trace-cmd record".into()
    }

    fn unavailable(&self) -> Option<String> {
        let ok = Command::new("trace-cmd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        (!ok).then(|| "trace-cmd is not installed (apt-get install trace-cmd)".into())
    }

    fn start(&self, f: &Filter, n: usize) -> io::Result<Box<dyn Session>> {
        let name = format!("{}-tc{n}", tag());
        let out = workdir().join(format!("tc{n}.dat"));
        let stderr = workdir().join(format!("tc{n}.err"));
        // Adopted before trace-cmd runs, so that it is removed whatever happens.
        let instance = Instance::adopt(&name);
        let epoch = Instant::now();
        // stdbuf: trace-cmd's "Hit Ctrl^C" would otherwise sit in a
        // stdio buffer until it exits.
        let (proc, mut pipes) = Proc::spawn(
            "trace-cmd",
            Command::new("stdbuf")
                .args([
                    "-oL",
                    "trace-cmd",
                    "record",
                    "--no-filter",
                    "-B",
                    &name,
                    "-d",
                    "-b",
                ])
                .arg(self.buffer_kb.to_string())
                .args(["-e", "signal:signal_generate", "-f", &f.ftrace(), "-o"])
                .arg(&out)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(File::create(&stderr)?),
        )?;
        let feed = Feed::start(pipes.stdout.take().expect("piped"), classify, f.pid, epoch);
        let counts = feed.counts.clone();
        Ok(Box::new(TSession {
            r: Running {
                proc,
                counts,
                feed,
                stderr,
            },
            instance,
            out,
            target: f.pid,
        }))
    }
}

impl Session for TSession {
    fn ready(&self) -> Option<Duration> {
        self.r.counts.ready_at()
    }

    /// Events in the instance's buffer or already read from it: trace-cmd
    /// writes to a file, so the kernel's counters are the live view.
    fn progress(&self) -> u64 {
        self.instance.stats().map_or(0, |s| s.entries + s.read)
    }

    fn alive(&mut self) -> bool {
        self.r.proc.running()
    }

    fn stop(self: Box<Self>) -> Outcome {
        let TSession {
            mut r,
            mut instance,
            out,
            target,
        } = *self;
        let (hwm, nproc) = r.hwm();
        let (exit, killed) = r.proc.stop(libc::SIGINT, Duration::from_secs(60));
        r.feed.join();
        // After trace-cmd is gone, its instance still holds the final counts.
        let kstats = instance.stats();
        let mut o = Outcome {
            kstats,
            exit,
            hwm_tree_kb: hwm,
            processes: nproc,
            ..Outcome::default()
        };
        if let Err(e) = instance.remove() {
            o.notes
                .push(format!("could not remove {}: {e}", instance.name));
        }
        // On this kernel it exits 1 after recording, when it cannot reset
        // the instance's set_ftrace_filter (EPERM): a note, not a failure,
        // as long as the recording reads back.
        if killed {
            o.error = Some(format!(
                "trace-cmd record did not stop on SIGINT; stderr: {}",
                stderr_tail(&r.stderr)
            ));
        } else if exit.code() != Some(0) {
            o.notes
                .push(format!("{}: {}", exit.describe(), stderr_tail(&r.stderr)));
        }
        match report(&out, target, &mut o) {
            Ok(()) => {}
            Err(e) => o.error = Some(format!("trace-cmd report: {e}")),
        }
        if let Ok(m) = std::fs::metadata(&out) {
            o.notes.push(format!("trace.dat {} KiB", m.len() / 1024));
            o.bytes_per_event = (o.matched > 0).then(|| m.len() as f64 / o.matched as f64);
            o.recorded_bytes = Some(m.len());
        }
        let _ = std::fs::remove_file(&out);
        o
    }
}

/// Counts the recorded events with `trace-cmd report`.
fn report(out: &PathBuf, target: i32, o: &mut Outcome) -> io::Result<()> {
    let epoch = Instant::now();
    let (mut p, mut pipes) = Proc::spawn(
        "trace-cmd report",
        Command::new("trace-cmd")
            .args(["report", "-i"])
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let mut feed = Feed::start(
        pipes.stdout.take().expect("piped"),
        classify_ftrace_text,
        target,
        epoch,
    );
    let e = p.wait();
    feed.join();
    o.matched = feed.counts.matched();
    o.other = feed.counts.other.load(Ordering::SeqCst);
    let lost = feed.counts.lost.load(Ordering::SeqCst);
    o.lost_reported = Some(lost);
    o.lost_unknown = feed.counts.lost_unknown.load(Ordering::SeqCst) > 0;
    o.post = Some(e);
    o.notes.push(format!(
        "report: {:.2} s wall, {:.2} s CPU",
        e.wall.as_secs_f64(),
        e.cpu().as_secs_f64()
    ));
    if e.code() != Some(0) {
        return Err(io::Error::other(format!("exit {}", e.describe())));
    }
    Ok(())
}
