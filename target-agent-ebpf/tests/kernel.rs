//! The eBPF agent on this machine's real kernel (root, tracefs, bpf).
//! Each test starts its own receiver and filters on it, so tests running
//! in parallel never see each other's signals; the receiver's own view
//! (SA_SIGINFO `si_pid`, `si_uid`) is the oracle, and the ftrace agent
//! a second one.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_whosent-ebpf-agent");
const T: Duration = Duration::from_secs(10);

fn start(prog: &std::path::Path, args: &[&str]) -> (Proc, Value) {
    let mut a = Proc::spawn(Command::new(prog).args(args));
    let l = a.until(T, |l| {
        l.contains(r#""type":"ready""#) || l.contains(r#""type":"error""#)
    });
    let v: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["type"], "ready", "{} failed: {l}", prog.display());
    (a, v)
}

fn ebpf(args: &[&str]) -> (Proc, Value) {
    start(std::path::Path::new(AGENT), args)
}

/// The pids of a record's `sender.lineage`, the sender first.
fn lineage(v: &Value) -> Vec<i64> {
    v["sender"]["lineage"]
        .as_array()
        .unwrap_or_else(|| panic!("no lineage: {v}"))
        .iter()
        .map(|a| a["pid"].as_i64().unwrap())
        .collect()
}

fn receiver(args: &[&str]) -> (Proc, i32) {
    let mut r = Proc::spawn(Command::new(sibling(AGENT, "test_receiver")).args(args));
    let l = r.until(T, |l| l.starts_with("ready"));
    let pid = num(&l, "pid") as i32;
    (r, pid)
}

fn records(a: &mut Proc, kind: &str) -> Vec<Value> {
    a.wait(T);
    a.rest(Duration::from_millis(200));
    a.seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == kind)
        .collect()
}

