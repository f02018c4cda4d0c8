//! Issue #6 on this machine's real kernel (root, tracefs): the sender's
//! lineage when the whole chain has exited before the agent reads the
//! event, pids inside a pid namespace, and timer signals that come from
//! the kernel in interrupt context. As in real_kernel.rs, each test
//! starts its own receiver and filters on it, and the receiver's
//! siginfo cross-checks what the agent reports.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_whosent-agent");
const T: Duration = Duration::from_secs(10);

/// Whether the agent's argv uprobe is on in its instance (before
/// `ready`).
fn argv_probe_on(instance: &str) -> bool {
    let group = instance.replace('-', "_");
    std::fs::read_to_string(format!(
        "/sys/kernel/tracing/instances/{instance}/events/{group}/argv/enable"
    ))
    .is_ok_and(|s| s.trim() == "1")
}

/// Starts the agent and waits for its `ready` record and its argv probe.
fn ready_agent(args: &[&str]) -> (Proc, String) {
    let mut a = Proc::spawn(Command::new(AGENT).args(args));
    let l = a.until(T, |l| {
        l.contains(r#""type":"ready""#) || l.contains(r#""type":"error""#)
    });
    let v: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["type"], "ready", "agent failed: {l}");
    let inst = v["instance"].as_str().unwrap().to_string();
    assert!(eventually(T, || argv_probe_on(&inst)), "no argv probe");
    (a, inst)
}

fn receiver(args: &[&str]) -> (Proc, i32) {
    let mut r = Proc::spawn(Command::new(sibling(AGENT, "test_receiver")).args(args));
    let pid = num(&r.until(T, |l| l.starts_with("ready")), "pid") as i32;
    wait_comm(pid, "test_receiver");
    (r, pid)
}

fn signal_record(a: &mut Proc) -> Value {
    let l = a.until(T, |l| l.contains(r#""type":"signal""#));
    serde_json::from_str(&l).unwrap()
}

/// Waits for the agent to exit 0 and checks it removed its instance
/// and its argv uprobe.
fn finish(a: &mut Proc, instance: &str) {
    assert_eq!(a.wait(T), 0, "the agent reported a signal: exit 0");
    assert!(!instance_exists(instance), "{instance} was left behind");
    let probes = std::fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap_or_default();
    let group = instance.replace('-', "_");
    assert!(!probes.contains(&group), "uprobe left behind: {probes}");
}

/// Host pids of `parent`'s children.
fn children(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        if status
            .lines()
            .any(|l| l.strip_prefix("PPid:").map(str::trim) == Some(&parent.to_string()))
        {
            out.push(pid);
        }
    }
    out
}

/// The one child of `parent`, once it runs `comm`.
fn only_child(parent: i32, comm: &str) -> i32 {
    let is = |c: &[i32]| {
        c.len() == 1
            && std::fs::read_to_string(format!("/proc/{}/comm", c[0]))
                .is_ok_and(|s| s.trim() == comm)
    };
    assert!(
        eventually(T, || is(&children(parent))),
        "{parent} never had one child {comm}"
    );
    children(parent)[0]
}

fn line_field<'a>(lines: &'a str, key: &str) -> &'a str {
    lines
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {lines}"))
}

