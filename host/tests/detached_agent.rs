//! The agent's side of a detached capture (issue #14, docs/detached.md):
//! `whosent-agent --stream --out DIR` started from a shell that exits at
//! once, as `whosent-deploy start` does over SSH, keeps recording in its
//! own session into segment files, within `--max-size`, and says in
//! `stat` what it dropped. The segments are decoded by whosent-deploy's
//! own `parse`; the sender is checked against the receiver's siginfo.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
const T: Duration = Duration::from_secs(15);

fn agent() -> PathBuf {
    sibling(DEPLOY, "whosent-agent")
}

/// A fresh private capture directory holding a copy of the agent, as
/// the host prepares it on the board.
fn capture_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("whosent-cap-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir(&d).unwrap();
    // Copied by a child: a file this process had open for writing would
    // be inherited by another test's fork, and exec'ing it then fails
    // with "Text file busy".
    let st = Command::new("cp")
        .arg(agent())
        .arg(d.join("whosent-agent"))
        .status()
        .unwrap();
    assert!(st.success());
    d
}

/// A detached agent: not our child, so stopped here (SIGTERM) if a test
/// fails before it stops it, lest it record on after the test.
struct Detached {
    pid: i32,
    exe: PathBuf,
}

impl Drop for Detached {
    fn drop(&mut self) {
        // Its exe: a reused pid is someone else's.
        if std::fs::read_link(format!("/proc/{}/exe", self.pid)).is_ok_and(|e| e == self.exe) {
            unsafe { libc::kill(self.pid, libc::SIGTERM) };
        }
    }
}

/// Starts the agent the way the host does: from a shell that puts it in
/// the background and exits. Returns once `ready` exists, with the
/// agent's pid from `stat`.
fn start_detached(dir: &Path, args: &str) -> Detached {
    let d = dir.display();
    let sh = format!(
        "cd {d} && ./whosent-agent --stream --out {d} {args} </dev/null >/dev/null 2>{d}/agent.err &"
    );
    let st = Command::new("sh").args(["-c", &sh]).status().unwrap();
    assert!(st.success(), "the starting shell failed: {st}");
    // Longer than the host's 10 s: this machine runs other tests too.
    let live = eventually(2 * T, || dir.join("ready").exists());
    assert!(
        live,
        "no ready within {:?}; agent.err: {:?}; files: {:?}; agents: {}",
        2 * T,
        std::fs::read_to_string(dir.join("agent.err")).unwrap_or_default(),
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>()),
        String::from_utf8_lossy(
            &Command::new("pgrep")
                .args(["-af", "whosent-agent"])
                .output()
                .unwrap()
                .stdout
        )
    );
    Detached {
        pid: stat_field(&stat(dir), "pid") as i32,
        exe: dir.join("whosent-agent"),
    }
}

fn stat(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stat")).unwrap()
}

fn stat_field(stat: &str, key: &str) -> u64 {
    assert!(stat.starts_with("v1 ") && stat.ends_with('\n'), "{stat:?}");
    field(stat, key)
        .unwrap_or_else(|| panic!("no {key}= in {stat:?}"))
        .parse()
        .unwrap()
}

/// Whether `pid` runs (a zombie has ended).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
}

/// Fields after the comm in /proc/PID/stat: state, ppid, pgrp, session…
fn proc_stat(pid: i32) -> Vec<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    s[s.rfind(')').unwrap() + 2..]
        .split(' ')
        .map(|f| f.parse().unwrap_or(-1))
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seg."))
        .collect();
    v.sort();
    v
}

/// `whosent-deploy parse SEG --json`: its records and exit status.
fn parse(seg: &Path) -> (Vec<Value>, Option<i32>) {
    let out = Command::new(DEPLOY)
        .arg("parse")
        .arg(seg)
        .arg("--json")
        .output()
        .unwrap();
    let recs = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (recs, out.status.code())
}

/// The whosent instances and uprobes of agent `pid`.
fn leftovers(pid: i32) -> Vec<String> {
    let mut v = Vec::new();
    let inst = format!("whosent-{pid}-");
    for e in std::fs::read_dir("/sys/kernel/tracing/instances")
        .unwrap()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&inst) {
            v.push(n);
        }
    }
    let probe = format!(":whosent_{pid}_");
    let defs = std::fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap_or_default();
    v.extend(
        defs.lines()
            .filter(|l| l.contains(&probe))
            .map(String::from),
    );
    v
}

fn wait_gone(pid: i32) {
    assert!(
        eventually(T, || !alive(pid)),
        "agent {pid} still runs after {T:?}"
    );
}

