//! The local runs: each workload untraced (the baseline for the
//! sender's slowdown), then under each tool, filtered to the storm's
//! receiver; and the time each tool takes from its command to the first
//! probe signal it catches.

use crate::child::Proc;
use crate::cli::say;
use crate::storm::{Storm, StormResult, Workload};
use crate::tools::{wait_ready, Filter, Outcome, Tool};
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct RunRow {
    pub tool: String,
    pub workload: String,
    pub storm: Option<StormResult>,
    pub outcome: Option<Outcome>,
    /// The run did not complete (the tool could not start, etc.).
    pub error: Option<String>,
    /// From the storm's end until the tool stopped making progress.
    pub drain: Option<Duration>,
}

/// How long a tool may go without progress before it is taken to have
/// caught up with the kernel after the storm.
const QUIET: Duration = Duration::from_millis(600);
const DRAIN_MAX: Duration = Duration::from_secs(60);

/// Every workload untraced `base_reps` times, then under every tool.
/// Failures of the harness (a storm that does not run) go to `broken`;
/// a tool's own failures are results, in its row.
pub fn matrix(
    bin: &Path,
    workloads: &[Workload],
    tools: &[Box<dyn Tool>],
    base_reps: usize,
    broken: &mut Vec<String>,
) -> (Vec<(String, Vec<StormResult>)>, Vec<RunRow>) {
    let mut baselines = Vec::new();
    for w in workloads {
        let mut v = Vec::new();
        for _ in 0..base_reps {
            say(&format!("{}: untraced", w.name));
            match baseline(bin, w) {
                Ok(r) => v.push(r),
                Err(e) => broken.push(format!("{} untraced: {e}", w.name)),
            }
        }
        baselines.push((w.name.clone(), v));
    }
    let mut rows = Vec::new();
    let mut n = 0;
    for w in workloads {
        for t in tools {
            n += 1;
            say(&format!("{}: {}", w.name, t.name()));
            match run(bin, t.as_ref(), w, n) {
                Ok(r) => {
                    let err = r
                        .error
                        .as_ref()
                        .or(r.outcome.as_ref().and_then(|o| o.error.as_ref()));
                    if let Some(e) = err {
                        say(&format!("  {}: {e}", t.name()));
                    }
                    rows.push(r)
                }
                Err(e) => broken.push(format!("{} under {}: {e}", w.name, t.name())),
            }
        }
    }
    (baselines, rows)
}

pub fn baseline(bin: &Path, w: &Workload) -> io::Result<StormResult> {
    let s = Storm::start(bin, w)?;
    let (r, _) = s.go()?;
    Ok(r)
}

pub fn run(bin: &Path, tool: &dyn Tool, w: &Workload, n: usize) -> io::Result<RunRow> {
    let mut row = RunRow {
        tool: tool.name(),
        workload: w.name.clone(),
        storm: None,
        outcome: None,
        error: None,
        drain: None,
    };
    let storm = Storm::start(bin, w)?;
    let filter = Filter {
        pid: storm.receiver,
        sig: None,
    };
    let mut sess = match tool.start(&filter, n) {
        Ok(s) => s,
        Err(e) => {
            row.error = Some(format!("cannot start: {e}"));
            return Ok(row);
        }
    };
    if let Err(e) = wait_ready(sess.as_mut(), Duration::from_secs(30)) {
        let o = sess.stop();
        row.error = Some(format!(
            "{e}{}",
            o.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
        row.outcome = Some(o);
        return Ok(row);
    }
    let res = match storm.go() {
        Ok((r, _)) => r,
        Err(e) => {
            row.outcome = Some(sess.stop());
            return Err(e);
        }
    };
    row.storm = Some(res);
    let end = Instant::now();
    let mut last = sess.progress();
    let mut changed = end;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let p = sess.progress();
        if p != last {
            last = p;
            changed = Instant::now();
        }
        if changed.elapsed() >= QUIET || end.elapsed() >= DRAIN_MAX || !sess.alive() {
            break;
        }
    }
    row.drain = Some(changed.duration_since(end));
    row.outcome = Some(sess.stop());
    Ok(row)
}

/// Often enough for a 10 ms goal, rarely enough not to load the CPUs
/// that the tool is starting on.
pub const PROBE_EVERY: Duration = Duration::from_millis(1);

pub struct ReadyRow {
    pub tool: String,
    /// From the command until the first probe signal was caught.
    pub caught: Vec<Duration>,
    /// From the command until the tool's own ready line.
    pub ready_line: Vec<Duration>,
    pub error: Option<String>,
}

/// Starts `tool` filtered to a probe process and sends the probe
/// SIGWINCH (harmless, ignored by default) every `PROBE_EVERY` until the
/// tool reports one; `reps` times.
pub fn ready_all(tools: &[&dyn Tool], reps: usize) -> Vec<ReadyRow> {
    let mut rows = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        say(&format!("ready: {}", t.name()));
        rows.push(ready(*t, reps, 1000 + 100 * i));
    }
    rows
}

pub fn ready(tool: &dyn Tool, reps: usize, n0: usize) -> ReadyRow {
    let mut row = ReadyRow {
        tool: tool.name(),
        caught: Vec::new(),
        ready_line: Vec::new(),
        error: None,
    };
    for i in 0..reps {
        match ready_once(tool, n0 + i) {
            Ok((c, r)) => {
                row.caught.push(c);
                if let Some(r) = r {
                    row.ready_line.push(r);
                }
            }
            Err(e) => {
                row.error = Some(e);
                break;
            }
        }
    }
    row
}

fn ready_once(tool: &dyn Tool, n: usize) -> Result<(Duration, Option<Duration>), String> {
    let (probe, _) = Proc::spawn(
        "probe sleep",
        Command::new("sleep")
            .arg("120")
            .stdin(Stdio::null())
            .stdout(Stdio::null()),
    )
    .map_err(|e| e.to_string())?;
    let filter = Filter {
        pid: probe.pid,
        sig: Some(libc::SIGWINCH),
    };
    let t0 = Instant::now();
    let mut s = tool.start(&filter, n).map_err(|e| e.to_string())?;
    let caught = loop {
        probe.signal(libc::SIGWINCH);
        std::thread::sleep(PROBE_EVERY);
        if s.progress() > 0 {
            break t0.elapsed();
        }
        if !s.alive() {
            let o = s.stop();
            return Err(format!(
                "exited before catching the probe: {}",
                o.error.unwrap_or_else(|| o.exit.describe())
            ));
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = s.stop();
            return Err("caught no probe signal in 30 s".into());
        }
    };
    let ready = s.ready();
    let o = s.stop();
    if let Some(e) = o.error {
        return Err(e);
    }
    Ok((caught, ready))
}
