//! Runs the built test programs against each other and checks that the
//! siginfo the receiver sees matches what the sender says it did.
//! Needs no privileges.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

const RECEIVER: &str = env!("CARGO_BIN_EXE_test_receiver");
const SENDER: &str = env!("CARGO_BIN_EXE_test_sender");
const STORM: &str = env!("CARGO_BIN_EXE_signal_storm");
const TIMEOUT: Duration = Duration::from_secs(20);

/// A running program whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: Receiver<String>,
}

impl Running {
    fn start(prog: &str, args: &[&str]) -> Running {
        let mut child = Command::new(prog)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {prog}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next line, failing the test on timeout or EOF.
    fn line(&self) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("no line from child {}: {e}", self.child.id()))
    }

    /// The next line starting with `prefix`; others are skipped.
    fn expect(&self, prefix: &str) -> String {
        loop {
            let l = self.line();
            if l.starts_with(prefix) {
                return l;
            }
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn wait(mut self) -> i32 {
        let st = self.child.wait().unwrap();
        st.code().unwrap_or(-1)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=` in a `key=value` line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn num(line: &str, key: &str) -> i64 {
    let v = field(line, key);
    v.parse()
        .unwrap_or_else(|_| panic!("{key}={v} is not a number in {line:?}"))
}

/// Runs test_sender to completion; returns (exit status, stdout lines).
fn send(args: &[&str]) -> (i32, Vec<String>) {
    let out = Command::new(SENDER).args(args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    (
        out.status.code().unwrap_or(-1),
        text.lines().map(String::from).collect(),
    )
}

fn send_ok(args: &[&str]) -> String {
    let (code, lines) = send(args);
    assert_eq!(code, 0, "test_sender {args:?} failed: {lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("sent ") && lines[0].ends_with(" ok"),
        "{lines:?}"
    );
    lines[0].clone()
}

fn uid() -> i64 {
    // SAFETY: cannot fail.
    unsafe { libc::getuid() as i64 }
}

fn ready(r: &Running) -> i64 {
    let l = r.expect("ready ");
    let pid = num(&l, "pid");
    assert_eq!(pid, r.pid() as i64);
    pid
}

#[test]
fn kill_reports_sender_pid() {
    let r = Running::start(RECEIVER, &[]);
    let pid = ready(&r).to_string();
    let sent = send_ok(&["kill", "10", &pid]);
    assert_eq!(field(&sent, "how"), "kill");
    assert_eq!(field(&sent, "to"), pid);
    let got = r.expect("got ");
    assert_eq!(num(&got, "sig"), 10);
    assert_eq!(num(&got, "si_pid"), num(&sent, "sender_pid"));
    assert_eq!(num(&got, "si_uid"), uid());
    assert_eq!(num(&sent, "uid"), uid());
    assert_eq!(num(&got, "si_code"), 0, "SI_USER");
    // With no other threads, the main thread takes it.
    assert_eq!(field(&got, "tid"), pid);
}

#[test]
fn sigqueue_carries_value() {
    let r = Running::start(RECEIVER, &["10", "40"]);
    let pid = ready(&r).to_string();
    for (sig, value) in [("40", "12345"), ("10", "-7")] {
        let sent = send_ok(&["sigqueue", sig, &pid, value]);
        assert_eq!(field(&sent, "value"), value);
        let got = r.expect("got ");
        assert_eq!(field(&got, "sig"), sig);
        assert_eq!(num(&got, "si_code"), -1, "SI_QUEUE");
        assert_eq!(field(&got, "si_value"), value);
        assert_eq!(num(&got, "si_pid"), num(&sent, "sender_pid"));
        assert_eq!(num(&got, "si_uid"), uid());
    }
}

#[test]
fn tgkill_reaches_that_thread() {
    let r = Running::start(RECEIVER, &["--threads", "3"]);
    let tids: Vec<i64> = (0..3).map(|_| num(&r.expect("thread "), "tid")).collect();
    let pid = ready(&r);
    assert!(!tids.contains(&pid));
    for &tid in &tids {
        let sent = send_ok(&["tgkill", "12", &pid.to_string(), &tid.to_string()]);
        assert_eq!(num(&sent, "to"), tid);
        assert_eq!(num(&sent, "tgid"), pid);
        let got = r.expect("got ");
        assert_eq!(num(&got, "sig"), 12);
        assert_eq!(num(&got, "si_code"), -6, "SI_TKILL");
        assert_eq!(num(&got, "tid"), tid);
        assert_eq!(num(&got, "si_pid"), num(&sent, "sender_pid"));
    }
}

#[test]
fn killpg_reports_sender_pid() {
    let r = Running::start(RECEIVER, &["--pgrp", "10"]);
    let pgid = num(&r.expect("pgrp="), "pgrp");
    let pid = ready(&r);
    assert_eq!(pgid, pid, "the receiver leads its own group");
    let sent = send_ok(&["killpg", "SIGUSR1", &pgid.to_string()]);
    assert_eq!(field(&sent, "how"), "killpg");
    assert_eq!(num(&sent, "to"), pgid);
    let got = r.expect("got ");
    assert_eq!(num(&got, "sig"), 10);
    assert_eq!(num(&got, "si_code"), 0);
    assert_eq!(num(&got, "si_pid"), num(&sent, "sender_pid"));
}

#[test]
fn real_segv_is_maperr() {
    let r = Running::start(RECEIVER, &["--segv"]);
    ready(&r);
    let segv = r.expect("segv ");
    let got = r.expect("got ");
    assert_eq!(num(&got, "sig"), 11);
    assert_eq!(num(&got, "si_code"), 1, "SEGV_MAPERR");
    assert_eq!(field(&got, "si_addr"), field(&segv, "addr"));
    assert_eq!(num(&got, "tid"), num(&segv, "tid"));
    assert_eq!(r.wait(), 0);
}

#[test]
fn ignored_signal_is_not_reported_and_count_exits() {
    let r = Running::start(RECEIVER, &["--ignore", "10", "--count", "2"]);
    let pid = ready(&r).to_string();
    send_ok(&["kill", "10", &pid]);
    send_ok(&["kill", "12", &pid]);
    send_ok(&["--repeat", "1", "kill", "TERM", &pid]);
    // Both may be pending when the receiver next runs; the kernel then
    // stacks both handler frames and the later-set-up one runs first,
    // so the order of the two lines is not fixed.
    let mut sigs = [num(&r.expect("got "), "sig"), num(&r.expect("got "), "sig")];
    sigs.sort();
    assert_eq!(sigs, [12, 15]);
    assert_eq!(r.wait(), 0);
}

#[test]
fn sender_repeat_and_errors() {
    let r = Running::start(RECEIVER, &["40"]);
    let pid = ready(&r).to_string();
    let (code, lines) = send(&["--repeat", "3", "--delay-ms", "1", "kill", "40", &pid]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 3);
    for _ in 0..3 {
        assert_eq!(num(&r.expect("got "), "sig"), 40);
    }

    // A pid that just went away.
    let mut gone = Command::new(SENDER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gone_pid = gone.id().to_string();
    gone.wait().unwrap();
    let (code, lines) = send(&["kill", "10", &gone_pid]);
    assert_eq!(code, 1);
    assert!(lines[0].ends_with(" err=ESRCH"), "{lines:?}");
}

#[test]
fn usage_errors_exit_2() {
    let cases: &[(&str, &[&str])] = &[
        (SENDER, &[]),
        (SENDER, &["kill", "10"]),
        (SENDER, &["kill", "99", "1"]),
        // Signal 0 only probes: harmless even if the refusal regressed.
        (SENDER, &["kill", "0", "-1"]),
        (SENDER, &["kill", "0", "0"]),
        (SENDER, &["killpg", "0", "-5"]),
        (SENDER, &["frob", "10", "1"]),
        (SENDER, &["sigqueue", "10", "1", "x"]),
        (RECEIVER, &["--threads"]),
        (RECEIVER, &["--bogus"]),
        (RECEIVER, &["NOTASIG"]),
        (STORM, &[]),
        (STORM, &["--count", "1", "--forks", "1"]),
        (STORM, &["--count", "1", "--sig", "9"]),
    ];
    for (prog, args) in cases {
        let out = Command::new(prog).args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{prog} {args:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err:?}");
    }
}

#[test]
fn storm_sends_exactly_n() {
    let r = Running::start(STORM, &["--count", "5000", "--wait-stdin"]);
    let ready = r.expect("storm ready ");
    let receiver = num(&ready, "receiver");
    r.child.stdin.as_ref().unwrap().write_all(b"go\n").unwrap();
    let l = r.expect("storm sent=");
    assert_eq!(num(&l, "sent"), 5000);
    assert_eq!(num(&l, "sig"), 10);
    assert_eq!(num(&l, "receiver"), receiver);
    assert_eq!(num(&l, "sender"), r.pid() as i64);
    let received = num(&l, "received");
    assert!((1..=5000).contains(&received), "{l}");
    assert!(num(&l, "elapsed_ns") > 0);
    assert_eq!(r.wait(), 0);
}

#[test]
fn storm_rt_signals_all_arrive_with_noise() {
    let r = Running::start(STORM, &["--count", "2000", "--sig", "40", "--noise", "500"]);
    let noise = r.expect("noise sender=");
    r.expect("storm ready ");
    let l = r.expect("storm sent=");
    assert_eq!(num(&l, "sent"), 2000);
    // Real-time signals queue instead of coalescing.
    assert_eq!(num(&l, "received"), 2000);
    let done = r.expect("noise sent=");
    assert_eq!(num(&done, "sent"), 500);
    assert_eq!(num(&done, "sender"), num(&noise, "sender"));
    assert_eq!(num(&done, "receiver"), num(&noise, "receiver"));
    assert_eq!(r.wait(), 0);
}

#[test]
fn storm_forks() {
    let r = Running::start(STORM, &["--forks", "50"]);
    r.expect("storm ready ");
    let l = r.expect("forks=");
    assert_eq!(num(&l, "forks"), 50);
    assert_eq!(num(&l, "sent"), 50);
    assert_eq!(num(&l, "parent"), r.pid() as i64);
    assert_eq!(r.wait(), 0);
}
