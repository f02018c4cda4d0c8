//! The tracers under test. Each starts filtered to one target process,
//! says when it is ready, reports its progress while the storm runs,
//! and on stop gives what it caught, what it knows it lost, the kernel's
//! own per-CPU accounting of its instance, and its CPU time and memory.

pub mod bpftrace;
pub mod catpipe;
pub mod recorder;
pub mod tracecmd;
pub mod whosent;

use crate::child::{Exit, Proc};
use crate::lines::{Class, Counts};
use crate::tracefs::Stats;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to trace: signals generated for `pid` (its thread id, as the
/// tracepoint's `pid` field holds), optionally of one signal only.
#[derive(Debug, Clone, Copy)]
pub struct Filter {
    pub pid: i32,
    pub sig: Option<i32>,
}

impl Filter {
    /// The ftrace event filter for signal_generate.
    pub fn ftrace(&self) -> String {
        match self.sig {
            Some(s) => format!("pid == {} && sig == {s}", self.pid),
            None => format!("pid == {}", self.pid),
        }
    }
}

#[derive(Debug, Default)]
pub struct Outcome {
    /// Events for the target that the tool delivered.
    pub matched: u64,
    /// Events for other processes that it delivered (filter leaks).
    pub other: u64,
    /// What the tool itself said it lost.
    pub lost_reported: Option<u64>,
    /// The tool said it lost events without saying how many.
    pub lost_unknown: bool,
    /// The kernel's per-CPU stats of the tool's ftrace instance.
    pub kstats: Option<Stats>,
    pub exit: Exit,
    /// Sum of VmHWM over the tool's processes just before it was stopped.
    pub hwm_tree_kb: Option<u64>,
    pub processes: usize,
    /// Bytes the tool wrote per captured event (its output stream, or
    /// its trace file).
    pub bytes_per_event: Option<f64>,
    /// The tool failed (the run's figures are then partial).
    pub error: Option<String>,
    pub notes: Vec<String>,
    /// Post-processing after the recording (`trace-cmd report`,
    /// `whosent-deploy parse --json`): its rusage.
    pub post: Option<Exit>,
    /// The recorder's stream decoded by `parse --json > /dev/null`.
    pub post_null: Option<Exit>,
    /// VmHWM of the tool's own process (not of a shell or of the
    /// harness before exec), read just before it was stopped.
    pub own_hwm_kb: Option<u64>,
    /// Bytes of the recording (trace.dat, the saved capture stream).
    pub recorded_bytes: Option<u64>,
    /// The capture stream by frame kind (the recorder alone).
    pub frames: Option<recorder::Frames>,
}

pub trait Session {
    /// When the tool said it was tracing, since it was started.
    fn ready(&self) -> Option<Duration>;
    /// Events caught so far (only compared with itself).
    fn progress(&self) -> u64;
    fn alive(&mut self) -> bool;
    fn stop(self: Box<Self>) -> Outcome;
}

pub trait Tool {
    fn name(&self) -> String;
    /// None if it can run here, else why not.
    fn unavailable(&self) -> Option<String>;
    /// `n` makes file and instance names unique within a run.
    fn start(&self, f: &Filter, n: usize) -> io::Result<Box<dyn Session>>;
}

/// Waits for a session's ready signal.
pub fn wait_ready(s: &mut dyn Session, timeout: Duration) -> Result<Duration, String> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(t) = s.ready() {
            return Ok(t);
        }
        if !s.alive() {
            return Err("exited before it was ready".into());
        }
        if Instant::now() >= end {
            return Err(format!("not ready after {} s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Where tools write their files (stderr captures, trace.dat).
pub fn workdir() -> PathBuf {
    std::env::var_os("WSBENCH_WORKDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// The last lines of a captured stderr, for error notes, with the
/// run-specific instance names shortened.
pub fn stderr_tail(path: &std::path::Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = s
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("RLIMIT_MEMLOCK"))
        .map(|l| {
            let l = l.trim();
            match (l.find("/instances/"), l.rfind('/')) {
                (Some(a), Some(b)) if b > a + 11 => format!("{}/instances/…{}", &l[..a], &l[b..]),
                _ => l.to_string(),
            }
        })
        .collect();
    lines[lines.len().saturating_sub(2)..].join(" ")
}

/// ftrace text (`trace_pipe`, `trace-cmd report`): a signal_generate
/// line names its target in `pid=`; the header's `comm-pid` is the sender.
pub fn classify_ftrace_text(line: &[u8], target: i32) -> Class {
    use crate::lines::{contains, find, int_after};
    const EV: &[u8] = b"signal_generate:";
    if let Some(at) = find(line, EV) {
        return match int_after(&line[at..], b" pid=") {
            Some(p) if p == target as i64 => Class::Match,
            _ => Class::Other,
        };
    }
    if contains(line, b"LOST") {
        // "CPU:1 [LOST 123 EVENTS]"
        return Class::Lost(int_after(line, b"LOST ").map(|n| n as u64));
    }
    Class::Keep
}

/// Common parts of a running tool: its process and its output counts.
pub struct Running {
    pub proc: Proc,
    pub counts: Arc<Counts>,
    pub feed: crate::lines::Feed,
    pub stderr: PathBuf,
}

impl Running {
    pub fn bytes_per_event(&self) -> Option<f64> {
        let n = self.counts.matched();
        (n > 0).then(|| {
            self.counts
                .matched_bytes
                .load(std::sync::atomic::Ordering::SeqCst) as f64
                / n as f64
        })
    }

    pub fn hwm(&self) -> (Option<u64>, usize) {
        let kb = crate::child::tree_hwm_kb(self.proc.pid);
        let n = crate::child::tree_pids(self.proc.pid).len();
        ((kb > 0).then_some(kb), n)
    }
}
