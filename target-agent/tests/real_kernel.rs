//! The agent on this machine's real kernel (root, tracefs). Each test
//! starts its own receiver and filters on its pid, so tests running in
//! parallel never see each other's events. The receiver's own view
//! (SA_SIGINFO `si_pid`) cross-checks the sender the agent reports.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_whosent-agent");
const T: Duration = Duration::from_secs(10);

fn agent(args: &[&str]) -> Proc {
    Proc::spawn(Command::new(AGENT).args(args))
}

/// Starts the agent and waits for its `ready` record.
fn ready_agent(args: &[&str]) -> (Proc, Value) {
    let mut a = agent(args);
    let l = a.until(T, |l| {
        l.contains(r#""type":"ready""#) || l.contains(r#""type":"error""#)
    });
    let v: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["type"], "ready", "agent failed: {l}");
    (a, v)
}

fn receiver(args: &[&str]) -> (Proc, i32) {
    let mut r = Proc::spawn(Command::new(sibling(AGENT, "test_receiver")).args(args));
    let l = r.until(T, |l| l.starts_with("ready"));
    let pid = num(&l, "pid") as i32;
    assert_eq!(pid, r.pid());
    wait_comm(pid, "test_receiver");
    (r, pid)
}

fn send(args: &[&str]) -> i32 {
    let out = Command::new(sibling(AGENT, "test_sender"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "test_sender {args:?}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    num(text.lines().last().unwrap(), "sender_pid") as i32
}

fn signal_record(a: &mut Proc) -> Value {
    let l = a.until(T, |l| l.contains(r#""type":"signal""#));
    serde_json::from_str(&l).unwrap()
}

/// The end record, after which the agent must exit and its instance
/// must be gone.
fn finish(a: &mut Proc, instance: &str) -> Value {
    let l = a.until(T, |l| l.contains(r#""type":"end""#));
    a.wait(T);
    assert!(
        !instance_exists(instance),
        "instance {instance} was left behind"
    );
    serde_json::from_str(&l).unwrap()
}

fn inst(ready: &Value) -> String {
    ready["instance"].as_str().unwrap().to_string()
}

#[test]
fn kill_is_reported_with_the_sender_the_receiver_saw() {
    if !real_kernel("kill") {
        return;
    }
    let (mut r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let (mut a, ready) = ready_agent(&["--sig", "USR1", "--pid", &p, "--count", "1"]);
    assert_eq!(ready["v"], 1);
    // Processes are matched in the agent (their threads change).
    assert_eq!(ready["filter"], "sig == 10");
    let sender = send(&["kill", "10", &p]);
    let got = r.until(T, |l| l.starts_with("got"));
    let e = signal_record(&mut a);
    assert_eq!(e["sender"]["pid"], sender);
    assert_eq!(
        num(&got, "si_pid") as i32,
        sender,
        "receiver and agent disagree"
    );
    assert_eq!(e["sender"]["comm"], "test_sender");
    assert_eq!(e["sender"]["uid"], num(&got, "si_uid"));
    assert_eq!(e["target"]["pid"], rpid);
    assert_eq!(e["target"]["comm"], "test_receiver");
    assert_eq!(
        (e["signame"].as_str(), e["code_name"].as_str()),
        (Some("SIGUSR1"), Some("SI_USER"))
    );
    assert_eq!(e["result"], "delivered");
    assert_eq!(e["context"], "task");
    assert!(
        e["sender"]["cmdline"]
            .as_str()
            .is_some_and(|c| c.contains("kill 10")),
        "{e}"
    );
    assert_eq!(finish(&mut a, &inst(&ready))["reason"], "count");
}

#[test]
fn tgkill_to_one_thread() {
    if !real_kernel("tgkill") {
        return;
    }
    let (mut r, rpid) = receiver(&["--threads", "2", "10"]);
    // The receiver prints its threads before `ready`.
    let tid = num(
        r.seen
            .iter()
            .find(|l| l.starts_with("thread"))
            .expect("a thread line"),
        "tid",
    );
    let p = rpid.to_string();
    let (mut a, ready) = ready_agent(&["--sig", "10", "--pid", &p, "--count", "1"]);
    let sender = send(&["tgkill", "10", &p, &tid.to_string()]);
    let got = r.until(T, |l| l.starts_with("got"));
    let e = signal_record(&mut a);
    assert_eq!(num(&got, "tid"), tid, "the thread itself got it");
    assert_eq!(num(&got, "si_pid") as i32, sender);
    assert_eq!(e["sender"]["pid"], sender);
    assert_eq!(
        (e["target"]["pid"].as_i64(), e["target"]["tid"].as_i64()),
        (Some(rpid as i64), Some(tid))
    );
    assert_eq!(e["code_name"], "SI_TKILL");
    assert_eq!(e["group"], false);
    finish(&mut a, &inst(&ready));
}

#[test]
fn sigqueue_reports_si_queue() {
    if !real_kernel("sigqueue") {
        return;
    }
    let (mut r, rpid) = receiver(&["12"]);
    let p = rpid.to_string();
    let (mut a, ready) = ready_agent(&["-s", "SIGUSR2", "--pid", &p, "--count", "1"]);
    let sender = send(&["sigqueue", "12", &p, "4242"]);
    let got = r.until(T, |l| l.starts_with("got"));
    let e = signal_record(&mut a);
    assert_eq!((num(&got, "si_code"), num(&got, "si_value")), (-1, 4242));
    assert_eq!(num(&got, "si_pid") as i32, sender);
    assert_eq!(e["sender"]["pid"], sender);
    assert_eq!(
        (e["code"].as_i64(), e["code_name"].as_str()),
        (Some(-1), Some("SI_QUEUE"))
    );
    finish(&mut a, &inst(&ready));
}

#[test]
fn kill_to_a_process_group() {
    if !real_kernel("killpg") {
        return;
    }
    let (mut r, rpid) = receiver(&["--pgrp", "10"]);
    let p = rpid.to_string();
    let (mut a, ready) = ready_agent(&["--sig", "USR1", "--pid", &p, "--count", "1"]);
    let sender = send(&["killpg", "10", &p]);
    let got = r.until(T, |l| l.starts_with("got"));
    let e = signal_record(&mut a);
    assert_eq!(num(&got, "si_pid") as i32, sender);
    assert_eq!(e["sender"]["pid"], sender);
    assert_eq!(e["target"]["pid"], rpid);
    assert_eq!(e["group"], true);
    finish(&mut a, &inst(&ready));
}

#[test]
fn a_realtime_signal() {
    if !real_kernel("rt") {
        return;
    }
    let (mut r, rpid) = receiver(&["37"]);
    let p = rpid.to_string();
    let (mut a, ready) = ready_agent(&["--sig", "RTMIN+3", "--pid", &p, "--count", "1"]);
    let sender = send(&["kill", "37", &p]);
    let got = r.until(T, |l| l.starts_with("got"));
    let e = signal_record(&mut a);
    assert_eq!(num(&got, "sig"), 37);
    assert_eq!(
        (e["sig"].as_i64(), e["signame"].as_str()),
        (Some(37), Some("SIGRTMIN+3"))
    );
    assert_eq!(e["sender"]["pid"], sender);
    finish(&mut a, &inst(&ready));
}

#[test]
fn a_kernel_originated_segv_is_credited_to_the_faulting_task() {
    if !real_kernel("segv") {
        return;
    }
    let mut r =
        Proc::spawn(Command::new(sibling(AGENT, "test_receiver")).args(["--segv", "--wait-stdin"]));
    let rpid = num(&r.until(T, |l| l.starts_with("ready")), "pid") as i32;
    wait_comm(rpid, "test_receiver");
    let p = rpid.to_string();
    let (mut a, ready) = ready_agent(&["--sig", "SEGV", "--pid", &p, "--count", "1"]);
    r.write_stdin("go\n");
    let got = r.until(T, |l| l.starts_with("got"));
    let e = signal_record(&mut a);
    assert_eq!(num(&got, "si_code"), 1);
    assert_eq!(e["code_name"], "SEGV_MAPERR");
    assert_eq!(
        e["sender"]["pid"], rpid,
        "a fault is generated by the faulting task itself"
    );
    assert_eq!(e["target"]["pid"], rpid);
    finish(&mut a, &inst(&ready));
}

#[test]
fn sigchld_names_the_child_that_exited() {
    if !real_kernel("sigchld") {
        return;
    }
    // The parent is a shell we start, so its pid is ours to filter on.
    let mut sh = Proc::spawn(
        Command::new("sh").args(["-c", "read x; /bin/true & wait; echo child=$!; read y"]),
    );
    let p = sh.pid().to_string();
    let (mut a, ready) = ready_agent(&["--sig", "CHLD", "--pid", &p, "--count", "1"]);
    sh.write_stdin("go\n");
    let child = num(&sh.until(T, |l| l.starts_with("child=")), "child");
    let e = signal_record(&mut a);
    assert_eq!(e["code_name"], "CLD_EXITED");
    assert_eq!(e["sender"]["pid"], child);
    assert_eq!(e["target"]["pid"], sh.pid());
    finish(&mut a, &inst(&ready));
}

#[test]
fn a_short_lived_shell_sender() {
    if !real_kernel("sh kill") {
        return;
    }
    let (mut r, rpid) = receiver(&["15"]);
    let p = rpid.to_string();
    let (mut a, ready) = ready_agent(&["--sig", "TERM", "--pid", &p, "--count", "1"]);
    let out = Command::new("sh")
        .args(["-c", &format!("kill -TERM {rpid}; echo $$")])
        .output()
        .unwrap();
    let sh_pid: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let got = r.until(T, |l| l.starts_with("got"));
    let e = signal_record(&mut a);
    assert_eq!(num(&got, "si_pid"), sh_pid);
    assert_eq!(e["sender"]["pid"], sh_pid, "{e}");
    assert_eq!(e["sender"]["comm"], "sh");
    finish(&mut a, &inst(&ready));
}

#[test]
fn every_way_out_removes_the_instance() {
    if !real_kernel("clean-up") {
        return;
    }
    let (_r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let base = ["--sig", "USR1", "--pid", p.as_str()];
    // --duration
    let (mut a, ready) = ready_agent(&[&base[..], &["--duration", "0.3"]].concat());
    assert!(instance_exists(&inst(&ready)));
    assert_eq!(finish(&mut a, &inst(&ready))["reason"], "duration");
    assert_eq!(a.wait(T), 1, "no signal seen: exit 1");
    // SIGINT, SIGTERM, SIGHUP
    for (sig, reason) in [
        (libc::SIGINT, "interrupted"),
        (libc::SIGTERM, "terminated"),
        (libc::SIGHUP, "hangup"),
    ] {
        let (mut a, ready) = ready_agent(&base);
        a.signal(sig);
        assert_eq!(finish(&mut a, &inst(&ready))["reason"], reason);
    }
    // stdin closed, as when an SSH session ends
    let (mut a, ready) = ready_agent(&base);
    a.close_stdin();
    assert_eq!(finish(&mut a, &inst(&ready))["reason"], "stdin_closed");
}

/// Issue 13 item 10: when the network to the host silently stopped
/// forwarding, the agent kept tracing for ever (no EOF ever comes). With
/// `--alive-timeout` the host's heartbeat on stdin keeps it going, and
/// its silence ends it, instance and all.
#[test]
fn a_silent_host_ends_the_agent_by_itself() {
    if !real_kernel("alive timeout") {
        return;
    }
    let (_r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let (mut a, ready) = ready_agent(&["--sig", "USR1", "--pid", &p, "--alive-timeout", "1"]);
    // Heartbeats for twice the timeout: it keeps running.
    let t0 = std::time::Instant::now();
    let mut last = t0;
    while t0.elapsed() < Duration::from_secs(2) {
        a.write_stdin("\n");
        last = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "ended while the host was there"
    );
    assert!(instance_exists(&inst(&ready)));
    // Then silence, with stdin still open (a dead link sends no EOF).
    let end = finish(&mut a, &inst(&ready));
    assert_eq!(end["reason"], "hangup", "{end}");
    let took = last.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "ended {took:?} after the last heartbeat"
    );
    assert_eq!(a.wait(T), 1);
}

#[test]
fn a_killed_agents_instance_is_removed_by_the_next_run() {
    if !real_kernel("kill -9") {
        return;
    }
    let (_r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let (mut a, ready) = ready_agent(&["--sig", "USR1", "--pid", &p]);
    let stale = inst(&ready);
    a.signal(libc::SIGKILL);
    a.wait(T);
    assert!(
        instance_exists(&stale),
        "kill -9 leaves the instance (nothing can run)"
    );
    let (mut b, ready_b) = ready_agent(&["--sig", "USR1", "--pid", &p]);
    assert!(
        !instance_exists(&stale),
        "the next run removes the stale instance"
    );
    assert!(instance_exists(&inst(&ready_b)), "its own is live");
    b.close_stdin();
    finish(&mut b, &inst(&ready_b));
}

/// Runs the agent to completion; returns (status, stdout, stderr).
fn fails(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(AGENT)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_usage_error(args: &[&str], env: &[(&str, &str)], kind: &str, says: &str) {
    let (st, out, err) = fails(args, env);
    assert_eq!(st, 2, "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["kind"], kind, "{out}");
    assert!(!v["help"].as_str().unwrap().is_empty());
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_2() {
    assert_usage_error(&["--sig", "FOO"], &[], "usage", "kill -l");
    assert_usage_error(&["--sig", "0"], &[], "usage", "kill -l");
    assert_usage_error(&["--sig", "99"], &[], "usage", "kill -l");
    assert_usage_error(&["--pid", "12ab"], &[], "usage", "positive number");
    // A pid that cannot exist (above pid_max).
    assert_usage_error(
        &["--pid", "2147483000"],
        &[],
        "no_such_process",
        "no such process",
    );
    let empty = std::env::temp_dir().join(format!("whosent-empty-{}", std::process::id()));
    std::fs::create_dir_all(empty.join("events/sched")).unwrap();
    let nosig = empty.to_str().unwrap();
    assert_usage_error(
        &[],
        &[("WHOSENT_TRACEFS", nosig)],
        "no_signal_events",
        "CONFIG_EVENT_TRACING",
    );
    let notfs = empty.join("events/sched");
    assert_usage_error(
        &["--tracefs", notfs.to_str().unwrap()],
        &[],
        "no_tracefs",
        "mount -t tracefs",
    );
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn not_root_is_refused_with_what_to_do() {
    if !real_kernel("not root") {
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            AGENT,
            "--sig",
            "KILL",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
    assert_eq!(err.lines().count(), 1);
}
