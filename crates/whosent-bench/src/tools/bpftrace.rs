//! bpftrace with a per-event `printf`, the usual way to stream events
//! from it. `BEGIN` runs once every probe is attached, so its line is
//! the ready signal. Lost events are reported as "Lost N events".

use super::{stderr_tail, workdir, Filter, Outcome, Running, Session, Tool};
use crate::child::Proc;
use crate::lines::{contains, int_after, Class, Feed};
use std::fs::File;
use std::io;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub struct Bpftrace;

fn classify(line: &[u8], target: i32) -> Class {
    if line.starts_with(b"S ") {
        return match int_after(line, b"S ") {
            Some(p) if p == target as i64 => Class::Match,
            _ => Class::Other,
        };
    }
    if line.starts_with(b"ready") {
        return Class::Ready;
    }
    if contains(line, b"Lost ") {
        return Class::Lost(int_after(line, b"Lost ").map(|n| n as u64));
    }
    Class::Keep
}

struct BSession {
    r: Running,
}

impl Tool for Bpftrace {
    fn name(&self) -> String {
        "bpftrace printf".into()
    }

    fn unavailable(&self) -> Option<String> {
        let out = Command::new("bpftrace")
            .args(["-e", "BEGIN { exit(); }"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match out {
            Err(_) => Some("bpftrace is not installed (apt-get install bpftrace)".into()),
            Ok(o) if !o.status.success() => Some(format!(
                "bpftrace does not run on this kernel: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .rfind(|l| !l.contains("RLIMIT_MEMLOCK"))
                    .unwrap_or("")
            )),
            Ok(_) => None,
        }
    }

    fn start(&self, f: &Filter, n: usize) -> io::Result<Box<dyn Session>> {
        let pred = match f.sig {
            Some(s) => format!("args->pid == {} && args->sig == {s}", f.pid),
            None => format!("args->pid == {}", f.pid),
        };
        let script = format!(
            "BEGIN {{ printf(\"ready\\n\"); }} \
             tracepoint:signal:signal_generate /{pred}/ \
             {{ printf(\"S %d %d %d %s\\n\", args->pid, args->sig, pid, comm); }}"
        );
        let stderr = workdir().join(format!("bt{n}.err"));
        let epoch = Instant::now();
        let (proc, mut pipes) = Proc::spawn(
            "bpftrace",
            Command::new("bpftrace")
                .args(["-e", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(File::create(&stderr)?),
        )?;
        let feed = Feed::start(pipes.stdout.take().expect("piped"), classify, f.pid, epoch);
        let counts = feed.counts.clone();
        Ok(Box::new(BSession {
            r: Running {
                proc,
                counts,
                feed,
                stderr,
            },
        }))
    }
}

impl Session for BSession {
    fn ready(&self) -> Option<Duration> {
        self.r.counts.ready_at()
    }

    fn progress(&self) -> u64 {
        self.r.counts.matched()
    }

    fn alive(&mut self) -> bool {
        self.r.proc.running()
    }

    fn stop(self: Box<Self>) -> Outcome {
        let BSession { mut r } = *self;
        let (hwm, nproc) = r.hwm();
        let (exit, killed) = r.proc.stop(libc::SIGINT, Duration::from_secs(30));
        r.feed.join();
        let mut lost = r.counts.lost.load(Ordering::SeqCst);
        let err = std::fs::read_to_string(&r.stderr).unwrap_or_default();
        for l in err.lines().filter(|l| l.contains("Lost ")) {
            lost += int_after(l.as_bytes(), b"Lost ").unwrap_or(0) as u64;
        }
        let mut o = Outcome {
            matched: r.counts.matched(),
            other: r.counts.other.load(Ordering::SeqCst),
            lost_reported: Some(lost),
            lost_unknown: r.counts.lost_unknown.load(Ordering::SeqCst) > 0,
            exit,
            hwm_tree_kb: hwm,
            processes: nproc,
            bytes_per_event: r.bytes_per_event(),
            ..Outcome::default()
        };
        if killed {
            o.error = Some(format!(
                "bpftrace did not stop on SIGINT; stderr: {}",
                stderr_tail(&r.stderr)
            ));
        }
        o
    }
}
