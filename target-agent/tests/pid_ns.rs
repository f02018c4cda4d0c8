//! `--pid-ns PID` for a process the agent may not inspect, run as
//! nobody against process 1 (root's): the kernel denies reading
//! /proc/1/ns/pid (ptrace_may_access, fs/proc/namespaces.c), and the
//! agent must say so rather than "no such process" (issue #13).

use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_whosent-agent");

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

#[test]
fn pid_ns_of_a_process_we_may_not_inspect_says_permission_denied() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        // As nobody, with no groups: another user's process 1.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", AGENT]);
        c
    } else {
        Command::new(AGENT)
    };
    // The oracle: can this user read the link at all? Only when the
    // answer is "denied" does the test say something.
    let probe = if root {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["readlink", "/proc/1/ns/pid"])
            .output()
    } else {
        Command::new("readlink").arg("/proc/1/ns/pid").output()
    };
    let probe = probe.expect("run readlink");
    if probe.status.success() {
        assert!(
            !in_ci(),
            "CI=true, but /proc/1/ns/pid is readable as this user: nothing to test"
        );
        eprintln!("pid_ns: skipped, /proc/1/ns/pid is readable as this user");
        return;
    }
    let out = cmd
        .args(["--pid-ns", "1", "--sig", "50", "--duration", "0.1"])
        .output()
        .expect("run the agent");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("--pid-ns 1: permission denied"), "{stdout}");
    assert!(!stdout.contains("no such process"), "{stdout}");
}
