//! Many boards at once (issue #14): `--host` repeated and `--hosts
//! FILE`, against two emulated boards (aarch64 and armv7, dropbear) at
//! the same time, and ports nobody listens on for boards that are down.
//!
//! The oracles are the boards' own: the pid of the short-lived shell
//! that sent each kill (its `$$`, printed on the board) and the
//! victim's pid there. Each kill must come back from the right board,
//! marked with that board's name, and nothing may be left on either.
//!
//! Boards need root (scripts/board.sh); without it the tests print why
//! and pass, unless `CI=true`, where they fail. The tests that need no
//! board (every board down, bad hosts files) run everywhere.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;
#[path = "../../tests/support/fleet.rs"]
mod support;

use realkernel::eventually;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};
use support::{board, exclusive, Board};

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
/// Generous: the first deploy builds the agent for each board.
const T: Duration = Duration::from_secs(300);
/// A port nobody listens on: a board that is down.
const DOWN: &str = "root@127.0.0.1:1";

fn can_run(test: &str) -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: the board tests need root; CI must run them");
    }
    eprintln!("SKIPPED {test}: not root");
    false
}

fn dest(b: &Board) -> String {
    format!("{}@{}:{}", b.user, b.host, b.port)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("whosent-fleet-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// One known_hosts file with every board's key.
fn known_hosts(boards: &[&Board]) -> PathBuf {
    let text: String = boards
        .iter()
        .map(|b| std::fs::read_to_string(&b.known_hosts).unwrap())
        .collect();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let p = scratch(&format!("known_hosts-{n}"));
    std::fs::write(&p, text).unwrap();
    p
}

/// whosent-deploy (`sub`: a subcommand) on `boards` and `more`
/// destinations, with the boards' key and host keys and no
/// ~/.ssh/config.
fn fleet_cmd_for(sub: &[&str], boards: &[&Board], more: &[&str]) -> Command {
    let mut c = Command::new(DEPLOY);
    c.args(sub);
    for b in boards {
        c.args(["--host", &dest(b)]);
    }
    for m in more {
        c.args(["--host", m]);
    }
    let key = boards
        .first()
        .map(|b| b.key.clone())
        .unwrap_or("/dev/null".into());
    c.args(["-F", "/dev/null", "-i"])
        .arg(&key)
        .arg("--known-hosts")
        .arg(known_hosts(boards));
    c
}

fn fleet_cmd(boards: &[&Board], more: &[&str]) -> Command {
    fleet_cmd_for(&[], boards, more)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fd {
    Out,
    Err,
}

/// A run whose stdout and stderr lines arrive on one channel, in the
/// order they were read.
struct Run {
    child: Child,
    lines: Receiver<(Fd, String)>,
    seen: Vec<(Fd, String)>,
    /// Where [`Run::until`] looks next, per fd.
    pos: [usize; 2],
    /// Its exit status, once waited for.
    code: Option<i32>,
}

impl Run {
    fn spawn(cmd: &mut Command) -> Run {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("whosent-deploy starts");
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for (fd, r) in [
            (Fd::Out, Box::new(out) as Box<dyn std::io::Read + Send>),
            (Fd::Err, Box::new(err)),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send((fd, l)).is_err() {
                        break;
                    }
                }
            });
        }
        Run {
            child,
            lines: rx,
            seen: Vec::new(),
            pos: [0, 0],
            code: None,
        }
    }

    /// The first line on `fd` after the last one this returned for
    /// `fd` that satisfies `f`, within `timeout`; lines of the other fd
    /// read meanwhile are kept for it.
    fn until(&mut self, fd: Fd, timeout: Duration, f: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + timeout;
        let at = fd as usize;
        loop {
            while self.pos[at] < self.seen.len() {
                let (lfd, l) = &self.seen[self.pos[at]];
                self.pos[at] += 1;
                if *lfd == fd && f(l) {
                    return l.clone();
                }
            }
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                break;
            };
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => break,
            }
        }
        panic!("no matching line within {timeout:?}; saw: {:#?}", self.seen)
    }

    /// Waits for exit, then reads what is left; the exit status.
    fn wait(&mut self, timeout: Duration) -> i32 {
        let end = Instant::now() + timeout;
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < end,
                "whosent-deploy did not exit within {timeout:?}; saw: {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        st
    }

    fn all(&self, fd: Fd) -> Vec<&str> {
        self.seen
            .iter()
            .filter(|l| l.0 == fd)
            .map(|l| l.1.as_str())
            .collect()
    }

    fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(l: &str) -> Value {
    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))
}

