//! What the harness leaves for `scripts/bench.sh`'s trap to clean up if
//! the harness itself is killed: every child pid (the trap removes the
//! `whosent-<pid>-*` instance of an agent that died with SIGKILL) in
//! `$WSBENCH_PIDFILE`, and the tag that prefixes every ftrace instance
//! and board the harness makes (`$WSBENCH_TAG`, default `wsbench-<pid>`).

use std::io::Write;
use std::sync::OnceLock;

pub fn tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        std::env::var("WSBENCH_TAG")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("wsbench-{}", std::process::id()))
    })
}

/// Every child started, for the end-of-run check for leftovers.
static PIDS: std::sync::Mutex<Vec<i32>> = std::sync::Mutex::new(Vec::new());

pub fn pids() -> Vec<i32> {
    PIDS.lock().map(|p| p.clone()).unwrap_or_default()
}

pub fn note_pid(name: &str, pid: i32) {
    if let Ok(mut p) = PIDS.lock() {
        p.push(pid);
    }
    let Some(path) = std::env::var_os("WSBENCH_PIDFILE") else {
        return;
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{pid} {name}");
    }
}

/// Instances of this run still in tracefs: ours by tag, and those of
/// agents we started (`whosent-<pid>-<start>`).
pub fn leftovers() -> Vec<String> {
    let pids = pids();
    crate::tracefs::instances()
        .into_iter()
        .filter(|i| {
            i.starts_with(&format!("{}-", tag()))
                || i.strip_prefix("whosent-")
                    .and_then(|r| r.split('-').next()?.parse::<i32>().ok())
                    .is_some_and(|p| pids.contains(&p))
        })
        .collect()
}