#[test]
fn a_chain_that_has_exited_is_still_named_with_its_command_lines() {
    if !real_kernel("lineage of an exited chain") {
        return;
    }
    let (mut r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let query = ["--sig", "USR1", "--pid", p.as_str(), "--count", "1"];
    let (mut a, inst) = ready_agent(&query);

    // script -> sh -> kill. The `; echo` keeps sh from exec'ing kill in
    // its own place.
    let dir = std::env::temp_dir().join(format!("whosent-lineage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("chain.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho script=$$\nsh -c \"/bin/kill -USR1 $1; echo sh=\\$\\$\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    // The agents cannot read anything (nor look at /proc) until the
    // whole chain has exited and been reaped.
    a.signal(libc::SIGSTOP);
    let out = Command::new(&script).arg(&p).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (script_pid, sh_pid) = (line_field(&text, "script"), line_field(&text, "sh"));
    let kill_pid = num(&r.until(T, |l| l.starts_with("got")), "si_pid").to_string();
    for pid in [&kill_pid, sh_pid, script_pid] {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} still there"
        );
    }
    a.signal(libc::SIGCONT);

    let e = signal_record(&mut a);
    let lineage = e["sender"]["lineage"].as_array().expect("a lineage");
    let pid = |s: &str| json!(s.parse::<i64>().unwrap());
    let script_path = script.to_str().unwrap();
    assert_eq!(
        lineage[..3],
        [
            json!({"pid": pid(&kill_pid), "comm": "kill", "exe": "/bin/kill",
                   "cmdline": format!("/bin/kill -USR1 {p}")}),
            json!({"pid": pid(sh_pid), "comm": "sh", "exe": lineage[1]["exe"],
                   "cmdline": format!("sh -c /bin/kill -USR1 {p}; echo sh=$$")}),
            // The kernel runs a script as `interpreter script args`.
            json!({"pid": pid(script_pid), "comm": "chain.sh", "exe": script_path,
                   "cmdline": format!("/bin/sh {script_path} {p}")}),
        ],
        "{e}"
    );
    assert!(lineage[1]["exe"].as_str().unwrap().ends_with("/sh"));
    assert_eq!(lineage[3]["pid"], std::process::id(), "then this test");
    assert_eq!(lineage.last().unwrap()["pid"], 1, "up to init: {e}");
    assert_eq!(e["sender"]["pid"], lineage[0]["pid"]);
    assert_eq!(e["sender"]["cmdline"], lineage[0]["cmdline"]);

    finish(&mut a, &inst);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_sender_inside_a_new_pid_namespace() {
    if !real_kernel("pid namespace") {
        return;
    }
    // sh is pid 1 of a new namespace and starts the receiver (pid 2).
    let recv = sibling(AGENT, "test_receiver");
    let mut ns = Proc::spawn(Command::new("unshare").args([
        "--pid",
        "--fork",
        "--mount-proc",
        "sh",
        "-c",
        &format!("{} 10 & read x; kill -USR1 $!; read y", recv.display()),
    ]));
    let inner = num(&ns.until(T, |l| l.starts_with("ready")), "pid");
    assert_eq!(inner, 2, "the receiver sees its own namespace");
    let sh = only_child(ns.pid(), "sh");
    let rpid = only_child(sh, "test_receiver");
    let (p, s) = (rpid.to_string(), sh.to_string());

    // Host pids; then the same processes named inside the namespace.
    let (mut a, inst) = ready_agent(&["--sig", "USR1", "--pid", &p, "--count", "1"]);
    let (mut b, inst_b) = ready_agent(&[
        "--sig",
        "USR1",
        "--pid-ns",
        &s,
        "--pid",
        "2",
        "--sender-pid",
        "1",
        "--count",
        "1",
    ]);
    ns.write_stdin("go\n");
    let got = ns.until(T, |l| l.starts_with("got"));
    // kill(2) fills si_pid with the sender's pid in its own namespace.
    assert_eq!(num(&got, "si_pid"), 1);

    for e in [signal_record(&mut a), signal_record(&mut b)] {
        assert_eq!(e["sender"]["pid"], sh, "{e}");
        assert_eq!(e["sender"]["nspid"], json!([sh, 1]), "{e}");
        assert_eq!(e["target"]["pid"], rpid, "{e}");
        assert_eq!(e["target"]["nspid"], json!([rpid, 2]), "{e}");
        assert_eq!(e["sender"]["lineage"][1]["comm"], "unshare", "{e}");
    }
    finish(&mut a, &inst);
    finish(&mut b, &inst_b);

    // A pid the namespace does not have is refused, like any bad --pid.
    let out = Command::new(AGENT)
        .args(["--pid-ns", &s, "--pid", "4242"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--pid 4242: no such process in the pid namespace of process"),
        "{err}"
    );
}

/// A timer's SIGALRM: from the kernel in interrupt context, credited to
/// no task, with the code the receiver sees.
fn timer_signal(how: &str, code: i64, code_name: &str) {
    let mut r = Proc::spawn(Command::new(sibling(AGENT, "test_receiver")).args([
        how,
        "--wait-stdin",
        "14",
    ]));
    let rpid = num(&r.until(T, |l| l.starts_with("ready")), "pid") as i32;
    wait_comm(rpid, "test_receiver");
    let p = rpid.to_string();
    let query = ["--sig", "ALRM", "--pid", p.as_str(), "--count", "1"];
    let (mut a, inst) = ready_agent(&query);
    r.write_stdin("go\n");
    let got = r.until(T, |l| l.starts_with("got"));
    assert_eq!((num(&got, "si_code"), num(&got, "si_pid")), (code, 0));

    let e = signal_record(&mut a);
    assert_eq!(e["code_name"], code_name, "{e}");
    assert_eq!(e["origin"], "timer", "{e}");
    // hrtimers expire in hardirq context (softirq on PREEMPT_RT).
    assert!(
        e["context"] == "hardirq" || e["context"] == "softirq",
        "{e}"
    );
    assert_eq!(
        e["sender"],
        Value::Null,
        "the interrupted task did not send it"
    );
    assert!(e["running"]["tid"].is_i64(), "{e}");
    assert_ne!(
        e["running"]["pid"], rpid,
        "the receiver was asleep in read()"
    );
    assert_eq!(e["target"]["pid"], rpid);

    // No process sent it: the cause says so (#12).
    assert_eq!(e["cause"], "timer", "{e}");
    finish(&mut a, &inst);
}

#[test]
fn alarm_is_a_kernel_timer_not_the_interrupted_task() {
    if !real_kernel("alarm") {
        return;
    }
    timer_signal("--alarm", 0x80, "SI_KERNEL");
}

#[test]
fn a_posix_timer_is_a_kernel_timer_not_the_interrupted_task() {
    if !real_kernel("timer_create") {
        return;
    }
    timer_signal("--timer", -2, "SI_TIMER");
}

#[test]
fn a_killed_agents_argv_probe_is_removed_by_the_next_run() {
    if !real_kernel("stale uprobe") {
        return;
    }
    let (_r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let (mut a, stale) = ready_agent(&["--sig", "USR1", "--pid", &p]);
    let probes = || std::fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap();
    let group = stale.replace('-', "_");
    assert!(
        probes().contains(&group),
        "the probe is there while it runs"
    );
    a.signal(libc::SIGKILL);
    a.wait(T);
    // kill -9 leaves it (nothing can run), until the next agent starts:
    // with tests running side by side, that may be another test's.
    if !probes().contains(&group) {
        eprintln!("note: another agent removed {group} first");
    }
    let (mut b, inst) = ready_agent(&["--sig", "USR1", "--pid", &p]);
    assert!(!instance_exists(&stale));
    assert!(!probes().contains(&group), "the next run removes it");
    b.close_stdin();
    assert_eq!(b.wait(T), 1, "no signal seen");
    assert!(!instance_exists(&inst));
    assert!(!probes().contains(&inst.replace('-', "_")));
}
