//! whosent: the agent itself (`whosent-agent --pid P`), or the host
//! tool in front of it (`whosent-deploy --host local --json`), with its
//! JSON Lines read as they stream (docs/json-schema.md).

use super::{stderr_tail, workdir, Filter, Outcome, Running, Session, Tool};
use crate::child::Proc;
use crate::lines::{contains, int_after, int_after_last, Class, Feed};
use crate::tracefs;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Whosent {
    pub label: String,
    /// The command before the query flags.
    pub argv: Vec<OsString>,
}

impl Whosent {
    pub fn agent(label: &str, agent: PathBuf) -> Self {
        Whosent {
            label: label.into(),
            argv: vec![agent.into()],
        }
    }

    pub fn deploy_local(label: &str, deploy: PathBuf, agent: PathBuf) -> Self {
        Whosent {
            label: label.into(),
            argv: vec![
                deploy.into(),
                "--host".into(),
                "local".into(),
                "--agent".into(),
                agent.into(),
                "--json".into(),
            ],
        }
    }
}

pub fn classify(line: &[u8], target: i32) -> Class {
    // whosent-deploy puts `"host":"..."` first for a remote agent.
    let head = &line[..line.len().min(120)];
    if contains(head, br#""type":"signal""#) {
        // The target object closes the record: look only at the tail.
        let tail = &line[line.len().saturating_sub(240)..];
        return match int_after_last(tail, br#""target":{"pid":"#) {
            Some(p) if p == target as i64 => Class::Match,
            _ => Class::Other,
        };
    }
    if contains(head, br#""type":"ready""#) {
        return Class::Ready;
    }
    if contains(head, br#""type":"lost""#) {
        return Class::Lost(int_after(line, br#""count":"#).map(|n| n as u64));
    }
    Class::Keep
}

/// The value of `"key":"..."` in a JSON line, for the few records read.
fn json_str(line: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let at = line.find(&pat)? + pat.len();
    Some(line[at..].split('"').next()?.to_string())
}

struct WSession {
    r: Running,
    /// The agent's stdin: kept open for its lifetime, since its EOF
    /// would stop the agent.
    stdin: Option<std::process::ChildStdin>,
}

impl Tool for Whosent {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn unavailable(&self) -> Option<String> {
        let p = PathBuf::from(&self.argv[0]);
        (!p.is_file()).then(|| format!("{} not found", p.display()))
    }

    fn start(&self, f: &Filter, n: usize) -> io::Result<Box<dyn Session>> {
        let stderr = workdir().join(format!("whosent-{n}.err"));
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .arg("--pid")
            .arg(f.pid.to_string());
        if let Some(s) = f.sig {
            cmd.arg("--sig").arg(s.to_string());
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr)?);
        let epoch = Instant::now();
        let (proc, mut pipes) = Proc::spawn(&self.label, &mut cmd)?;
        let feed = Feed::start(pipes.stdout.take().expect("piped"), classify, f.pid, epoch);
        let counts = feed.counts.clone();
        Ok(Box::new(WSession {
            r: Running {
                proc,
                counts,
                feed,
                stderr,
            },
            stdin: pipes.stdin.take(),
        }))
    }
}

impl Session for WSession {
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
        let WSession { mut r, stdin } = *self;
        let (hwm, nproc) = r.hwm();
        // The agent's own instance, named in its ready record: read-only.
        let kept = r.counts.kept();
        let instance = kept
            .iter()
            .find(|l| l.contains(r#""type":"ready""#))
            .and_then(|l| json_str(l, "instance"));
        let kstats = instance
            .as_ref()
            .and_then(|i| tracefs::stats(&tracefs::root().join("instances").join(i)));
        let (exit, killed) = r.proc.stop(libc::SIGINT, Duration::from_secs(20));
        drop(stdin);
        r.feed.join();
        let kept = r.counts.kept();
        let mut o = Outcome {
            matched: r.counts.matched(),
            other: r.counts.other.load(std::sync::atomic::Ordering::SeqCst),
            kstats,
            exit,
            hwm_tree_kb: hwm,
            processes: nproc,
            bytes_per_event: r.bytes_per_event(),
            ..Outcome::default()
        };
        let lost_records = r.counts.lost.load(std::sync::atomic::Ordering::SeqCst);
        o.lost_unknown = r
            .counts
            .lost_unknown
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0;
        let end = kept.iter().find(|l| l.contains(r#""type":"end""#));
        let error = kept.iter().find(|l| l.contains(r#""type":"error""#));
        o.lost_reported = Some(
            end.and_then(|l| int_after(l.as_bytes(), br#""lost":"#))
                .map_or(lost_records, |n| n as u64),
        );
        if let Some(e) = error {
            o.error = Some(format!(
                "agent error {}: {}",
                json_str(e, "kind").unwrap_or_default(),
                json_str(e, "message").unwrap_or_default()
            ));
        } else if end.is_none() {
            o.error = Some(format!(
                "no end record ({}{}); stderr: {}",
                exit.describe(),
                if killed { ", killed after 20 s" } else { "" },
                stderr_tail(&r.stderr)
            ));
        }
        if let Some(l) = end {
            if let Some(reason) = json_str(l, "reason") {
                o.notes.push(format!("end reason {reason}"));
            }
        }
        if let Some(i) = instance {
            o.notes.push(format!("instance {i}"));
        }
        o
    }
}
