//! Issue #11, "values are right or null": a sender that changed its uid
//! after fork is reported with the uid it had when it sent the signal
//! (`si_uid`, its real uid), or with null, never with its parent's.
//! Fifty short-lived senders drop from root to uid 65534 with setpriv
//! (setresuid after the fork, then exec) and kill a receiver of the same
//! uid; the receiver's own siginfo is the independent check.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
const T: Duration = Duration::from_secs(20);
const N: usize = 50;
const NOBODY: [&str; 6] = [
    "--reuid",
    "65534",
    "--regid",
    "65534",
    "--clear-groups",
    "--",
];

/// Whether this kernel reports set*uid calls (CONFIG_FTRACE_SYSCALLS):
/// then every uid must be right, not merely right or null.
fn uid_events() -> bool {
    std::path::Path::new("/sys/kernel/tracing/events/syscalls/sys_exit_setresuid").exists()
}

#[test]
fn senders_that_dropped_to_another_uid_are_reported_with_it() {
    if !real_kernel("uid changes") {
        return;
    }
    assert!(
        Command::new("setpriv").arg("--version").output().is_ok(),
        "setpriv (util-linux) is needed"
    );
    let recv = sibling(DEPLOY, "test_receiver");
    let mut r = Proc::spawn(Command::new("setpriv").args(NOBODY).arg(&recv).arg("28"));
    let rpid = num(&r.until(T, |l| l.starts_with("ready")), "pid") as i32;
    wait_comm(rpid, "test_receiver");
    let p = rpid.to_string();
    let n = N.to_string();
    let mut d = Proc::spawn(Command::new(DEPLOY).args([
        "--host", "local", "--json", "--sig", "WINCH", "--pid", &p, "--count", &n,
    ]));
    d.until(T, |l| l.contains(r#""type":"ready""#));
    // One sender at a time, each waiting for the receiver's line: SIGWINCH
    // is a standard signal, so a second one sent while the first is still
    // pending is merged into it (kernel/signal.c, legacy_queue()), and the
    // receiver would see 49 (CI saw that on a loaded machine).
    // The receiver's view: every signal came from uid 65534.
    let mut si_pids = Vec::new();
    for _ in 0..N {
        let st = Command::new("setpriv")
            .args(NOBODY)
            .args(["sh", "-c", &format!("kill -WINCH {p}")])
            .status()
            .unwrap();
        assert!(st.success());
        let got = r.until(T, |l| l.starts_with("got"));
        assert_eq!(num(&got, "si_uid"), 65534, "{got}");
        si_pids.push(num(&got, "si_pid"));
    }
    let recs: Vec<Value> = d
        .rest(T)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(d.wait(T), 0);
    let signals: Vec<&Value> = recs.iter().filter(|r| r["type"] == "signal").collect();
    assert_eq!(signals.len(), N, "{recs:?}");
    let mut right = 0;
    for s in &signals {
        let sender = &s["sender"];
        assert!(
            si_pids.contains(&sender["pid"].as_i64().unwrap()),
            "a sender the receiver did not see: {s}"
        );
        match sender["uid"].as_u64() {
            Some(65534) => right += 1,
            None => assert!(sender["uid"].is_null()),
            Some(other) => panic!(
                "sender {} reported as uid {other}, but si_uid was 65534: {s}",
                sender["pid"]
            ),
        }
    }
    if uid_events() {
        assert_eq!(right, N, "with set*uid events every uid is known");
    }
    r.close_stdin();
}
