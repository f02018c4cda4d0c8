//! The recorder alone (issue #11): `whosent-agent --stream --pid R`
//! with its stdout going straight to a file, so nothing downstream can
//! slow it down. It is ready once its READY frame is in the file
//! (docs/stream-format.md). Afterwards the saved stream is decoded with
//! `whosent-deploy parse --json FILE`, whose signal records for the
//! receiver are what it captured and whose end record's `lost` is what
//! it lost; that decoding is timed too (the host decoding rate).

use super::{stderr_tail, workdir, Filter, Outcome, Session, Tool};
use crate::child::{hwm_kb, Exit, Proc};
use crate::lines::{int_after, Feed};
use crate::tools::whosent::classify;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Recorder {
    pub label: String,
    pub agent: PathBuf,
    /// whosent-deploy, for `parse`.
    pub deploy: PathBuf,
}

struct RSession {
    proc: Proc,
    _stdin: Option<ChildStdin>,
    out: PathBuf,
    stderr: PathBuf,
    deploy: PathBuf,
    target: i32,
    epoch: Instant,
    ready: Mutex<Option<Duration>>,
}

/// READY's frame kind (docs/stream-format.md).
const READY: u8 = 2;
const PAGE: u8 = 3;
const HEADER: usize = 12;

/// Whether the stream's first frames (up to `limit` bytes read) hold READY.
pub fn has_ready(path: &Path) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut buf = vec![0u8; 256 << 10];
    let mut have = 0;
    while have < buf.len() {
        match f.read(&mut buf[have..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }
    let mut at = HEADER;
    while at + 5 <= have {
        let kind = buf[at];
        let len = u32::from_le_bytes([buf[at + 1], buf[at + 2], buf[at + 3], buf[at + 4]]) as usize;
        if kind == READY {
            return true;
        }
        at += 5 + len;
    }
    false
}

/// A saved stream's bytes by frame kind (frame header included), and
/// its PAGE frames: what the bytes per event are made of.
#[derive(Debug, Default, Clone, Copy)]
pub struct Frames {
    pub page_bytes: u64,
    pub pages: u64,
    pub other_bytes: u64,
}

/// Walks the frames' headers with seeks: a 1M storm's stream is 50 MB
/// or more, and reading it into the harness would raise the peak RSS
/// that every child forked afterwards starts with (`ru_maxrss`).
pub fn frames(path: &Path) -> Option<Frames> {
    use std::io::{BufReader, Seek, SeekFrom};
    let total = std::fs::metadata(path).ok()?.len();
    let mut r = BufReader::with_capacity(64 << 10, File::open(path).ok()?);
    let mut f = Frames {
        other_bytes: (HEADER as u64).min(total),
        ..Frames::default()
    };
    let mut at = HEADER as u64;
    r.seek(SeekFrom::Start(at)).ok()?;
    let mut h = [0u8; 5];
    while at + 5 <= total && r.read_exact(&mut h).is_ok() {
        let len = u32::from_le_bytes([h[1], h[2], h[3], h[4]]) as u64;
        if h[0] == PAGE {
            f.pages += 1;
            f.page_bytes += 5 + len;
        } else {
            f.other_bytes += 5 + len;
        }
        at += 5 + len;
        r.seek_relative(len as i64).ok()?;
    }
    Some(f)
}

/// `whosent-deploy parse --json FILE > /dev/null`: the decoding alone,
/// without the harness's reader on a pipe.
pub fn parse_to_null(deploy: &Path, file: &Path) -> io::Result<Exit> {
    let (mut p, _) = Proc::spawn(
        "whosent-deploy parse >/dev/null",
        Command::new(deploy)
            .args(["parse", "--json"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    Ok(p.wait())
}

/// What `whosent-deploy parse --json FILE` makes of a saved stream.
pub struct Parsed {
    pub matched: u64,
    pub other: u64,
    /// The end record's `lost`.
    pub lost: Option<u64>,
    pub lost_unknown: bool,
    pub exit: Exit,
    pub error: Option<String>,
}

pub fn parse(deploy: &Path, file: &Path, target: i32) -> io::Result<Parsed> {
    let epoch = Instant::now();
    let (mut p, mut pipes) = Proc::spawn(
        "whosent-deploy parse",
        Command::new(deploy)
            .args(["parse", "--json"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let mut feed = Feed::start(pipes.stdout.take().expect("piped"), classify, target, epoch);
    let exit = p.wait();
    feed.join();
    let c = &feed.counts;
    let kept = c.kept();
    let end = kept.iter().find(|l| l.contains(r#""type":"end""#));
    let lost = end.and_then(|l| int_after(l.as_bytes(), br#""lost":"#).map(|n| n as u64));
    let error = match (end, exit.code()) {
        (None, _) => Some(format!("parse gave no end record ({})", exit.describe())),
        _ => kept
            .iter()
            .find(|l| l.contains(r#""type":"error""#))
            .map(|l| format!("parse: {l}")),
    };
    Ok(Parsed {
        matched: c.matched(),
        other: c.other.load(Ordering::SeqCst),
        lost,
        lost_unknown: c.lost_unknown.load(Ordering::SeqCst) > 0,
        exit,
        error,
    })
}

impl Tool for Recorder {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn unavailable(&self) -> Option<String> {
        (!self.agent.is_file()).then(|| format!("{} not found", self.agent.display()))
    }

    fn start(&self, f: &Filter, n: usize) -> io::Result<Box<dyn Session>> {
        let out = workdir().join(format!("rec{n}.stream"));
        let stderr = workdir().join(format!("rec{n}.err"));
        let mut cmd = Command::new(&self.agent);
        cmd.arg("--stream").arg("--pid").arg(f.pid.to_string());
        if let Some(s) = f.sig {
            cmd.arg("--sig").arg(s.to_string());
        }
        cmd.stdin(Stdio::piped())
            .stdout(File::create(&out)?)
            .stderr(File::create(&stderr)?);
        let epoch = Instant::now();
        let (proc, pipes) = Proc::spawn(&self.label, &mut cmd)?;
        Ok(Box::new(RSession {
            proc,
            _stdin: pipes.stdin,
            out,
            stderr,
            deploy: self.deploy.clone(),
            target: f.pid,
            epoch,
            ready: Mutex::new(None),
        }))
    }
}

impl Session for RSession {
    fn ready(&self) -> Option<Duration> {
        let mut r = self.ready.lock().ok()?;
        if r.is_none() && has_ready(&self.out) {
            *r = Some(self.epoch.elapsed());
        }
        *r
    }

    /// The stream's size: the recorder writes as it drains the kernel.
    fn progress(&self) -> u64 {
        std::fs::metadata(&self.out).map_or(0, |m| m.len())
    }

    fn alive(&mut self) -> bool {
        self.proc.running()
    }

    fn stop(self: Box<Self>) -> Outcome {
        let mut s = *self;
        let own = hwm_kb(s.proc.pid);
        let (exit, killed) = s.proc.stop(libc::SIGINT, Duration::from_secs(20));
        let bytes = std::fs::metadata(&s.out).map_or(0, |m| m.len());
        let fr = frames(&s.out);
        let mut o = Outcome {
            exit,
            own_hwm_kb: own,
            hwm_tree_kb: own,
            processes: 1,
            recorded_bytes: Some(bytes),
            ..Outcome::default()
        };
        if killed {
            o.error = Some(format!(
                "the recorder did not stop on SIGINT; stderr: {}",
                stderr_tail(&s.stderr)
            ));
        }
        o.post_null = parse_to_null(&s.deploy, &s.out).ok();
        match parse(&s.deploy, &s.out, s.target) {
            Ok(p) => {
                o.matched = p.matched;
                o.other = p.other;
                o.lost_reported = p.lost;
                o.lost_unknown = p.lost_unknown;
                o.post = Some(p.exit);
                if o.error.is_none() {
                    o.error = p.error;
                }
                o.notes.push(format!(
                    "parse: {:.2} s wall, {:.2} s CPU",
                    p.exit.wall.as_secs_f64(),
                    p.exit.cpu().as_secs_f64()
                ));
            }
            Err(e) => o.error = Some(format!("parse: {e}")),
        }
        o.bytes_per_event = (o.matched > 0).then(|| bytes as f64 / o.matched as f64);
        o.notes.push(format!("stream {} KiB", bytes / 1024));
        if let Some(f) = fr {
            o.notes.push(format!(
                "{} PAGE frames of {:.0} B on average ({:.1} events per page), {} B in other frames",
                f.pages,
                f.page_bytes as f64 / f.pages.max(1) as f64,
                o.matched as f64 / f.pages.max(1) as f64,
                f.other_bytes
            ));
        }
        o.frames = fr;
        let _ = std::fs::remove_file(&s.out);
        o
    }
}
