//! A plain `cat trace_pipe` on a private instance that the harness sets
//! up (buffer size, filter, enable) exactly as whosent would; lines are
//! counted as they stream. It is "ready" once the event is enabled:
//! from then on the kernel buffers events for it.

use super::{classify_ftrace_text, stderr_tail, workdir, Filter, Outcome, Running, Session, Tool};
use crate::child::Proc;
use crate::cleanup::tag;
use crate::lines::Feed;
use crate::tracefs::Instance;
use std::fs::File;
use std::io;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub struct CatPipe {
    pub buffer_kb: u64,
}

struct CSession {
    r: Running,
    instance: Instance,
    ready: Duration,
}

impl Tool for CatPipe {
    fn name(&self) -> String {
        "cat trace_pipe".into()
    }

    fn unavailable(&self) -> Option<String> {
        None
    }

    fn start(&self, f: &Filter, n: usize) -> io::Result<Box<dyn Session>> {
        let epoch = Instant::now();
        let instance = Instance::create(&format!("{}-cat{n}", tag()))?;
        instance.set("buffer_size_kb", &self.buffer_kb.to_string())?;
        instance.set("events/signal/signal_generate/filter", &f.ftrace())?;
        instance.set("events/signal/signal_generate/enable", "1")?;
        let stderr = workdir().join(format!("cat{n}.err"));
        let (proc, mut pipes) = Proc::spawn(
            "cat trace_pipe",
            Command::new("cat")
                .arg(instance.dir.join("trace_pipe"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(File::create(&stderr)?),
        )?;
        let feed = Feed::start(
            pipes.stdout.take().expect("piped"),
            classify_ftrace_text,
            f.pid,
            epoch,
        );
        let counts = feed.counts.clone();
        Ok(Box::new(CSession {
            r: Running {
                proc,
                counts,
                feed,
                stderr,
            },
            instance,
            ready: epoch.elapsed(),
        }))
    }
}

impl Session for CSession {
    fn ready(&self) -> Option<Duration> {
        Some(self.ready)
    }

    fn progress(&self) -> u64 {
        self.r.counts.matched()
    }

    fn alive(&mut self) -> bool {
        self.r.proc.running()
    }

    fn stop(self: Box<Self>) -> Outcome {
        let CSession {
            mut r,
            mut instance,
            ready: _,
        } = *self;
        let (hwm, nproc) = r.hwm();
        let _ = instance.set("events/signal/signal_generate/enable", "0");
        let kstats = instance.stats();
        let (exit, _) = r.proc.stop(libc::SIGTERM, Duration::from_secs(5));
        r.feed.join();
        let mut o = Outcome {
            matched: r.counts.matched(),
            other: r.counts.other.load(Ordering::SeqCst),
            lost_reported: Some(r.counts.lost.load(Ordering::SeqCst)),
            lost_unknown: r.counts.lost_unknown.load(Ordering::SeqCst) > 0,
            kstats,
            exit,
            hwm_tree_kb: hwm,
            processes: nproc,
            bytes_per_event: r.bytes_per_event(),
            ..Outcome::default()
        };
        let err = stderr_tail(&r.stderr);
        if !err.is_empty() {
            o.notes.push(format!("stderr: {err}"));
        }
        if let Err(e) = instance.remove() {
            o.error = Some(format!("could not remove {}: {e}", instance.name));
        }
        o
    }
}
