//! `whosent-deploy --host local` and `parse`, as a user runs them: the
//! lines they print and the exit status.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde::Deserialize;
use std::process::Command;
use std::time::Duration;

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
const T: Duration = Duration::from_secs(10);

fn receiver(args: &[&str]) -> (Proc, i32) {
    let mut r = Proc::spawn(Command::new(sibling(DEPLOY, "test_receiver")).args(args));
    let pid = num(&r.until(T, |l| l.starts_with("ready")), "pid") as i32;
    wait_comm(pid, "test_receiver");
    (r, pid)
}

fn send(args: &[&str]) -> i32 {
    let out = Command::new(sibling(DEPLOY, "test_sender"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    num(
        String::from_utf8_lossy(&out.stdout).lines().last().unwrap(),
        "sender_pid",
    ) as i32
}

/// Starts `whosent-deploy --host local ...` and waits until the agent is
/// live (its `ready` line on stderr in human mode).
fn deploy(args: &[&str]) -> Proc {
    Proc::spawn(Command::new(DEPLOY).args(["--host", "local"]).args(args))
}

#[test]
fn prints_the_article_line_and_exits_0() {
    if !real_kernel("local human") {
        return;
    }
    let (mut r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let mut d = deploy(&["--json", "--sig", "USR1", "--pid", &p, "--count", "1"]);
    d.until(T, |l| l.contains(r#""type":"ready""#));
    // Same capture in human form, with its own agent.
    let mut h = deploy(&["--sig", "USR1", "--pid", &p, "--count", "1"]);
    // The human mode prints readiness on stderr only; wait for the agent's instance.
    std::thread::sleep(Duration::from_millis(500));
    let sender = send(&["kill", "10", &p]);
    let got = r.until(T, |l| l.starts_with("got"));
    assert_eq!(num(&got, "si_pid") as i32, sender);
    let line = h.until(T, |l| l.starts_with("SIGUSR1"));
    // The sender, then its parents up to init (issue #6).
    assert!(
        line.starts_with(&format!("SIGUSR1: test_sender({sender}) <- ")),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(
            "(1) -> test_receiver({rpid})  code=SI_USER  delivered"
        )),
        "{line}"
    );
    assert_eq!(h.wait(T), 0);
    let rec = d.until(T, |l| l.contains(r#""type":"signal""#));
    assert!(
        rec.contains(&format!(r#""sender":{{"pid":{sender},"#)),
        "{rec}"
    );
    assert_eq!(d.wait(T), 0);
}

#[test]
fn nothing_seen_exits_1_and_bad_input_exits_2() {
    if !real_kernel("local exit codes") {
        return;
    }
    let (_r, rpid) = receiver(&["10"]);
    let out = Command::new(DEPLOY)
        .args([
            "--host",
            "local",
            "--sig",
            "USR1",
            "--pid",
            &rpid.to_string(),
            "--duration",
            "0.3",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    for (args, says) in [
        (vec!["--sig", "NOPE"], "kill -l"),
        (vec!["--sig", "0"], "kill -l"),
        (vec!["--pid", "x1"], "positive number"),
        (vec!["--pid", "2147483000"], "no such process"),
    ] {
        let out = Command::new(DEPLOY)
            .args(["--host", "local"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    if !real_kernel("broken pipe") {
        return;
    }
    let (_r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let sh = format!(
        "{DEPLOY} --host local --json --sig USR1 --pid {p} | head -c 1 >/dev/null; echo status=${{PIPESTATUS[0]}}"
    );
    let out = Command::new("bash").args(["-c", &sh]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let st = num(text.trim(), "status");
    assert!(
        st == 0 || st == 1,
        "a closed pipe gave status {st}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// The reader's own model of a signal record: only what docs/json-schema.md
/// promises, with unknown fields refused so that an undocumented field
/// fails here first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // reason: fields are checked by deserializing them
struct SignalRec {
    #[serde(rename = "type")]
    ty: String,
    ts: f64,
    cpu: u32,
    sig: i32,
    signame: String,
    code: i32,
    code_name: Option<String>,
    errno: i32,
    group: Option<bool>,
    result: serde_json::Value,
    context: String,
    origin: String,
    cause: Option<CauseRec>,
    sender: Option<TaskRec>,
    running: Option<TaskRec>,
    target: TargetRec,
    oom: Option<OomRec>,
}

/// The causes docs/json-schema.md lists, and no other.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum CauseRec {
    Kill,
    Oom,
    CpuLimit,
    FileSizeLimit,
    Timer,
    Fault,
    Pipe,
    ChildExit,
    ParentExit,
    TtyHangup,
    PidnsExit,
    Kernel,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // reason: fields are checked by deserializing them
struct OomRec {
    total_vm_kb: Option<u64>,
    anon_rss_kb: Option<u64>,
    file_rss_kb: Option<u64>,
    shmem_rss_kb: Option<u64>,
    pgtables_kb: Option<u64>,
    uid: Option<u32>,
    oom_score_adj: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // reason: fields are checked by deserializing them
struct TaskRec {
    pid: Option<i32>,
    tid: i32,
    comm: String,
    uid: Option<u32>,
    cmdline: Option<String>,
    /// The eBPF backend's; null for the others.
    cgroup_id: Option<u64>,
    nspid: Option<Vec<i32>>,
    lineage: Option<Vec<AncestorRec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // reason: fields are checked by deserializing them
struct AncestorRec {
    pid: i32,
    comm: String,
    exe: Option<String>,
    cmdline: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // reason: fields are checked by deserializing them
struct TargetRec {
    pid: Option<i32>,
    tid: i32,
    comm: String,
    nspid: Option<Vec<i32>>,
}

#[test]
fn parse_turns_recorded_text_into_the_documented_records() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/host-6.18/trace.txt"
    );
    let out = Command::new(DEPLOY)
        .args(["parse", "--json", fixture])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut signals = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "signal" {
            let s: SignalRec = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(s.ty, "signal");
            assert!(s.result.is_string() || s.result.is_number());
            assert_eq!(s.context == "task", s.sender.is_some(), "{line}");
            assert_eq!(s.context != "task", s.running.is_some(), "{line}");
            signals += 1;
        }
    }
    assert!(signals > 5, "{text}");
    assert!(text
        .lines()
        .last()
        .unwrap()
        .contains(r#""type":"end","reason":"eof""#));
    // Human form of the same file, filtered to SIGSEGV.
    let out = Command::new(DEPLOY)
        .args(["parse", "--sig", "SEGV", fixture])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().all(|l| l.starts_with("SIGSEGV: ")), "{text}");
    assert!(text.contains("code=SEGV_MAPERR"), "{text}");
    // Nothing matches: exit 1. A missing file: exit 2.
    let out = Command::new(DEPLOY)
        .args(["parse", "--pid", "1", fixture])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(DEPLOY)
        .args(["parse", "/nonexistent/trace"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/trace"));
}

#[test]
fn live_records_match_the_readers_model() {
    if !real_kernel("schema") {
        return;
    }
    let (_r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let mut d = deploy(&["--json", "--sig", "USR1", "--pid", &p, "--count", "1"]);
    d.until(T, |l| l.contains(r#""type":"ready""#));
    send(&["kill", "10", &p]);
    let line = d.until(T, |l| l.contains(r#""type":"signal""#));
    let s: SignalRec = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(
        (s.sig, s.signame.as_str(), s.code_name.as_deref()),
        (10, "SIGUSR1", Some("SI_USER"))
    );
    assert_eq!(s.target.pid, Some(rpid));
    assert_eq!(s.cause, Some(CauseRec::Kill));
    assert!(s.oom.is_none());
    let end = d.until(T, |l| l.contains(r#""type":"end""#));
    assert!(end.contains(r#""reason":"count","signals":1"#), "{end}");
}

/// Issue 13, item 1: a process name is chosen by whoever runs the
/// process; printed raw, `\r\x1b[2K` erased the line and forged a
/// SIGKILL from someone else. Both names here are hostile.
#[test]
fn hostile_names_are_escaped_in_human_output() {
    if !real_kernel("hostile names") {
        return;
    }
    // Each fits the kernel's 15 bytes of comm.
    const SENDER: &str = "\r\x1b[2KSIGKILL: i";
    const TARGET: &str = "\x1b]0;pwn\x07\x7f\u{9b}2J\\";
    const SENDER_SHOWN: &str = r"\r\x1b[2KSIGKILL: i";
    const TARGET_SHOWN: &str = r"\x1b]0;pwn\x07\x7f\u{009b}2J\\";
    let mut r =
        Proc::spawn(Command::new(sibling(DEPLOY, "test_receiver")).args(["--comm", TARGET, "10"]));
    let rpid = num(&r.until(T, |l| l.starts_with("ready")), "pid") as i32;
    wait_comm(rpid, TARGET);
    let p = rpid.to_string();
    let mut json = deploy(&["--json", "--sig", "USR1", "--pid", &p, "--count", "1"]);
    json.until(T, |l| l.contains(r#""type":"ready""#));
    let mut human = deploy(&["--sig", "USR1", "--pid", &p, "--count", "1"]);
    // Sent until the human capture (whose readiness goes to stderr) has
    // had time to start: it stops at the first one it sees.
    let out = Command::new(sibling(DEPLOY, "test_sender"))
        .args(["--comm", SENDER, "--repeat", "15", "--delay-ms", "200"])
        .args(["kill", "10", &p])
        .output()
        .unwrap();
    assert!(out.status.success());
    let sender = num(
        String::from_utf8_lossy(&out.stdout).lines().last().unwrap(),
        "sender_pid",
    );
    assert_eq!(human.wait(T), 0);
    let shown = human.rest(T).join("\n");
    let bad: Vec<char> = shown
        .chars()
        .filter(|&c| c != '\n' && c.is_control())
        .collect();
    assert!(
        bad.is_empty(),
        "raw control characters {bad:?} in {shown:?}"
    );
    let line = shown
        .lines()
        .find(|l| l.starts_with("SIGUSR1: "))
        .unwrap_or_else(|| panic!("no signal line in {shown:?}"));
    assert!(
        line.starts_with(&format!("SIGUSR1: {SENDER_SHOWN}({sender}) <- ")),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(
            " -> {TARGET_SHOWN}({rpid})  code=SI_USER  delivered"
        )),
        "{line}"
    );
    // JSON carries the exact names, escaped for JSON only.
    let rec = json.until(T, |l| l.contains(r#""type":"signal""#));
    assert_eq!(json.wait(T), 0);
    let v: serde_json::Value = serde_json::from_str(&rec).unwrap();
    assert_eq!(v["sender"]["comm"], SENDER, "{rec}");
    assert_eq!(v["target"]["comm"], TARGET, "{rec}");
    assert_eq!(v["sender"]["lineage"][0]["comm"], SENDER, "{rec}");
    assert!(!rec.chars().any(char::is_control), "{rec:?}");
}

/// The same for `parse`: ftrace text shows names raw.
#[test]
fn hostile_names_are_escaped_in_parse_output() {
    use std::io::Write;
    let text = "   \x1b[2Kev\x07il-1456    [001] d..1.   666.126292: signal_generate: \
                sig=15 errno=0 code=0 comm=a\x1b]0;t\x07\u{9b}b pid=1459 grp=1 res=0\n";
    let mut child = Command::new(DEPLOY)
        .args(["parse", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        shown,
        "SIGTERM: \\x1b[2Kev\\x07il(tid 1456) -> a\\x1b]0;t\\x07\\u{009b}b(tid 1459)  code=SI_USER  delivered\n"
    );
}

/// `--backend ebpf` and `--backend auto` here (this kernel has BPF):
/// the eBPF agent installed next to whosent-deploy reports the kill with
/// the sender the receiver saw, in the same record schema.
#[test]
fn the_ebpf_backend_reports_the_sender_the_receiver_saw() {
    if !real_kernel("local ebpf") {
        return;
    }
    for backend in ["ebpf", "auto"] {
        let (mut r, rpid) = receiver(&["10"]);
        let p = rpid.to_string();
        let mut d = deploy(&[
            "--json",
            "--backend",
            backend,
            "--sig",
            "USR1",
            "--pid",
            &p,
            "--count",
            "1",
        ]);
        let ready = d.until(T, |l| l.contains(r#""type":"ready""#));
        assert!(ready.contains(r#""backend":"ebpf""#), "{backend}: {ready}");
        let sender = send(&["kill", "10", &p]);
        let got = r.until(T, |l| l.starts_with("got"));
        assert_eq!(num(&got, "si_pid") as i32, sender);
        let rec: serde_json::Value =
            serde_json::from_str(&d.until(T, |l| l.contains(r#""type":"signal""#))).unwrap();
        assert_eq!(rec["sender"]["pid"], sender, "{backend}: {rec}");
        assert_eq!(rec["sender"]["uid"], num(&got, "si_uid"));
        assert_eq!(rec["target"]["pid"], rpid);
        assert_eq!(rec["cause"], "kill");
        assert_eq!(d.wait(T), 0);
    }
}

/// The eBPF agent records and this side explains (its stream's EVENT
/// frames, docs/stream-format.md): a sender moved into a cgroup of this
/// test's own has that cgroup's id (the directory's inode number), its
/// lineage names this test as its parent (the host's process table, fed
/// by the agent's PROC frames), and the stream saved with `--save` gives
/// the same record through `whosent-deploy parse`.
#[test]
fn the_ebpf_backend_names_the_senders_cgroup_and_its_saved_stream_parses_the_same() {
    let test = "the_ebpf_backend_names_the_senders_cgroup";
    if !real_kernel(test) {
        return;
    }
    let Some(cg) = Cgroup::new("local-cgid") else {
        return;
    };
    let save = std::env::temp_dir().join(format!("whosent-ebpf-{}.wst", std::process::id()));
    let (mut r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let mut d = deploy(&[
        "--json",
        "--backend",
        "ebpf",
        "--sig",
        "USR1",
        "--pid",
        &p,
        "--count",
        "1",
        "--save",
        save.to_str().unwrap(),
    ]);
    d.until(T, |l| l.contains(r#""type":"ready""#));
    let sender = sibling(DEPLOY, "test_sender");
    let cmd = cg.run_in(&format!("{} kill 10 {p}", sender.display()));
    let out = Command::new("sh").args(["-c", &cmd]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let sent = num(
        String::from_utf8_lossy(&out.stdout).lines().last().unwrap(),
        "sender_pid",
    );
    let got = r.until(T, |l| l.starts_with("got"));
    assert_eq!(num(&got, "si_pid"), sent);
    let line = d.until(T, |l| l.contains(r#""type":"signal""#));
    let rec: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(rec["sender"]["pid"], sent, "{rec}");
    assert_eq!(rec["sender"]["cgroup_id"], cg.id, "{rec}");
    assert_eq!(rec["sender"]["lineage"][0]["pid"], sent, "{rec}");
    assert_eq!(
        rec["sender"]["lineage"][1]["pid"],
        std::process::id(),
        "the sh that ran it is this test's child: {rec}"
    );
    assert_eq!(d.wait(T), 0);
    drop(cg);
    let parsed = Command::new(DEPLOY)
        .args(["parse", "--json", save.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&save);
    let text = String::from_utf8_lossy(&parsed.stdout);
    assert!(
        text.lines().any(|l| l == line),
        "the saved stream's record differs:\nlive   {line}\nparsed {text}"
    );
    assert!(text.contains(r#""backend":"ebpf""#), "{text}");
}

/// The user local-sshd.sh creates with passwordless sudo (issue #13:
/// `--sudo` did nothing with `--host local`, yet the not-root error
/// suggested it). `up` creates the user and its sudoers rule; its
/// servers are stopped again at once.
fn sudo_user() -> Option<&'static str> {
    const USER: &str = "whosent-test";
    let exists = || {
        Command::new("id")
            .arg(USER)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !exists() {
        let dir = format!("/tmp/whosent-sudo-user-{}", std::process::id());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/local-sshd.sh");
        let up = Command::new("bash")
            .args([script, "up", "--dir", &dir])
            .output()
            .unwrap();
        let _ = Command::new("bash")
            .args([script, "down", "--dir", &dir])
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        if !up.status.success() {
            let why = String::from_utf8_lossy(&up.stderr).into_owned();
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and local-sshd.sh up failed: {why}"
            );
            eprintln!("SKIPPED local --sudo: local-sshd.sh up failed: {why}");
            return None;
        }
    }
    Some(USER)
}

#[test]
fn sudo_works_with_host_local_for_a_sudo_user() {
    if !real_kernel("local --sudo") {
        return;
    }
    let Some(user) = sudo_user() else { return };
    let as_user = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            user,
            "--regid",
            user,
            "--init-groups",
            "--reset-env",
            DEPLOY,
        ]);
        c.args(["--host", "local"]).args(args);
        c
    };
    // Without --sudo the user cannot trace, and is told about --sudo.
    let out = as_user(&["--sig", "USR1", "--duration", "0.3"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("tracing needs root") && err.contains("--sudo"),
        "{err}"
    );
    // With it, the agent runs as root and reports the sender the
    // receiver saw.
    let (mut r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let mut d = Proc::spawn(&mut as_user(&[
        "--sudo", "--json", "--sig", "USR1", "--pid", &p, "--count", "1",
    ]));
    d.until(T, |l| l.contains(r#""type":"ready""#));
    let sender = send(&["kill", "10", &p]);
    let got = r.until(T, |l| l.starts_with("got"));
    assert_eq!(num(&got, "si_pid") as i32, sender);
    let rec = d.until(T, |l| l.contains(r#""type":"signal""#));
    assert!(
        rec.contains(&format!(r#""sender":{{"pid":{sender},"#)),
        "{rec}"
    );
    assert_eq!(d.wait(T), 0);
}

/// Human output with `--backend ebpf` folds storms in the kernel (the
/// agent's `--fold`, `repeat` records): the printed counts of each
/// sender sum to what it sent, two senders are not merged, and the
/// delivered ones are what the receiver's handler counted.
#[test]
fn the_ebpf_backend_folds_a_storm_into_exact_counts() {
    if !real_kernel("local ebpf fold") {
        return;
    }
    let mut storm = Proc::spawn(Command::new(sibling(DEPLOY, "signal_storm")).args([
        "--count",
        "100000",
        "--sig",
        "USR1",
        "--wait-stdin",
    ]));
    let rpid = num(
        &storm.until(T, |l| l.starts_with("storm ready")),
        "receiver",
    );
    let r = rpid.to_string();
    let save = std::env::temp_dir().join(format!("whosent-fold-{}.wst", std::process::id()));
    let mut d = deploy(&[
        "--backend",
        "ebpf",
        "--sig",
        "USR1",
        "--pid",
        &r,
        "--duration",
        "15",
        "--save",
        save.to_str().unwrap(),
    ]);
    // Human mode says it is ready on stderr only.
    std::thread::sleep(Duration::from_secs(4));
    let second = send(&["--repeat", "50", "kill", "10", &r]);
    storm.write_stdin("go\n");
    let sent = storm.until(Duration::from_secs(60), |l| l.starts_with("storm sent"));
    let sender = num(&sent, "sender");
    assert_eq!(d.wait(Duration::from_secs(40)), 0);
    d.rest(Duration::from_millis(200));
    // Each signal line stands for 1, or for the count that closes it.
    let mut runs: Vec<(String, i64)> = Vec::new();
    for l in &d.seen {
        if l.starts_with("SIGUSR1: ") {
            // A count line names its run's first line without the
            // sender's lineage (`<- parent(pid) ...`), as for ftrace.
            let line = match (l.find(" <- "), l.find(" -> ")) {
                (Some(a), Some(b)) if a < b => format!("{}{}", &l[..a], &l[b..]),
                _ => l.clone(),
            };
            runs.push((line, 1));
        } else if let Some(rest) = l.strip_prefix("  ×") {
            let (n, rest) = rest.split_once(' ').unwrap();
            let n: i64 = n.parse().unwrap();
            let named = rest.split_once(": ").map(|(_, line)| line.to_string());
            let i = match &named {
                Some(line) => runs.iter().position(|(l, _)| l == line),
                None => runs.len().checked_sub(1),
            };
            let i = i.unwrap_or_else(|| panic!("a count of no line: {l}"));
            if rest.starts_with("more") {
                runs[i].1 += n;
            } else {
                runs[i].1 = n;
            }
        }
    }
    let total = |who: String, result: &str| -> i64 {
        runs.iter()
            .filter(|(l, _)| l.starts_with(&who) && l.ends_with(result))
            .map(|(_, n)| n)
            .sum()
    };
    let storm_by = format!("SIGUSR1: signal_storm({sender})");
    let second_by = format!("SIGUSR1: test_sender({second})");
    assert_eq!(total(storm_by.clone(), ""), 100_000, "{:?}", d.seen);
    assert_eq!(total(second_by.clone(), ""), 50, "{:?}", d.seen);
    assert!(runs.len() <= 8, "folded into a few lines: {:?}", d.seen);
    let delivered = total(storm_by, "delivered") + total(second_by, "delivered");
    assert_eq!(delivered, num(&sent, "received"), "{:?}", d.seen);
    // The saved stream read back as JSON: each signal record is one,
    // each repeat record its count, and the end record counts them all
    // (it counted the signal records alone: 2 for a 5,000 storm).
    let out = Command::new(DEPLOY)
        .args(["parse", "--json"])
        .arg(&save)
        .output()
        .unwrap();
    std::fs::remove_file(&save).unwrap();
    let recs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut counted = 0;
    for v in &recs {
        match v["type"].as_str() {
            Some("signal") => counted += 1,
            Some("repeat") => counted += v["count"].as_i64().unwrap(),
            _ => {}
        }
    }
    assert_eq!(counted, 100_050, "{recs:?}");
    let end = recs
        .iter()
        .find(|v| v["type"] == "end")
        .expect("an end record");
    assert_eq!(end["signals"], 100_050, "{end}");
}