/// The human line of a kill of `victim` by the shell `sender` (with
/// its lineage on the board), marked with `board`.
fn kill_line(l: &str, board: &str, sender: i64, victim: i64) -> bool {
    l.starts_with(&format!("{board}: SIGTERM: sh({sender}) <- "))
        && l.ends_with(&format!(" -> sleep({victim})  code=SI_USER  delivered"))
}

fn clean(b: &Board) {
    assert!(
        eventually(Duration::from_secs(10), || b.leftovers().is_empty()),
        "left on {}: {}",
        b.name,
        b.leftovers()
    );
}

/// The two boards, each for this test alone (always in this order, so
/// two tests never wait for each other's second board).
fn two_boards() -> (Board, Board) {
    (board("aarch64", "plain"), board("armv7", "plain"))
}

/// The same live capture on an aarch64 and an armv7 board at once, in
/// JSON: each board's kill comes back once, with the sender its shell
/// printed and the board's `host`, and each board stops at its own
/// `--count 1`.
#[test]
fn two_boards_at_once_report_each_kill_with_its_sender_and_board_in_json() {
    if !can_run("fleet json") {
        return;
    }
    let (a, b) = two_boards();
    let (_ga, _gb) = (exclusive(&a.name), exclusive(&b.name));
    let (va, vb) = (a.victim(), b.victim());
    let mut run = Run::spawn(fleet_cmd(&[&a, &b], &[]).args([
        // A --pid must exist on the board: each victim exists on one.
        "--json", "--sig", "TERM", "--comm", "sleep", "--count", "1",
    ]));
    let mut ready = Vec::new();
    for _ in 0..2 {
        let r = json(&run.until(Fd::Out, T, |l| {
            l.contains(r#""type":"ready""#) || l.contains(r#""type":"error""#)
        }));
        assert_eq!(r["type"], "ready", "{r}");
        ready.push(r["host"].as_str().unwrap().to_string());
    }
    ready.sort();
    let mut want = vec![dest(&a), dest(&b)];
    want.sort();
    assert_eq!(ready, want);
    let sa = a.kill_from_shell("TERM", va);
    let sb = b.kill_from_shell("TERM", vb);
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(json(&run.until(Fd::Out, Duration::from_secs(30), |l| {
            l.contains(r#""type":"signal""#)
        })));
    }
    assert_eq!(run.wait(Duration::from_secs(30)), 0, "{:#?}", run.seen);
    for (board, sender, victim) in [(&a, sa, va), (&b, sb, vb)] {
        let e: Vec<&Value> = got.iter().filter(|e| e["host"] == dest(board)).collect();
        assert_eq!(e.len(), 1, "one signal from {}: {got:#?}", dest(board));
        assert_eq!(e[0]["sender"]["pid"], sender, "{}", e[0]);
        assert_eq!(e[0]["sender"]["comm"], "sh", "{}", e[0]);
        assert_eq!(e[0]["target"]["pid"], victim, "{}", e[0]);
        assert_eq!(e[0]["signame"], "SIGTERM");
    }
    // Every stdout line is a whole JSON record with its board's host.
    for l in run.all(Fd::Out) {
        let r = json(l);
        assert!(r["host"] == dest(&a) || r["host"] == dest(&b), "{l}");
    }
    // --json with nobody at stderr: no progress line.
    assert!(
        !run.all(Fd::Err)
            .iter()
            .any(|l| l.contains("boards tracing")),
        "{:#?}",
        run.all(Fd::Err)
    );
    clean(&a);
    clean(&b);
}

/// The same in human output: every line, on stdout and stderr, starts
/// with its board's name; the progress line counts the boards up; a
/// Ctrl-C stops both, and both boards are left clean.
#[test]
fn two_boards_at_once_in_human_output_say_which_board_and_stop_together_at_ctrl_c() {
    if !can_run("fleet human") {
        return;
    }
    let (a, b) = two_boards();
    let (_ga, _gb) = (exclusive(&a.name), exclusive(&b.name));
    let (va, vb) = (a.victim(), b.victim());
    let mut run = Run::spawn(fleet_cmd(&[&a, &b], &[]).args(["--sig", "TERM", "--comm", "sleep"]));
    run.until(Fd::Err, T, |l| l == "whosent: 2/2 boards tracing");
    for x in [&a, &b] {
        let tracing = format!("{d}: whosent: tracing on {d}: ", d = dest(x));
        assert!(
            run.all(Fd::Err).iter().any(|l| l.starts_with(&tracing)),
            "{tracing}: {:#?}",
            run.seen
        );
    }
    let sa = a.kill_from_shell("TERM", va);
    let sb = b.kill_from_shell("TERM", vb);
    for (x, sender, victim) in [(&a, sa, va), (&b, sb, vb)] {
        run.until(Fd::Out, Duration::from_secs(30), |l| {
            kill_line(l, &dest(x), sender, victim)
        });
    }
    let t = Instant::now();
    run.signal(libc::SIGINT);
    assert_eq!(run.wait(Duration::from_secs(10)), 0, "{:#?}", run.seen);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "Ctrl-C took {:?}",
        t.elapsed()
    );
    for l in run.all(Fd::Out) {
        assert!(
            l.starts_with(&format!("{}: ", dest(&a))) || l.starts_with(&format!("{}: ", dest(&b))),
            "a line without its board: {l}"
        );
    }
    for l in run.all(Fd::Err) {
        assert!(
            l.starts_with("whosent: ") && l.ends_with("boards tracing")
                || l.starts_with(&format!("{}: ", dest(&a)))
                || l.starts_with(&format!("{}: ", dest(&b))),
            "a stderr line without its board: {l}"
        );
    }
    for x in [&a, &b] {
        let end = format!(
            "{}: whosent: 1 signal(s), 0 lost; stopped: interrupted",
            dest(x)
        );
        assert!(
            run.all(Fd::Err).contains(&end.as_str()),
            "{end}: {:#?}",
            run.seen
        );
    }
    clean(&a);
    clean(&b);
}

