//! Issue #13, items 4 to 7, as a user meets them: the real binaries
//! with stdout on /dev/full or a pipe whose reader went away, real
//! signals to whosent-deploy and to its agent, and an agent that dies.
//! What is checked is what the user sees (the one error line, the exit
//! status, the end record's reason) and what is left behind (the
//! agent's process and its ftrace instance).

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
const T: Duration = Duration::from_secs(10);
/// A duration no test waits for: a capture that ends did so for its
/// own reason.
const LONG: &str = "60";

fn agent() -> std::path::PathBuf {
    sibling(DEPLOY, "whosent-agent")
}

fn full() -> Stdio {
    Stdio::from(File::options().write(true).open("/dev/full").unwrap())
}

/// A pipe whose reader is already gone: writes fail with EPIPE.
fn closed_pipe() -> Stdio {
    let (r, w) = std::io::pipe().unwrap();
    drop(r);
    Stdio::from(w)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The program's exit code, or 128 + the signal that killed it.
fn code(st: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0))
}

/// Asserts the one-line error whosent prints for a failed stdout.
fn one_write_error(who: &str, err: &str) {
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(lines.len(), 1, "{who}: {err}");
    assert!(
        lines[0].contains(": error: cannot write to stdout: No space left on device")
            && lines[0].contains("(help: "),
        "{who}: {err}"
    );
    assert!(!err.contains("panicked"), "{who}: {err}");
}

/// Every command that only prints: an error and exit 2 on a full
/// stdout, and exit 0 (no panic) when the reader went away.
#[test]
fn print_paths_panicked_on_a_full_stdout() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/host-6.18/trace-cmd-report.txt"
    );
    let deploy: &[&[&str]] = &[
        &["completions", "bash"],
        &["man"],
        &["stap-script", "--sig", "KILL"],
        &["--help"],
        &["--version"],
        &["parse", fixture],
        &["parse", "--json", fixture],
    ];
    let agent_args: &[&[&str]] = &[&["--help"], &["--version"]];
    let runs = deploy
        .iter()
        .map(|a| (std::path::PathBuf::from(DEPLOY), *a))
        .chain(agent_args.iter().map(|a| (agent(), *a)));
    for (prog, args) in runs {
        let who = format!("{} {}", prog.display(), args.join(" "));
        let out = Command::new(&prog)
            .args(args)
            .stdout(full())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(code(out.status), 2, "{who} >/dev/full: {err}");
        one_write_error(&who, &err);
        let out = Command::new(&prog)
            .args(args)
            .stdout(closed_pipe())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        // parse: no signal was written, so nothing was reported.
        let quiet = if args[0] == "parse" { 1 } else { 0 };
        assert_eq!(code(out.status), quiet, "{who} into a closed pipe: {err}");
        assert!(!err.contains("panicked"), "{who}: {err}");
    }
}

/// An error whose line cannot be written (stderr on /dev/full) still
/// exits 2: eprintln! panicked (exit 101).
#[test]
fn an_error_line_on_a_full_stderr_panicked() {
    let runs: [(std::path::PathBuf, &[&str]); 2] = [
        (DEPLOY.into(), &["completions", "nope"]),
        (agent(), &["--bogus"]),
    ];
    for (prog, args) in runs {
        let out = Command::new(&prog)
            .args(args)
            .stdout(Stdio::null())
            .stderr(full())
            .output()
            .unwrap();
        assert_eq!(code(out.status), 2, "{} {args:?}", prog.display());
    }
}