#[test]
fn a_detached_agent_outlives_its_shell_and_records_the_kill_with_its_sender() {
    if !real_kernel("detached agent: a kill") {
        return;
    }
    let dir = capture_dir("kill");
    // SIGWINCH: the kernel filter takes the signal only (the pid is the
    // host's to match), and other tests on this machine storm SIGUSR1.
    let mut r = Proc::spawn(Command::new(sibling(DEPLOY, "test_receiver")).arg("28"));
    let rpid = num(&r.until(T, |l| l.starts_with("ready")), "pid") as i32;
    wait_comm(rpid, "test_receiver");
    let agent = start_detached(&dir, &format!("--sig WINCH --pid {rpid}"));
    let pid = agent.pid;
    // The shell that started it has exited (status() returned); the agent
    // runs on, in a session of its own, from the capture directory.
    assert!(alive(pid));
    let st = proc_stat(pid);
    assert_eq!(st[3], pid as i64, "session of {pid}: {st:?}");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        dir.join("whosent-agent")
    );
    assert!(!leftovers(pid).is_empty(), "no instance while it runs");
    let out = Command::new(sibling(DEPLOY, "test_sender"))
        .args(["kill", "28", &rpid.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = r.until(T, |l| l.starts_with("got"));
    // The stat line follows within about a second.
    assert!(
        eventually(T, || stat_field(&stat(&dir), "signals") >= 1),
        "{}",
        stat(&dir)
    );
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_gone(pid);
    let st = stat(&dir);
    assert!(st.ends_with(" state=ended\n"), "{st}");
    // Others' SIGWINCH would count too.
    assert!(stat_field(&st, "signals") >= 1, "{st}");
    assert_eq!(stat_field(&st, "dropped"), 0, "{st}");
    assert!(leftovers(pid).is_empty(), "left: {:?}", leftovers(pid));
    let segs = segments(&dir);
    let names: Vec<PathBuf> = (0..=stat_field(&st, "last"))
        .map(|i| dir.join(format!("seg.{i:08}")))
        .collect();
    assert_eq!(segs, names, "{st}");
    let mut bytes = 0;
    let mut sig = Vec::new();
    let mut recs = Vec::new();
    for s in &segs {
        bytes += std::fs::metadata(s).unwrap().len();
        let (r, code) = parse(s);
        assert!(code.is_some(), "{}", s.display());
        sig.extend(r.iter().filter(|r| r["type"] == "signal").cloned());
        recs = r;
    }
    assert_eq!(stat_field(&st, "bytes"), bytes);
    assert_eq!(sig.len(), 1, "{sig:?}");
    assert_eq!(sig[0]["target"]["pid"], rpid);
    assert_eq!(sig[0]["sender"]["pid"], num(&got, "si_pid"));
    assert_eq!(sig[0]["sender"]["uid"], num(&got, "si_uid"));
    let end = recs.last().unwrap();
    assert_eq!(
        (&end["type"], &end["reason"]),
        (&"end".into(), &"terminated".into())
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("agent.err")).unwrap(),
        "",
        "the agent said something"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sums the segments' sizes newest first: a segment deleted after the
/// listing counts 0, and older ones never grow, so the sum is never
/// more than the real total at the moment the newest was measured.
fn seg_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    for s in segments(dir).iter().rev() {
        n += std::fs::metadata(s).map_or(0, |m| m.len());
    }
    n
}

#[test]
fn a_storm_stays_within_max_size_and_the_dropped_signals_are_counted() {
    if !real_kernel("detached agent: a storm") {
        return;
    }
    const MAX: u64 = 1 << 20;
    const N: u64 = 200_000;
    let dir = capture_dir("storm");
    // SIGUSR2: what else on this machine sends it shows in both counts.
    let agent = start_detached(&dir, &format!("--sig USR2 --max-size {MAX}"));
    let pid = agent.pid;
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, most, dir) = (stop.clone(), most.clone(), dir.clone());
        std::thread::spawn(move || {
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(seg_bytes(&dir), Ordering::Relaxed);
                samples += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            samples
        })
    };
    let out = Command::new(sibling(DEPLOY, "signal_storm"))
        .args(["--count", &N.to_string(), "--sig", "12"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let storm = String::from_utf8_lossy(&out.stdout).into_owned();
    let sent = num(storm.lines().last().unwrap(), "sent") as u64;
    // Let the agent read what the kernel holds.
    std::thread::sleep(Duration::from_millis(500));
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_gone(pid);
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    let st = stat(&dir);
    assert!(st.ends_with(" state=ended\n"), "{st}");
    let segs = segments(&dir);
    let at_end = seg_bytes(&dir);
    let most = most.load(Ordering::Relaxed).max(at_end);
    let (signals, dropped) = (stat_field(&st, "signals"), stat_field(&st, "dropped"));
    let (first, last) = (stat_field(&st, "first"), stat_field(&st, "last"));
    // Decode every segment left, each on its own (each is a whole stream).
    let (mut decoded, mut kernel_lost) = (0u64, 0u64);
    for (i, s) in segs.iter().enumerate() {
        let (recs, _) = parse(s);
        assert_eq!(
            recs[0]["type"],
            "ready",
            "{} does not start a stream",
            s.display()
        );
        decoded += recs.iter().filter(|r| r["type"] == "signal").count() as u64;
        if i == segs.len() - 1 {
            let end = recs.last().unwrap();
            assert_eq!(
                end["reason"], "terminated",
                "the last segment ends the stream"
            );
            kernel_lost = end["lost"].as_u64().unwrap();
        }
    }
    eprintln!(
        "storm: sent {sent}; stat: {}; segments {first}..={last}, {at_end} bytes at the end, \
         at most {most} in {samples} samples; decoded {decoded}, kernel lost {kernel_lost}",
        st.trim_end()
    );
    assert!(most <= MAX, "the segments held {most} bytes > {MAX}");
    assert_eq!(at_end, stat_field(&st, "bytes"));
    assert!(
        dropped > 0 && stat_field(&st, "dropped_segments") > 0,
        "{st}"
    );
    assert!(first > 0, "{st}");
    let names: Vec<PathBuf> = (first..=last)
        .map(|i| dir.join(format!("seg.{i:08}")))
        .collect();
    assert_eq!(segs, names, "the segments present are first..=last");
    // What the agent wrote is what was decoded plus what it deleted; the
    // kernel's own loss is the only slack.
    assert!(
        signals.abs_diff(decoded + dropped) <= kernel_lost,
        "signals {signals} != decoded {decoded} + dropped {dropped} (kernel lost {kernel_lost})"
    );
    assert!(
        signals + kernel_lost >= sent,
        "{signals} + {kernel_lost} < {sent}"
    );
    assert!(leftovers(pid).is_empty(), "left: {:?}", leftovers(pid));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_out_and_max_size_are_one_line_usage_errors() {
    let dir = std::env::temp_dir();
    let d = dir.to_str().unwrap();
    for (args, want) in [
        (vec!["--out", d], "--out needs --stream"),
        (
            vec!["--stream", "--out", d, "--max-size", "1000"],
            "--max-size must be at least 65536",
        ),
        (
            vec!["--stream", "--out", d, "--max-size", "8M"],
            "'8M' is not a number",
        ),
    ] {
        let out = Command::new(agent())
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("whosent-agent: error: ") && err.contains(want),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn an_out_dir_that_does_not_exist_is_a_one_line_error() {
    let out = Command::new(agent())
        .args(["--stream", "--out", "/nonexistent/whosent-cap-x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--out /nonexistent/whosent-cap-x: No such file"),
        "{err}"
    );
}

#[test]
fn an_error_before_ready_is_an_error_frame_in_the_first_segment() {
    if !real_kernel("detached agent: an error before ready") {
        return;
    }
    let dir = capture_dir("error");
    // A pid that cannot exist: the agent fails before READY.
    let d = dir.display();
    let sh = format!(
        "cd {d} && ./whosent-agent --stream --out {d} --pid 2147483000 </dev/null >/dev/null 2>{d}/agent.err; echo $?"
    );
    let out = Command::new("sh").args(["-c", &sh]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
    let err = std::fs::read_to_string(dir.join("agent.err")).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--pid 2147483000: no such process"), "{err}");
    assert!(!dir.join("ready").exists());
    let (recs, code) = parse(&dir.join("seg.00000000"));
    assert_eq!(code, Some(2), "{recs:?}");
    let e = recs
        .iter()
        .find(|r| r["type"] == "error")
        .expect("an error record");
    assert_eq!(e["kind"], "no_such_process", "{recs:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stdin_eof_does_not_stop_it_and_after_kill_9_clean_removes_what_it_left() {
    if !real_kernel("detached agent: kill -9 and --clean") {
        return;
    }
    let dir = capture_dir("kill9");
    // A piped stdin that closes: a live agent would stop on its EOF.
    let mut a = Command::new(dir.join("whosent-agent"))
        .args(["--sig", "WINCH", "--stream", "--out"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = a.id() as i32;
    let _stop = Detached {
        pid,
        exe: dir.join("whosent-agent"),
    };
    assert!(eventually(T, || dir.join("ready").exists()), "no ready");
    drop(a.stdin.take());
    std::thread::sleep(Duration::from_millis(500));
    assert!(a.try_wait().unwrap().is_none(), "it stopped on stdin's EOF");
    let left = leftovers(pid);
    assert!(!left.is_empty(), "no instance while it runs");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    a.wait().unwrap();
    // Another agent starting meanwhile may clean it first; either way,
    // after --clean nothing of it is left.
    let before = leftovers(pid);
    let out = Command::new(agent()).arg("--clean").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.lines()
            .all(|l| l.starts_with("whosent-agent: removed stale ")
                && l.ends_with(" (its owner is gone)")),
        "{err}"
    );
    let named = format!("whosent-{pid}-");
    if before.iter().any(|l| l.starts_with(&named)) {
        assert!(
            err.contains(&named),
            "--clean did not name {before:?}: {err}"
        );
    }
    eprintln!("left by kill -9: {left:?}; --clean said: {err}");
    assert!(leftovers(pid).is_empty(), "left: {:?}", leftovers(pid));
    // What it recorded stays readable: a stream cut where it died.
    let first = segments(&dir)[0].clone();
    let (recs, _) = parse(&first);
    assert_eq!(recs[0]["type"], "ready", "{}", first.display());
    std::fs::remove_dir_all(&dir).unwrap();
}