/// One board of two down: the other's kill comes through, the down one
/// says so in one line with its name, and the status follows the
/// board that worked: 0 with a signal, 1 without.
#[test]
fn one_board_down_of_two_does_not_stop_the_other() {
    if !can_run("fleet one down") {
        return;
    }
    let a = board("aarch64", "plain");
    let _g = exclusive(&a.name);
    let v = a.victim();
    let mut run = Run::spawn(fleet_cmd(&[&a], &[DOWN]).args([
        "--json",
        "--sig",
        "TERM",
        "--pid",
        &v.to_string(),
        "--count",
        "1",
    ]));
    let down = format!(
        "{DOWN}: whosent-deploy: error: cannot connect to 127.0.0.1:1: connection refused (help: "
    );
    run.until(Fd::Err, T, |l| l.starts_with(&down));
    run.until(Fd::Out, T, |l| l.contains(r#""type":"ready""#));
    let sender = a.kill_from_shell("TERM", v);
    let e = json(&run.until(Fd::Out, Duration::from_secs(30), |l| {
        l.contains(r#""type":"signal""#)
    }));
    assert_eq!(e["sender"]["pid"], sender, "{e}");
    assert_eq!(e["host"], dest(&a), "{e}");
    assert_eq!(run.wait(Duration::from_secs(30)), 0, "{:#?}", run.seen);
    let errors: Vec<&str> = run
        .all(Fd::Err)
        .into_iter()
        .filter(|l| l.contains("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    clean(&a);

    // Nothing seen on the board that works: 1, not 2.
    let mut run = Run::spawn(fleet_cmd(&[&a], &[DOWN]).args([
        "--sig",
        "TERM",
        "--pid",
        "1",
        "--duration",
        "3",
    ]));
    assert_eq!(run.wait(T), 1, "{:#?}", run.seen);
    assert!(
        run.all(Fd::Err).iter().any(|l| l.starts_with(&down)),
        "{:#?}",
        run.seen
    );
    clean(&a);
}

/// Every board failing is an error: exit 2, one line per board with its
/// name, and the count of failures. No board needed.
#[test]
fn every_board_failing_exits_2_with_one_line_each() {
    let other = "root@127.0.0.1:2";
    let mut run = Run::spawn(fleet_cmd(&[], &[DOWN, other]).args(["--sig", "KILL"]));
    assert_eq!(run.wait(Duration::from_secs(30)), 2, "{:#?}", run.seen);
    assert!(run.all(Fd::Out).is_empty(), "{:#?}", run.seen);
    let err = run.all(Fd::Err);
    for d in [DOWN, other] {
        let mine: Vec<_> = err
            .iter()
            .filter(|l| l.starts_with(&format!("{d}: ")))
            .collect();
        assert_eq!(mine.len(), 1, "{d}: {err:#?}");
        assert!(
            mine[0].contains("whosent-deploy: error: cannot connect"),
            "{}",
            mine[0]
        );
    }
    assert_eq!(
        err.last(),
        Some(&"whosent: 0/2 boards tracing, 2 failed"),
        "{err:#?}"
    );
}

/// A hosts file: a bad line is named by file and line, and nothing
/// runs; `local` does not mix with boards.
#[test]
fn a_bad_hosts_file_line_is_one_error_naming_file_and_line() {
    let f = scratch("bad-hosts");
    std::fs::write(&f, "# the lab\nboard-a\n\nroot@board b  # two words\n").unwrap();
    let out = Command::new(DEPLOY)
        .arg("--hosts")
        .arg(&f)
        .args(["--sig", "KILL"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        format!(
            "whosent-deploy: error: {}:4: bad destination 'root@board b': the host contains characters a host name cannot have (help: one destination per line, [USER@]HOST[:PORT] or a ~/.ssh/config alias; `#` starts a comment)\n",
            f.display()
        )
    );
    for args in [
        &["--host", "local", "--host", "board-a"][..],
        &["--host", "board-a", "--host", "local"],
    ] {
        let out = Command::new(DEPLOY).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            String::from_utf8(out.stderr).unwrap(),
            "whosent-deploy: error: --host local traces this machine alone, not as one board of several (help: run it on its own, or give this machine over SSH (e.g. --host root@localhost))\n"
        );
    }
    let out = Command::new(DEPLOY)
        .args(["--hosts", "/nonexistent/lab.txt", "--sig", "KILL"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "whosent-deploy: error: --hosts /nonexistent/lab.txt: No such file or directory (os error 2) (help: give a readable file with one board per line)\n"
    );
    let out = Command::new(DEPLOY)
        .args(["--host", "a", "--host", "b", "--save", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--save FILE keeps one capture's stream"));
}

/// A hosts file with an ssh_config alias for a board and a board that
/// is down: the alias is what the board's lines are marked with.
#[test]
fn a_hosts_file_with_an_ssh_config_alias() {
    if !can_run("fleet hosts file") {
        return;
    }
    let a = board("aarch64", "plain");
    let _g = exclusive(&a.name);
    let config = scratch("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host lab-a\n    HostName {}\n    Port {}\n    User {}\n    IdentityFile {}\n",
            a.host,
            a.port,
            a.user,
            a.key.display()
        ),
    )
    .unwrap();
    let hosts = scratch("hosts");
    std::fs::write(&hosts, format!("# the lab\nlab-a\n\n{DOWN}   # down\n")).unwrap();
    let v = a.victim();
    let mut run = Run::spawn(
        Command::new(DEPLOY)
            .arg("--hosts")
            .arg(&hosts)
            .arg("-F")
            .arg(&config)
            .arg("--known-hosts")
            .arg(known_hosts(&[&a]))
            .args(["--sig", "TERM", "--pid", &v.to_string(), "--count", "1"]),
    );
    run.until(Fd::Err, T, |l| l == "whosent: 1/2 boards tracing, 1 failed");
    let sender = a.kill_from_shell("TERM", v);
    run.until(Fd::Out, Duration::from_secs(30), |l| {
        kill_line(l, "lab-a", sender, v)
    });
    assert_eq!(run.wait(Duration::from_secs(30)), 0, "{:#?}", run.seen);
    let err = run.all(Fd::Err);
    assert!(
        err.iter()
            .any(|l| l.starts_with(&format!("{DOWN}: whosent-deploy: error: cannot connect"))),
        "{err:#?}"
    );
    assert!(
        err.iter().any(|l| l.starts_with(&format!(
            "lab-a: whosent: connected to {}@{}:{} ",
            a.user, a.host, a.port
        ))),
        "{err:#?}"
    );
    clean(&a);
}

/// doctor on several boards: each board's table, every line marked;
/// the down one's error; the worst status (2).
#[test]
fn doctor_on_two_boards_marks_each_table() {
    if !can_run("fleet doctor") {
        return;
    }
    let a = board("aarch64", "plain");
    let _g = exclusive(&a.name);
    let mut run = Run::spawn(&mut fleet_cmd_for(&["doctor"], &[&a], &[DOWN]));
    assert_eq!(run.wait(T), 2, "{:#?}", run.seen);
    let out = run.all(Fd::Out);
    assert_eq!(
        out.first().copied(),
        Some(format!("{d}: whosent doctor: {d}", d = dest(&a)).as_str()),
        "{out:#?}"
    );
    assert!(
        out.contains(&format!("{}: an ftrace deploy can work on this board", dest(&a)).as_str()),
        "{out:#?}"
    );
    assert!(
        out.iter()
            .all(|l| l.starts_with(&format!("{}: ", dest(&a)))),
        "{out:#?}"
    );
    let err = run.all(Fd::Err);
    assert!(
        err.iter()
            .any(|l| l.starts_with(&format!("{DOWN}: whosent-deploy: error:"))),
        "{err:#?}"
    );
    assert!(
        !err.iter().any(|l| l.contains("boards tracing")),
        "{err:#?}"
    );
}

/// The TCP connections (local port, remote port, socket inode) of
/// /proc/net/tcp.
fn tcp_sockets() -> Vec<(u16, u16, u64)> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
            Some((port(f.get(1)?)?, port(f.get(2)?)?, f.get(9)?.parse().ok()?))
        })
        .collect()
}

/// The remote ports of the TCP connections process `pid` holds.
fn remote_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let l = std::fs::read_link(e.path()).ok()?;
                    let s = l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
                    s.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    tcp_sockets()
        .into_iter()
        .filter(|(_, _, i)| inodes.contains(i))
        .map(|(_, remote, _)| remote)
        .collect()
}

/// Both boards through one jump host (the local OpenSSH server, `-J`):
/// each board's kill comes back with its sender, and while the capture
/// runs whosent-deploy holds connections to the jump host only, none to
/// a board (the kernel's socket table says so).
#[test]
fn a_fleet_through_a_jump_host() {
    if !can_run("fleet jump host") {
        return;
    }
    let gw = support::sshd();
    let (a, b) = two_boards();
    let (_ga, _gb) = (exclusive(&a.name), exclusive(&b.name));
    let config = scratch("ssh_config-gw");
    std::fs::write(
        &config,
        format!(
            "Host gw\n    HostName 127.0.0.1\n    Port {}\n    User {}\n    IdentityFile {}\n",
            gw.port,
            gw.user,
            gw.key.display()
        ),
    )
    .unwrap();
    let (va, vb) = (a.victim(), b.victim());
    let mut cmd = Command::new(DEPLOY);
    cmd.args(["--host", &dest(&a), "--host", &dest(&b), "-J", "gw", "-F"])
        .arg(&config)
        .arg("-i")
        .arg(&a.key)
        .arg("--known-hosts")
        .arg(known_hosts(&[&a, &b, &gw]))
        .args(["--json", "--sig", "TERM", "--comm", "sleep", "--count", "1"]);
    let mut run = Run::spawn(&mut cmd);
    for _ in 0..2 {
        let r = json(&run.until(Fd::Out, T, |l| {
            l.contains(r#""type":"ready""#) || l.contains(r#""type":"error""#)
        }));
        assert_eq!(r["type"], "ready", "{r}");
    }
    let ports = remote_ports(run.child.id());
    assert!(
        ports.contains(&gw.port),
        "no connection to the jump host: {ports:?}"
    );
    assert!(
        !ports.contains(&a.port) && !ports.contains(&b.port),
        "a direct connection to a board: {ports:?}"
    );
    for x in [&a, &b] {
        let via = format!(
            "{}: whosent: connected to {} via {}@127.0.0.1:{} (",
            dest(x),
            dest(x),
            gw.user,
            gw.port
        );
        assert!(
            run.all(Fd::Err).iter().any(|l| l.starts_with(&via)),
            "{via}: {:#?}",
            run.seen
        );
    }
    let sa = a.kill_from_shell("TERM", va);
    let sb = b.kill_from_shell("TERM", vb);
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(json(&run.until(Fd::Out, Duration::from_secs(30), |l| {
            l.contains(r#""type":"signal""#)
        })));
    }
    assert_eq!(run.wait(Duration::from_secs(30)), 0, "{:#?}", run.seen);
    for (x, sender) in [(&a, sa), (&b, sb)] {
        let e: Vec<&Value> = got.iter().filter(|e| e["host"] == dest(x)).collect();
        assert_eq!(e.len(), 1, "{got:#?}");
        assert_eq!(e[0]["sender"]["pid"], sender, "{}", e[0]);
    }
    clean(&a);
    clean(&b);
}

/// Ctrl-C while one board traces and another still waits for its SSH
/// handshake (a port that accepts and never answers): both stop within
/// a second or two, the waiting one says it was interrupted, the
/// tracing one ends as a single run does, and its board is clean.
#[test]
fn ctrl_c_stops_a_tracing_board_and_a_connecting_one_together() {
    if !can_run("fleet ctrl-c while connecting") {
        return;
    }
    let a = board("aarch64", "plain");
    let _g = exclusive(&a.name);
    let mute = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung = format!("root@127.0.0.1:{}", mute.local_addr().unwrap().port());
    let mut cmd = fleet_cmd(&[&a], &[&hung]);
    cmd.args([
        "--connect-timeout",
        "120",
        "--sig",
        "TERM",
        "--comm",
        "sleep",
    ]);
    let mut run = Run::spawn(&mut cmd);
    run.until(Fd::Err, T, |l| l == "whosent: 1/2 boards tracing");
    let t = Instant::now();
    run.signal(libc::SIGINT);
    assert_eq!(run.wait(Duration::from_secs(10)), 1, "{:#?}", run.seen);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "Ctrl-C took {:?}",
        t.elapsed()
    );
    let err = run.all(Fd::Err);
    let interrupted = format!(
        "{hung}: whosent-deploy: error: interrupted while connecting; nothing was traced (help: "
    );
    assert!(err.iter().any(|l| l.starts_with(&interrupted)), "{err:#?}");
    let end = format!(
        "{}: whosent: 0 signal(s), 0 lost; stopped: interrupted",
        dest(&a)
    );
    assert!(err.contains(&end.as_str()), "{err:#?}");
    drop(mute);
    clean(&a);
}

/// What a detached capture may leave on a board: instances, capture
/// and upload directories, agent processes, probes.
fn detached_leftovers(b: &Board) -> String {
    let procs = b.ssh("for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = whosent-agent ] && echo \"process ${p#/proc/}\"; done; grep whosent /sys/kernel/tracing/uprobe_events 2>/dev/null; true");
    format!("{}{}", b.leftovers(), procs.trim())
}

/// whosent-deploy `sub` on the boards and `more`, run to its end.
fn detached(sub: &str, boards: &[&Board], more: &[&str], extra: &[&str]) -> Run {
    let mut run = Run::spawn(fleet_cmd_for(&[sub], boards, more).args(extra));
    run.code = Some(run.wait(T));
    run
}

/// The issue's first test, on an aarch64 and an armv7 board at once:
/// a `start` killed -9 half way leaves nothing that `status` and `stop`
/// do not find; `start` on both (one id, each line marked, the progress
/// line); a
/// `collect --follow` on both killed with SIGKILL while it follows; the
/// kills made later by a short-lived shell on each board; one `collect`
/// from both gives each kill with the `$$` its board's shell printed
/// and its board's name (JSON `host`, human prefix); `status` on both;
/// `stop` on both leaves nothing on either; then both boards have no
/// capture: every board failed, exit 2.
#[test]
fn a_detached_capture_on_two_boards_outlives_a_killed_whosent_deploy() {
    if !can_run("fleet detached") {
        return;
    }
    let (a, b) = two_boards();
    let (_ga, _gb) = (exclusive(&a.name), exclusive(&b.name));
    let (va, vb) = (a.victim(), b.victim());
    // A start killed -9 once one board printed its id (the other may be
    // anywhere from connecting to launched): what it left, `status`
    // lists and `stop` removes, on either board.
    let mut killed = Run::spawn(
        fleet_cmd_for(&["start"], &[&a, &b], &[]).args(["--sig", "TERM", "--comm", "sleep"]),
    );
    let first = killed.until(Fd::Out, T, |_| true);
    killed.signal(libc::SIGKILL);
    assert_eq!(killed.wait(Duration::from_secs(10)), -1);
    let (_, old) = first.rsplit_once(": ").unwrap();
    let st = detached("status", &[&a, &b], &[], &["--json"]);
    let listed: Vec<Value> = st.all(Fd::Out).iter().map(|l| json(l)).collect();
    assert!(!listed.is_empty(), "{:#?}", st.seen);
    let states: Vec<String> = listed
        .iter()
        .map(|c| format!("{} {}", c["host"], c["state"]))
        .collect();
    eprintln!("the killed start left: {states:?}");
    for c in &listed {
        assert_eq!(c["id"], old, "{c}");
        assert!(
            ["alive", "starting", "died"].contains(&c["state"].as_str().unwrap()),
            "{c}"
        );
    }
    let stop = detached("stop", &[&a, &b], &[], &["--id", old]);
    for c in &listed {
        let h = c["host"].as_str().unwrap();
        assert!(
            !stop
                .all(Fd::Err)
                .iter()
                .any(|l| l.starts_with(&format!("{h}: whosent-deploy: error"))),
            "{:#?}",
            stop.seen
        );
    }
    for x in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(10), || detached_leftovers(x).is_empty()),
            "the killed start left on {}: {}",
            x.name,
            detached_leftovers(x)
        );
    }
    let start = detached(
        "start",
        &[&a, &b],
        &[],
        &["--sig", "TERM", "--comm", "sleep"],
    );
    assert_eq!(start.code, Some(0), "{:#?}", start.seen);
    let ids: Vec<(String, String)> = start
        .all(Fd::Out)
        .iter()
        .map(|l| {
            let (board, id) = l.rsplit_once(": ").unwrap_or_else(|| panic!("{l}"));
            (board.to_string(), id.to_string())
        })
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let id = ids[0].1.clone();
    assert!(
        id.len() == 8 && ids.iter().all(|(_, i)| *i == id),
        "one id on both: {ids:?}"
    );
    let mut on: Vec<&str> = ids.iter().map(|(b, _)| b.as_str()).collect();
    on.sort();
    let mut want = vec![dest(&a), dest(&b)];
    want.sort();
    assert_eq!(on, want);
    let err = start.all(Fd::Err);
    assert_eq!(
        err.iter()
            .filter(|l| l.starts_with("whosent: ") && l.contains("boards recording"))
            .copied()
            .collect::<Vec<_>>(),
        [
            "whosent: 1/2 boards recording",
            "whosent: 2/2 boards recording"
        ],
        "{err:#?}"
    );
    // A collect --follow on both, killed -9 once it follows both.
    let mut follow = Run::spawn(
        fleet_cmd_for(&["collect"], &[&a, &b], &[]).args(["--json", "--follow", "--id", &id]),
    );
    for _ in 0..2 {
        follow.until(Fd::Out, T, |l| l.contains(r#""type":"ready""#));
    }
    follow.signal(libc::SIGKILL);
    assert_eq!(follow.wait(Duration::from_secs(10)), -1);
    // Both captures go on, the kills come after.
    let sa = a.kill_from_shell("TERM", va);
    let sb = b.kill_from_shell("TERM", vb);
    let mut got = None;
    let t0 = Instant::now();
    while got.is_none() && t0.elapsed() < Duration::from_secs(60) {
        let c = detached("collect", &[&a, &b], &[], &["--json", "--id", &id]);
        let sig: Vec<Value> = c
            .all(Fd::Out)
            .iter()
            .map(|l| json(l))
            .filter(|r| r["type"] == "signal")
            .collect();
        if sig.len() == 2 {
            assert_eq!(c.code, Some(0), "{:#?}", c.seen);
            got = Some(sig);
        }
    }
    let got = got.expect("both kills were never collected");
    for (x, sender, victim) in [(&a, sa, va), (&b, sb, vb)] {
        let e: Vec<&Value> = got.iter().filter(|e| e["host"] == dest(x)).collect();
        assert_eq!(e.len(), 1, "one kill from {}: {got:#?}", dest(x));
        assert_eq!(e[0]["sender"]["pid"], sender, "{}", e[0]);
        assert_eq!(e[0]["sender"]["comm"], "sh", "{}", e[0]);
        assert_eq!(e[0]["target"]["pid"], victim, "{}", e[0]);
    }
    // The same in human output: each line marked with its board.
    let c = detached("collect", &[&a, &b], &[], &["--id", &id]);
    assert_eq!(c.code, Some(0), "{:#?}", c.seen);
    for (x, sender, victim) in [(&a, sa, va), (&b, sb, vb)] {
        assert!(
            c.all(Fd::Out)
                .iter()
                .any(|l| kill_line(l, &dest(x), sender, victim)),
            "{:#?}",
            c.seen
        );
    }
    for l in c.all(Fd::Out).iter().chain(c.all(Fd::Err).iter()) {
        assert!(
            l.starts_with(&format!("{}: ", dest(&a))) || l.starts_with(&format!("{}: ", dest(&b))),
            "a line without its board: {l}"
        );
    }
    let st = detached("status", &[&a, &b], &[], &["--json"]);
    assert_eq!(st.code, Some(0), "{:#?}", st.seen);
    let caps: Vec<Value> = st.all(Fd::Out).iter().map(|l| json(l)).collect();
    assert_eq!(caps.len(), 2, "{caps:#?}");
    for x in [&a, &b] {
        let c: Vec<&Value> = caps.iter().filter(|c| c["host"] == dest(x)).collect();
        assert_eq!(c.len(), 1, "{caps:#?}");
        assert_eq!(
            (&c[0]["id"], &c[0]["state"], &c[0]["signals"]),
            (&Value::from(id.as_str()), &"alive".into(), &1.into()),
            "{}",
            c[0]
        );
    }
    // Both collected already: stop prints nothing new, exit 1.
    let stop = detached("stop", &[&a, &b], &[], &["--id", &id]);
    assert_eq!(stop.code, Some(1), "{:#?}", stop.seen);
    for x in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(10), || detached_leftovers(x).is_empty()),
            "left on {}: {}",
            x.name,
            detached_leftovers(x)
        );
    }
    // The capture is gone from both: every board failed, one line each.
    let again = detached("collect", &[&a, &b], &[], &["--id", &id]);
    assert_eq!(again.code, Some(2), "{:#?}", again.seen);
    for x in [&a, &b] {
        let no = format!(
            "{d}: whosent-deploy: error: no capture {id} on {d} in /tmp (it has none) (help: ",
            d = dest(x)
        );
        assert!(
            again.all(Fd::Err).iter().any(|l| l.starts_with(&no)),
            "{no}: {:#?}",
            again.seen
        );
    }
}