/// A stderr whose reader went away (a terminal closed with SIGHUP, an
/// SSH session gone) made the progress and summary lines panic (exit
/// 101) at the end of a capture; they are dropped instead.
#[test]
fn a_closed_stderr_panicked_at_the_end_of_a_capture() {
    if !real_kernel("closed stderr") {
        return;
    }
    let (_r, rpid) = receiver();
    let out = Command::new(DEPLOY)
        .args(["--host", "local", "--sig", "USR1", "--pid"])
        .arg(rpid.to_string())
        .args(["--duration", "0.5"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(code(out.status), 1);
}

/// A child whose stderr lines arrive on a channel; stdout as given.
struct Run {
    child: Child,
    err: Receiver<String>,
    seen: Vec<String>,
}

impl Run {
    fn spawn(cmd: &mut Command, stdout: Stdio) -> Run {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, err) = channel();
        let e = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(e).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Run {
            child,
            err,
            seen: Vec::new(),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stderr line containing `what`.
    fn said(&mut self, what: &str) {
        let end = Instant::now() + T;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.err.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(what);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no '{what}' on stderr; saw {:#?}", self.seen)
    }

    /// Waits for the exit (within `within`); the status and all of stderr.
    fn exit(&mut self, within: Duration) -> (i32, String) {
        let end = Instant::now() + within;
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < end,
                "still running after {within:?}; stderr {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.err.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        (code(st), self.seen.join("\n"))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn receiver() -> (Proc, i32) {
    let mut r = Proc::spawn(Command::new(sibling(DEPLOY, "test_receiver")).arg("10"));
    let pid = num(&r.until(T, |l| l.starts_with("ready")), "pid") as i32;
    wait_comm(pid, "test_receiver");
    (r, pid)
}

fn usr1(pid: i32) {
    unsafe { libc::kill(pid, libc::SIGUSR1) };
}

/// The local agent under whosent-deploy `pid`, once it runs; `None`
/// if whosent-deploy exited first.
fn try_agent_of(pid: i32) -> Option<i32> {
    let end = Instant::now() + T;
    while Instant::now() < end {
        let Ok(kids) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) else {
            return None;
        };
        let agent = kids
            .split_whitespace()
            .filter_map(|k| k.parse::<i32>().ok())
            .find(|k| {
                std::fs::read_to_string(format!("/proc/{k}/comm"))
                    .is_ok_and(|c| c.trim() == "whosent-agent")
            });
        if agent.is_some() {
            return agent;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

fn agent_of(pid: i32) -> i32 {
    try_agent_of(pid).unwrap_or_else(|| panic!("no whosent-agent under {pid}"))
}

/// The agent `pid` is gone and so is its ftrace instance
/// (`whosent-PID-…`).
fn gone(pid: i32) {
    assert!(
        eventually(T, || !std::path::Path::new(&format!("/proc/{pid}"))
            .exists()),
        "agent {pid} still runs"
    );
    let prefix = format!("whosent-{pid}-");
    let left: Vec<String> = std::fs::read_dir("/sys/kernel/tracing/instances")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `whosent-deploy --host local --pid P >/dev/full` exited 0 with
/// nothing written, and with --json exited 1 without a word. Now: one
/// error line, exit 2, at once (not at --duration), agent stopped and
/// its instance removed.
#[test]
fn a_full_stdout_was_swallowed_by_a_local_capture() {
    if !real_kernel("full stdout, local") {
        return;
    }
    let (_r, rpid) = receiver();
    let p = rpid.to_string();
    for json in [false, true] {
        let mut cmd = Command::new(DEPLOY);
        cmd.args([
            "--host",
            "local",
            "--sig",
            "USR1",
            "--pid",
            &p,
            "--duration",
            LONG,
        ]);
        if json {
            // The ready record is the first write: it fails.
            cmd.arg("--json");
        }
        let start = Instant::now();
        let mut d = Run::spawn(&mut cmd, full());
        // With --json it may be gone before it is seen.
        let apid = try_agent_of(d.pid());
        assert!(apid.is_some() || json, "no agent");
        if !json {
            d.said("whosent: tracing");
            usr1(rpid);
        }
        let (st, err) = d.exit(T);
        assert_eq!(st, 2, "json {json}: {err}");
        one_write_error("whosent-deploy", &err);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
        if let Some(apid) = apid {
            gone(apid);
        }
    }
}

/// The agent alone on a board, `>/dev/full`: an error and exit 2, its
/// instance removed, never a run that writes nothing until --duration.
#[test]
fn a_full_stdout_was_swallowed_by_the_agent_alone() {
    if !real_kernel("full stdout, agent") {
        return;
    }
    let (_r, rpid) = receiver();
    let p = rpid.to_string();
    // The ready record is its first write: it fails.
    let mut a = Run::spawn(
        Command::new(agent()).args(["--sig", "USR1", "--pid", &p, "--duration", LONG]),
        full(),
    );
    let apid = a.pid();
    let (st, err) = a.exit(T);
    assert_eq!(st, 2, "{err}");
    one_write_error("whosent-agent", &err);
    gone(apid);
}

/// A closed stdout (`| head -1`) ended as `stdin_closed`, or not at all
/// until the next write. It ends the capture quietly, at once, as
/// `output_closed`; the signal written counts (exit 0).
#[test]
fn a_closed_stdout_ended_as_stdin_closed() {
    if !real_kernel("closed stdout") {
        return;
    }
    let (_r, rpid) = receiver();
    let p = rpid.to_string();
    let (r, w) = std::io::pipe().unwrap();
    let mut d = Run::spawn(
        Command::new(DEPLOY).args([
            "--host",
            "local",
            "--sig",
            "USR1",
            "--pid",
            &p,
            "--duration",
            LONG,
        ]),
        Stdio::from(w),
    );
    let apid = agent_of(d.pid());
    d.said("whosent: tracing");
    usr1(rpid);
    let mut line = String::new();
    let mut r = BufReader::new(r);
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("SIGUSR1: "), "{line}");
    drop(r);
    let (st, err) = d.exit(T);
    assert_eq!(st, 0, "{err}");
    assert!(
        err.contains("whosent: 1 signal(s), 0 lost; stopped: output closed"),
        "{err}"
    );
    assert!(!err.contains("error"), "{err}");
    gone(apid);

    // The agent alone: it sees the reader go even when it writes nothing.
    let (r, w) = std::io::pipe().unwrap();
    let mut a = Run::spawn(
        Command::new(agent()).args(["--sig", "USR1", "--pid", &p, "--duration", LONG]),
        Stdio::from(w),
    );
    let mut line = String::new();
    let mut r = BufReader::new(r);
    r.read_line(&mut line).unwrap();
    assert!(line.contains(r#""type":"ready""#), "{line}");
    drop(r);
    let (st, err) = a.exit(Duration::from_secs(3));
    assert_eq!(st, 1, "{err}");
    assert!(!err.contains("error"), "{err}");
    gone(a.pid());
}

const STOPS: [(i32, &str); 3] = [
    (libc::SIGINT, "interrupted"),
    (libc::SIGTERM, "terminated"),
    (libc::SIGHUP, "hangup"),
];

/// INT, TERM and HUP to whosent-deploy all ended as `stdin_closed` (the
/// agent only sees its stdin close). The end record says which.
#[test]
fn signals_to_whosent_deploy_ended_as_stdin_closed() {
    if !real_kernel("end reasons, deploy") {
        return;
    }
    let (_r, rpid) = receiver();
    let p = rpid.to_string();
    for (sig, reason) in STOPS {
        let mut d = Proc::spawn(Command::new(DEPLOY).args([
            "--host",
            "local",
            "--json",
            "--sig",
            "USR1",
            "--pid",
            &p,
            "--duration",
            LONG,
        ]));
        d.until(T, |l| l.contains(r#""type":"ready""#));
        d.signal(sig);
        let end = d.until(T, |l| l.contains(r#""type":"end""#));
        assert!(end.contains(&format!(r#""reason":"{reason}""#)), "{end}");
        assert_eq!(d.wait(T), 1);
    }
}

/// The same signals sent to the agent itself (a board's init stopping
/// it), alone and under whosent-deploy (the stream's END reason codes).
#[test]
fn signals_to_the_agent_end_as_what_they_were() {
    if !real_kernel("end reasons, agent") {
        return;
    }
    let (_r, rpid) = receiver();
    let p = rpid.to_string();
    for (sig, reason) in STOPS {
        let mut a = Proc::spawn(Command::new(agent()).args(["--sig", "USR1", "--pid", &p]));
        a.until(T, |l| l.contains(r#""type":"ready""#));
        a.signal(sig);
        let end = a.until(T, |l| l.contains(r#""type":"end""#));
        assert!(
            end.contains(&format!(r#""reason":"{reason}""#)),
            "alone: {end}"
        );
        assert_eq!(a.wait(T), 1);

        let mut d = Proc::spawn(
            Command::new(DEPLOY).args(["--host", "local", "--json", "--sig", "USR1", "--pid", &p]),
        );
        d.until(T, |l| l.contains(r#""type":"ready""#));
        let apid = agent_of(d.pid());
        unsafe { libc::kill(apid, sig) };
        let end = d.until(T, |l| l.contains(r#""type":"end""#));
        assert!(
            end.contains(&format!(r#""reason":"{reason}""#)),
            "streamed: {end}"
        );
        assert_eq!(d.wait(T), 1);
        gone(apid);
    }
}

/// A static x86_64 ELF that writes `say` on stderr and exits with
/// `status`: an "agent" that dies at once and passes the ELF check that
/// `WHOSENT_AGENT` gets (`/bin/false` itself is refused by it now).
fn dying_agent(path: &std::path::Path, say: &[u8], status: u8) {
    let mut code: Vec<u8> = Vec::new();
    code.extend([0xb8, 1, 0, 0, 0]); // mov eax, 1 (write)
    code.extend([0xbf, 2, 0, 0, 0]); // mov edi, 2
    code.extend([0x48, 0x8d, 0x35, 19, 0, 0, 0]); // lea rsi, [rip + 19]: the text
    code.extend([0xba, say.len() as u8, 0, 0, 0]); // mov edx, len
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0xb8, 60, 0, 0, 0]); // mov eax, 60 (exit)
    code.extend([0xbf, status, 0, 0, 0]); // mov edi, status
    code.extend([0x0f, 0x05]); // syscall
    code.extend(say);
    let total = (64 + 56 + code.len()) as u64;
    let base: u64 = 0x400000;
    let mut f: Vec<u8> = Vec::new();
    f.extend(b"\x7fELF");
    f.extend([2, 1, 1, 0]);
    f.extend([0; 8]);
    f.extend(2u16.to_le_bytes()); // ET_EXEC
    f.extend(62u16.to_le_bytes()); // EM_X86_64
    f.extend(1u32.to_le_bytes());
    f.extend((base + 120).to_le_bytes()); // entry
    f.extend(64u64.to_le_bytes()); // phoff
    f.extend(0u64.to_le_bytes()); // shoff
    f.extend(0u32.to_le_bytes());
    f.extend(64u16.to_le_bytes());
    f.extend(56u16.to_le_bytes());
    f.extend(1u16.to_le_bytes());
    f.extend([0; 6]);
    f.extend(1u32.to_le_bytes()); // PT_LOAD
    f.extend(5u32.to_le_bytes()); // R + X
    f.extend(0u64.to_le_bytes());
    f.extend(base.to_le_bytes());
    f.extend(base.to_le_bytes());
    f.extend(total.to_le_bytes());
    f.extend(total.to_le_bytes());
    f.extend(0x1000u64.to_le_bytes());
    f.extend(code);
    std::fs::write(path, f).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `WHOSENT_AGENT=/bin/false whosent-deploy --host local` gave exit 2
/// and no message, and an agent's last words before it exited were
/// lost among nothing. Both say the agent exited, with what status
/// and its last stderr line.
#[cfg(target_arch = "x86_64")]
#[test]
fn an_agent_that_exits_at_once_was_silent() {
    let dir = std::env::temp_dir().join(format!("whosent-died-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mute = dir.join("false");
    dying_agent(&mute, b"", 1);
    let talks = dir.join("agent");
    dying_agent(&talks, b"first\ncannot go on: boom\n", 3);
    for (agent, says) in [
        (
            mute,
            "the agent exited with status 1 before the capture started, without its end record; it wrote nothing on stderr",
        ),
        (
            talks,
            "the agent exited with status 3 before the capture started, without its end record; its last line on stderr: cannot go on: boom",
        ),
    ] {
        let out = Command::new(DEPLOY)
            .args(["--host", "local"])
            .env("WHOSENT_AGENT", &agent)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(code(out.status), 2, "{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.contains(": error: ")).collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(errors[0].starts_with("whosent-deploy: error: "), "{err}");
        assert!(errors[0].contains(says), "{err}");
        assert!(out.stdout.is_empty());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// kill -9 of the local agent was silent. It is reported as the
/// signal that killed it, in the error line and an `agent_died` record,
/// with what came before kept.
#[test]
fn a_killed_local_agent_was_silent() {
    if !real_kernel("killed agent") {
        return;
    }
    let (_r, rpid) = receiver();
    let p = rpid.to_string();
    let mut d = Run::spawn(
        Command::new(DEPLOY).args(["--host", "local", "--json", "--sig", "USR1", "--pid", &p]),
        Stdio::piped(),
    );
    let out = d.child.stdout.take().unwrap();
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let ready = lines.recv_timeout(T).unwrap();
    assert!(ready.contains(r#""type":"ready""#), "{ready}");
    usr1(rpid);
    let signal = lines.recv_timeout(T).unwrap();
    assert!(signal.contains(r#""type":"signal""#), "{signal}");
    let apid = agent_of(d.pid());
    unsafe { libc::kill(apid, libc::SIGKILL) };
    let (st, err) = d.exit(T);
    assert_eq!(st, 2, "{err}");
    assert!(
        err.contains(
            "whosent-deploy: error: the agent was killed by signal 9 (SIGKILL) during the capture"
        ),
        "{err}"
    );
    let rest: Vec<String> = lines.try_iter().collect();
    let died = rest
        .iter()
        .find(|l| l.contains(r#""type":"error""#))
        .unwrap_or_else(|| panic!("no error record: {rest:#?}"));
    assert!(died.contains(r#""kind":"agent_died""#), "{died}");
    let end = rest.last().unwrap();
    assert!(
        end.contains(r#""type":"end","reason":"error","signals":1"#),
        "{end}"
    );
    // SIGKILL leaves the agent no way to remove its instance (the next
    // agent removes it as stale); this test removes its own.
    let ready: Value = serde_json::from_str(&ready).unwrap();
    let inst = ready["instance"].as_str().unwrap();
    let _ = std::fs::remove_dir(format!("/sys/kernel/tracing/instances/{inst}"));
}