/// The ids of the BPF programs and maps a process holds, from its
/// descriptors' fdinfo (`prog_id:`, `map_id:`; kernel/bpf/syscall.c).
fn bpf_ids(pid: i32) -> Vec<(&'static str, u32)> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap() {
        let Ok(text) = std::fs::read_to_string(e.unwrap().path()) else {
            continue;
        };
        for l in text.lines() {
            for key in ["prog_id", "map_id"] {
                if let Some(v) = l.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
                    ids.push((key, v.trim().parse().unwrap()));
                }
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Whether the kernel still has this program or map
/// (BPF_PROG_GET_FD_BY_ID / BPF_MAP_GET_FD_BY_ID answer ENOENT once it
/// is freed).
fn bpf_exists(kind: &str, id: u32) -> bool {
    let cmd: libc::c_long = if kind == "prog_id" { 13 } else { 14 };
    // union bpf_attr: the id first; the rest zero.
    let mut attr = [0u32; 32];
    attr[0] = id;
    // SAFETY: attr is a zeroed bpf_attr-sized buffer the kernel reads.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd >= 0 {
        // SAFETY: the descriptor was just returned to us.
        unsafe { libc::close(fd as i32) };
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT)
}

fn left_behind(ids: &[(&str, u32)]) -> Vec<String> {
    ids.iter()
        .filter(|(k, id)| bpf_exists(k, *id))
        .map(|(k, id)| format!("{k} {id}"))
        .collect()
}

#[test]
fn ftrace_and_ebpf_name_the_same_sender_and_target() {
    if !real_kernel("ftrace_and_ebpf_name_the_same_sender_and_target") {
        return;
    }
    let (mut r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let q = ["--sig", "USR1", "--pid", &p, "--count", "1"];
    let (mut b, ready) = ebpf(&q);
    assert_eq!(
        (ready["backend"].as_str(), ready["filter"].as_str()),
        (
            Some("ebpf"),
            Some(format!("sig == 10 && pid == {rpid}").as_str())
        )
    );
    let (mut f, _) = start(&sibling(AGENT, "whosent-agent"), &q);
    let out = Command::new(sibling(AGENT, "test_sender"))
        .args(["kill", "10", &p])
        .output()
        .unwrap();
    let sent = String::from_utf8_lossy(&out.stdout).to_string();
    let sender = num(&sent, "sender_pid");
    let got = r.until(T, |l| l.starts_with("got"));
    assert_eq!(num(&got, "si_pid"), sender);
    let (e, ft) = (&records(&mut b, "signal")[0], &records(&mut f, "signal")[0]);
    for v in [e, ft] {
        assert_eq!(v["sender"]["pid"], sender, "{v}");
        assert_eq!(v["sender"]["comm"], "test_sender");
        assert_eq!(v["sender"]["uid"], num(&got, "si_uid"));
        assert_eq!(v["target"]["pid"], rpid);
        assert_eq!(v["target"]["comm"], "test_receiver");
    }
    assert_eq!(e["cause"], "kill");
    // The ftrace pipeline gains its cause with #12; until then it is null.
    if !ft["cause"].is_null() {
        assert_eq!(e["cause"], ft["cause"]);
    }
    for k in [
        "sig", "code", "errno", "group", "result", "context", "origin",
    ] {
        assert_eq!(e[k], ft[k], "{k}: ebpf {e} ftrace {ft}");
    }
    assert_eq!(e["sender"]["tid"], ft["sender"]["tid"]);
    assert_eq!(e["target"]["tid"], ft["target"]["tid"]);
    assert_eq!(e["sender"]["nspid"], serde_json::json!([sender]));
    // The same process table (whosent-analysis) fed by each backend's
    // task events: the same parents, up to pid 1, through this test.
    let l = lineage(e);
    assert_eq!(l, lineage(ft), "ebpf {e} ftrace {ft}");
    assert_eq!(l[0], sender);
    assert_eq!(l[1], std::process::id() as i64, "{e}");
    assert_eq!(l.last(), Some(&1));
}

/// The sender's cgroup v2 id, read in the kernel at the signal: a
/// sender moved into a cgroup of this test's own has that cgroup's id
/// (its directory's inode number), not its parent's.
#[test]
fn a_sender_in_a_cgroup_has_that_cgroups_id() {
    let test = "a_sender_in_a_cgroup_has_that_cgroups_id";
    if !real_kernel(test) {
        return;
    }
    let Some(cg) = Cgroup::new("cgid") else {
        return;
    };
    let (mut r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let (mut a, _) = ebpf(&["--sig", "USR1", "--pid", &p, "--count", "1"]);
    let sender = sibling(AGENT, "test_sender");
    let cmd = cg.run_in(&format!("{} kill 10 {p}", sender.display()));
    let out = Command::new("sh").args(["-c", &cmd]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let sent = String::from_utf8_lossy(&out.stdout).to_string();
    let got = r.until(T, |l| l.starts_with("got"));
    assert_eq!(num(&got, "si_pid"), num(&sent, "sender_pid"));
    let e = &records(&mut a, "signal")[0];
    assert_eq!(e["sender"]["pid"], num(&sent, "sender_pid"), "{e}");
    assert_eq!(e["sender"]["cgroup_id"], cg.id, "{e}");
    drop(cg);
}

/// The perf event array, the output of kernels before 5.8, on this one
/// (which has a ring buffer) by `WHOSENT_EBPF_OUTPUT`: a kill from a
/// shell that is gone before the event is read still names the sender
/// the receiver saw, with the shell as its parent.
#[test]
fn the_perf_event_array_path_reports_what_the_receiver_saw() {
    if !real_kernel("the_perf_event_array_path_reports_what_the_receiver_saw") {
        return;
    }
    let (mut r, rpid) = receiver(&["10"]);
    let p = rpid.to_string();
    let mut a = Proc::spawn(
        Command::new(AGENT)
            .env("WHOSENT_EBPF_OUTPUT", "perf_event_array")
            .args(["--sig", "USR1", "--pid", &p, "--count", "1"]),
    );
    let l = a.until(T, |l| {
        l.contains(r#""type":"ready""#) || l.contains(r#""type":"error""#)
    });
    let ready: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(ready["instance"], "bpf:perf_event_array", "{ready}");
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "echo shell_pid=$$; {} kill 10 {p}",
                sibling(AGENT, "test_sender").display()
            ),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let shell = num(&text, "shell_pid");
    let sender = num(&text, "sender_pid");
    let got = r.until(T, |l| l.starts_with("got"));
    assert_eq!(num(&got, "si_pid"), sender);
    let e = &records(&mut a, "signal")[0];
    assert_eq!(e["sender"]["pid"], sender, "{e}");
    assert_eq!(e["sender"]["uid"], num(&got, "si_uid"));
    assert_eq!(
        (&e["target"]["pid"], &e["cause"]),
        (&rpid.into(), &"kill".into())
    );
    assert_eq!(lineage(e)[..2], [sender, shell], "{e}");
    assert_eq!(e["sender"]["lineage"][1]["comm"], "sh", "{e}");
    assert_eq!(records(&mut a, "end")[0]["reason"], "count");
}

/// A value the agent does not know is refused before anything loads.
#[test]
fn an_unknown_forced_output_is_a_usage_error() {
    let out = Command::new(AGENT)
        .env("WHOSENT_EBPF_OUTPUT", "pipe")
        .args(["--sig", "USR1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "usage", "{v}");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("ringbuf or perf_event_array"));
}

/// The issue's check: every one of 100 short-lived senders under another
/// uid is reported with that uid and its namespace pid, from the kernel
/// (the ftrace agent's /proc read came too late for most: #15).
#[test]
fn short_lived_senders_under_another_uid_keep_their_uid() {
    if !real_kernel("short_lived_senders_under_another_uid_keep_their_uid") {
        return;
    }
    const N: usize = 100;
    let uid = "4242";
    // The receiver runs as the same uid: kill(2) needs a matching uid.
    let mut r = Proc::spawn(
        Command::new("setpriv")
            .args(["--reuid", uid, "--regid", uid, "--clear-groups"])
            .arg(sibling(AGENT, "test_receiver"))
            .args(["--comm", "uidrecv", "10"]),
    );
    let rpid = num(&r.until(T, |l| l.starts_with("ready")), "pid");
    let p = rpid.to_string();
    let count = N.to_string();
    let (mut a, _) = ebpf(&["--sig", "10", "--pid", &p, "--count", &count]);
    let script = format!(
        "i=0; while [ $i -lt {N} ]; do setpriv --reuid {uid} --regid {uid} --clear-groups {} kill 10 {p} >/dev/null || exit 1; i=$((i+1)); done",
        sibling(AGENT, "test_sender").display()
    );
    let st = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(st.success());
    let recs = records(&mut a, "signal");
    assert_eq!(recs.len(), N);
    for e in &recs {
        let s = &e["sender"];
        assert_eq!(s["uid"], 4242, "{e}");
        assert_eq!(s["comm"], "test_sender", "{e}");
        assert_eq!(s["nspid"], serde_json::json!([s["pid"]]), "{e}");
    }
    let seen: Vec<i64> = r
        .rest(Duration::from_millis(300))
        .iter()
        .chain(r.seen.iter())
        .filter(|l| l.starts_with("got"))
        .map(|l| num(l, "si_uid"))
        .collect();
    assert!(seen.iter().all(|&u| u == 4242), "{seen:?}");
}

/// A sender inside a child pid namespace: its `nspid` ends with the pid
/// the receiver (in the same namespace) saw as `si_pid`.
#[test]
fn a_sender_in_a_child_pid_namespace_gets_the_pid_the_receiver_saw() {
    if !real_kernel("a_sender_in_a_child_pid_namespace_gets_the_pid_the_receiver_saw") {
        return;
    }
    let (mut a, _) = ebpf(&[
        "--sig",
        "10",
        "--comm",
        "nsrecv",
        "--sender-comm",
        "nssend",
        "--count",
        "1",
    ]);
    // The namespace exists for a second before the kill, so the agent's
    // rescan (every 500 ms) has listed it for the program.
    let script = format!(
        "{r} --comm nsrecv --count 1 10 & sleep 1.5; {s} --comm nssend kill 10 $!; wait",
        r = sibling(AGENT, "test_receiver").display(),
        s = sibling(AGENT, "test_sender").display()
    );
    let mut ns =
        Proc::spawn(Command::new("unshare").args(["--pid", "--fork", "sh", "-c", &script]));
    let got = ns.until(T, |l| l.starts_with("got"));
    let si_pid = num(&got, "si_pid");
    let e = &records(&mut a, "signal")[0];
    let nspid = e["sender"]["nspid"]
        .as_array()
        .expect("nspid known")
        .clone();
    assert_eq!(nspid.len(), 2, "{e}");
    assert_eq!(nspid[0], e["sender"]["pid"]);
    assert_eq!(nspid[1], si_pid, "{e}");
    assert_ne!(e["sender"]["pid"], si_pid, "the host pid differs");
}

/// Programs, maps and links are owned by the agent's descriptors: after
/// it ends, by stdin closing (how an SSH session ends) or by SIGKILL,
/// the kernel has none of them.
#[test]
fn nothing_is_left_in_the_kernel_however_the_agent_ends() {
    if !real_kernel("nothing_is_left_in_the_kernel_however_the_agent_ends") {
        return;
    }
    for how in ["stdin", "sigkill"] {
        let (mut a, _) = ebpf(&["--sig", "10", "--comm", "no-such-target"]);
        let ids = bpf_ids(a.pid());
        let progs = ids.iter().filter(|(k, _)| *k == "prog_id").count();
        assert!(progs >= 3, "{how}: the agent holds {ids:?}");
        assert!(
            left_behind(&ids).len() == ids.len(),
            "{how}: visible while running"
        );
        match how {
            "stdin" => {
                a.close_stdin();
                assert_eq!(a.wait(T), 1, "no signal reported");
                let end = records(&mut a, "end");
                assert_eq!(end[0]["reason"], "stdin_closed");
            }
            _ => {
                a.signal(libc::SIGKILL);
                a.wait(T);
            }
        }
        let ok = eventually(Duration::from_secs(5), || left_behind(&ids).is_empty());
        assert!(ok, "{how}: left behind {:?}", left_behind(&ids));
    }
}

/// With `--stream` (how whosent-deploy runs it) the agent exits as soon
/// as its END frame is out, and a child of its own releases the
/// programs and maps (src/stream.rs, `teardown`): they are gone soon
/// after, without anyone waiting for it.
#[test]
fn nothing_is_left_in_the_kernel_after_a_streamed_capture() {
    if !real_kernel("nothing_is_left_in_the_kernel_after_a_streamed_capture") {
        return;
    }
    let mut a = Proc::spawn(Command::new(AGENT).args([
        "--stream",
        "--sig",
        "10",
        "--comm",
        "no-such-target",
    ]));
    let pid = a.pid();
    let loaded = eventually(T, || {
        bpf_ids(pid).iter().filter(|(k, _)| *k == "prog_id").count() >= 3
    });
    assert!(loaded, "the agent holds {:?}", bpf_ids(pid));
    // Attached once it reads events: give it its READY.
    std::thread::sleep(Duration::from_millis(500));
    let ids = bpf_ids(a.pid());
    a.close_stdin();
    let t = std::time::Instant::now();
    assert_eq!(a.wait(T), 0);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "exit took {:?}",
        t.elapsed()
    );
    let ok = eventually(Duration::from_secs(5), || left_behind(&ids).is_empty());
    assert!(ok, "left behind {:?}", left_behind(&ids));
}

#[test]
fn a_missing_target_is_a_usage_error_before_anything_is_loaded() {
    if !real_kernel("a_missing_target_is_a_usage_error_before_anything_is_loaded") {
        return;
    }
    let out = Command::new(AGENT)
        .args(["--pid", &i32::MAX.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "no_such_process");
}

/// Storm folding in the kernel (`--fold`): a 100,000-signal
/// storm from one sender and 500 from a second, to one receiver. Every
/// signal is either a `signal` record (a key's first) or counted in a
/// `repeat` record, so the sums are the senders' own counts; the two
/// senders' keys stay apart; the first record names the storm's sender.
#[test]
fn folded_storms_count_every_signal_of_each_sender() {
    if !real_kernel("folded_storms_count_every_signal_of_each_sender") {
        return;
    }
    const N: i64 = 100_000;
    const M: i64 = 500;
    let mut storm = Proc::spawn(Command::new(sibling(AGENT, "signal_storm")).args([
        "--count",
        &N.to_string(),
        "--sig",
        "USR1",
        "--wait-stdin",
    ]));
    let rpid = num(
        &storm.until(T, |l| l.starts_with("storm ready")),
        "receiver",
    );
    let r = rpid.to_string();
    let mut a = Proc::spawn(Command::new(AGENT).args(["--sig", "USR1", "--pid", &r, "--fold"]));
    a.until(T, |l| l.contains(r#""type":"ready""#));
    let second = Command::new(sibling(AGENT, "test_sender"))
        .args(["--repeat", &M.to_string(), "kill", "10", &r])
        .output()
        .unwrap();
    let second = num(&String::from_utf8_lossy(&second.stdout), "sender_pid");
    storm.write_stdin("go\n");
    let sent = storm.until(Duration::from_secs(60), |l| l.starts_with("storm sent"));
    assert_eq!(num(&sent, "sent"), N, "{sent}");
    let sender = num(&sent, "sender");
    storm.wait(T);
    // The last counts are read when the agent ends.
    std::thread::sleep(Duration::from_millis(300));
    a.close_stdin();
    a.wait(T);
    a.rest(Duration::from_millis(200));
    let all: Vec<Value> = a
        .seen
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |kind: &str, pid: i64| -> Vec<&Value> {
        all.iter()
            .filter(|v| v["type"] == kind)
            .filter(|v| v["sender"]["pid"] == pid || v["sender"] == pid)
            .collect()
    };
    for (pid, n) in [(sender, N), (second, M)] {
        let firsts = of("signal", pid);
        let repeats = of("repeat", pid);
        let folded: i64 = repeats.iter().map(|v| v["count"].as_i64().unwrap()).sum();
        eprintln!(
            "sender {pid}: {} signal records, {} repeat records folding {folded}",
            firsts.len(),
            repeats.len()
        );
        assert_eq!(
            firsts.len() as i64 + folded,
            n,
            "sender {pid}: {} records and {folded} folded",
            firsts.len()
        );
        // A key's first only: delivered, already_pending (and rarely a
        // race between two CPUs adding one key).
        assert!(
            firsts.len() <= 4 && !repeats.is_empty(),
            "{pid}: {firsts:?}"
        );
        for v in &repeats {
            assert_eq!(v["target"], rpid, "{v}");
            let first = firsts.iter().find(|f| f["result"] == v["result"]);
            assert!(first.is_some(), "a repeat without its first: {v}");
        }
    }
    assert_eq!(of("signal", sender)[0]["sender"]["pid"], sender);
    let end = &all.iter().rfind(|v| v["type"] == "end").unwrap();
    assert_eq!(end["signals"], N + M, "{end}");
    assert_eq!(end["lost"], 0, "{end}");
}