/// One board of two down for `start`, `collect` and `stop`: the other's
/// capture starts and its kill comes through with its sender; the down
/// one is one error line with its name each time; start's progress
/// says 1/2 up, 1 failed.
#[test]
fn a_detached_capture_with_one_board_of_two_down() {
    if !can_run("fleet detached one down") {
        return;
    }
    let a = board("aarch64", "plain");
    let _g = exclusive(&a.name);
    let v = a.victim();
    let down = format!(
        "{DOWN}: whosent-deploy: error: cannot connect to 127.0.0.1:1: connection refused (help: "
    );
    let one_down = |r: &Run| {
        let errors: Vec<&str> = r
            .all(Fd::Err)
            .into_iter()
            .filter(|l| l.contains("error"))
            .collect();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with(&down), "{errors:#?}");
    };
    let start = detached(
        "start",
        &[&a],
        &[DOWN],
        &["--sig", "TERM", "--pid", &v.to_string()],
    );
    assert_eq!(start.code, Some(0), "{:#?}", start.seen);
    one_down(&start);
    let out = start.all(Fd::Out);
    assert_eq!(out.len(), 1, "{out:#?}");
    let id = out[0]
        .strip_prefix(&format!("{}: ", dest(&a)))
        .unwrap_or_else(|| panic!("{out:#?}"))
        .to_string();
    assert_eq!(
        start
            .all(Fd::Err)
            .iter()
            .rev()
            .find(|l| l.contains("boards recording")),
        Some(&"whosent: 1/2 boards recording, 1 failed"),
        "{:#?}",
        start.seen
    );
    let sender = a.kill_from_shell("TERM", v);
    let mut got = None;
    let t0 = Instant::now();
    while got.is_none() && t0.elapsed() < Duration::from_secs(60) {
        let c = detached("collect", &[&a], &[DOWN], &["--json", "--id", &id]);
        let sig: Vec<Value> = c
            .all(Fd::Out)
            .iter()
            .map(|l| json(l))
            .filter(|r| r["type"] == "signal")
            .collect();
        if !sig.is_empty() {
            assert_eq!(c.code, Some(0), "{:#?}", c.seen);
            one_down(&c);
            got = Some(sig);
        }
    }
    let got = got.expect("the kill was never collected");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["sender"]["pid"], sender, "{}", got[0]);
    assert_eq!(got[0]["host"], dest(&a), "{}", got[0]);
    let stop = detached("stop", &[&a], &[DOWN], &["--id", &id]);
    assert_eq!(stop.code, Some(1), "{:#?}", stop.seen);
    one_down(&stop);
    assert!(
        eventually(Duration::from_secs(10), || detached_leftovers(&a)
            .is_empty()),
        "left on the board: {}",
        detached_leftovers(&a)
    );
}

/// `start` on boards that are all down: one line each with its name,
/// the progress line's count of failures, nothing on stdout, exit 2;
/// `status` on them exits 2 too. No board needed.
#[test]
fn a_detached_start_on_two_down_boards_exits_2() {
    let other = "root@127.0.0.1:2";
    for sub in ["start", "status"] {
        let r = detached(sub, &[], &[DOWN, other], &[]);
        assert_eq!(r.code, Some(2), "{:#?}", r.seen);
        assert!(r.all(Fd::Out).is_empty(), "{:#?}", r.seen);
        let err = r.all(Fd::Err);
        for d in [DOWN, other] {
            let mine: Vec<_> = err
                .iter()
                .filter(|l| l.starts_with(&format!("{d}: whosent-deploy: error: cannot connect")))
                .collect();
            assert_eq!(mine.len(), 1, "{d}: {err:#?}");
        }
        let progress: Vec<_> = err.iter().filter(|l| l.contains("boards")).collect();
        match sub {
            "start" => assert_eq!(
                progress.last(),
                Some(&&"whosent: 0/2 boards recording, 2 failed"),
                "{err:#?}"
            ),
            _ => assert!(progress.is_empty(), "{err:#?}"),
        }
    }
}
