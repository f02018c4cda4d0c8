//! The parser against logs a real auditd wrote (tests/fixtures/host-6.18,
//! recorded by tests/fixtures/record.sh), checked against what the
//! recorded programs themselves said they did: each sender's own line
//! (its pid, uid and errno) and each receiver's siginfo (si_pid, si_uid).

use std::collections::BTreeMap;
use whosent_audit::{parse_all, AuditSignal};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/host-6.18");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn signals(name: &str) -> Vec<AuditSignal> {
    parse_all(&read(name))
        .into_iter()
        .map(|i| i.unwrap_or_else(|e| panic!("{name}: unexpected warning: {e}")))
        .collect()
}

/// `key=value` from a line of the run's own output.
fn val<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn num(line: &str, key: &str) -> i32 {
    val(line, key).parse().unwrap()
}

/// One sender's line: `NAME: sent how=... sig=.. to=.. sender_pid=.. uid=.. ok|err=E`.
struct Sent {
    comm: String,
    how: String,
    sig: i32,
    to: i32,
    pid: i32,
    uid: u32,
    err: Option<String>,
}

struct Run {
    sent: Vec<Sent>,
    /// (receiver comm, its pid)
    receivers: BTreeMap<String, i32>,
    /// (receiver comm, sig, si_pid, si_uid)
    got: Vec<(String, i32, i32, u32)>,
    group: Vec<i32>,
    pgid: i32,
    gone: i32,
    b32: i32,
}

fn run(name: &str) -> Run {
    let text = String::from_utf8(read(name)).unwrap();
    let mut r = Run {
        sent: vec![],
        receivers: BTreeMap::new(),
        got: vec![],
        group: vec![],
        pgid: 0,
        gone: 0,
        b32: 0,
    };
    for l in text.lines() {
        if let Some((comm, rest)) = l.split_once(": sent ") {
            r.sent.push(Sent {
                comm: comm.into(),
                how: val(rest, "how").into(),
                sig: num(rest, "sig"),
                to: num(rest, "to"),
                pid: num(rest, "sender_pid"),
                uid: num(rest, "uid") as u32,
                err: rest.rsplit_once("err=").map(|(_, e)| e.to_string()),
            });
        } else if let Some(rest) = l.strip_prefix("receiver ") {
            let comm = rest.split(' ').next().unwrap();
            r.receivers.insert(comm.into(), num(rest, "pid"));
        } else if let Some(rest) = l.strip_prefix("group ") {
            r.pgid = num(rest, "pgid");
            r.group = val(rest, "members")
                .split(',')
                .map(|p| p.parse().unwrap())
                .collect();
        } else if let Some(rest) = l.strip_prefix("gone ") {
            r.gone = num(rest, "pid");
        } else if let Some(rest) = l.strip_prefix("b32 ") {
            r.b32 = num(rest, "pid");
        } else if let Some((comm, rest)) = l.split_once(" got ") {
            r.got.push((
                comm.into(),
                num(rest, "sig"),
                num(rest, "si_pid"),
                num(rest, "si_uid") as u32,
            ));
        }
    }
    assert_eq!(r.sent.len(), 10, "{name}");
    r
}

fn from(sigs: &[AuditSignal], pid: i32) -> Vec<&AuditSignal> {
    sigs.iter()
        .filter(|s| s.event.running.pid == Some(pid))
        .collect()
}

/// Every fact the run printed is in the log's records, and nothing else.
fn check_against_run(log: &str, run_file: &str) {
    let sigs = signals(log);
    let r = run(run_file);
    // Each test_sender call: its pid, comm, uid, signal, target, result.
    for s in &r.sent {
        let got = from(&sigs, s.pid);
        let targets: Vec<i32> = if s.how == "killpg" {
            r.group.clone()
        } else {
            vec![s.to]
        };
        assert_eq!(got.len(), targets.len(), "{log}: {}", s.comm);
        for g in &got {
            let e = &g.event;
            assert_eq!(
                e.sender().map(|t| t.comm.as_str()),
                Some(s.comm.as_str()),
                "{log}"
            );
            assert_eq!(e.running.uid, Some(s.uid), "{log}: {}", s.comm);
            assert_eq!(e.sig, s.sig, "{log}: {}", s.comm);
            assert_eq!(e.cause, Some(whosent_proto::cause::Cause::Kill));
            assert!(
                targets.contains(&e.target.pid.unwrap()),
                "{log}: {}: {:?}",
                s.comm,
                e.target
            );
            let a = &g.audit;
            let want_call = match s.how.as_str() {
                "kill" | "killpg" => "kill",
                "sigqueue" => "rt_sigqueueinfo",
                "tgsigqueue" => "rt_tgsigqueueinfo",
                "pidfd" => "pidfd_send_signal",
                h => h,
            };
            assert_eq!(a.syscall.name(), want_call, "{log}: {}", s.comm);
            assert_eq!((a.arch, a.sender.auid), ("x86_64", Some(1000)), "{log}");
            assert_eq!(a.success, Some(s.err.is_none()), "{log}: {}", s.comm);
            let err = a
                .exit
                .filter(|x| *x < 0)
                .and_then(|x| whosent_audit::errno::name(-x));
            assert_eq!(err, s.err.as_deref(), "{log}: {}", s.comm);
            assert!(a
                .sender
                .exe
                .as_deref()
                .unwrap()
                .ends_with("/bin/test_sender"));
            assert!(e
                .running
                .cmdline
                .as_deref()
                .unwrap()
                .contains(&format!("--comm {}", s.comm)));
        }
        if s.how == "killpg" {
            let mut pids: Vec<i32> = got.iter().map(|g| g.event.target.pid.unwrap()).collect();
            pids.sort();
            let mut want = r.group.clone();
            want.sort();
            assert_eq!(pids, want, "{log}: every member of group {}", r.pgid);
        }
    }
    // What each receiver's siginfo says: a record with that sender pid
    // and uid, that signal, to that receiver.
    for (comm, sig, si_pid, si_uid) in &r.got {
        let hit = sigs.iter().any(|s| {
            s.event.running.pid == Some(*si_pid)
                && s.event.running.uid == Some(*si_uid)
                && s.event.sig == *sig
                && s.event.target.comm == *comm
                && s.audit.success == Some(true)
        });
        assert!(
            hit,
            "{log}: no record for {comm}'s sig {sig} from {si_pid} uid {si_uid}"
        );
    }
    // The refused one: the target is named although the call failed,
    // with the target's own uid.
    let denied = &from(
        &sigs,
        r.sent.iter().find(|s| s.comm == "denied").unwrap().pid,
    )[0];
    assert_eq!(denied.event.target.pid, Some(r.receivers["victim"]));
    assert_eq!(
        (denied.event.running.uid, denied.audit.target.uid),
        (Some(65534), Some(0))
    );
    // ESRCH: no OBJ_PID, the target is the call's argument.
    let gone = &from(&sigs, r.sent.iter().find(|s| s.comm == "gone").unwrap().pid)[0];
    assert_eq!(
        (gone.event.target.pid, gone.event.target.comm.as_str()),
        (Some(r.gone), "<...>")
    );
    // The i386 sender: b32 numbers (kill 37, tgkill 270).
    let b32 = from(&sigs, r.b32);
    let calls: Vec<_> = b32
        .iter()
        .map(|s| {
            (
                s.audit.arch,
                s.audit.syscall.name(),
                s.audit.syscall_nr,
                s.event.sig,
            )
        })
        .collect();
    assert_eq!(
        calls,
        [("i386", "kill", 37, 10), ("i386", "tgkill", 270, 12)],
        "{log}"
    );
    assert_eq!(b32[0].event.running.comm, "kill32");
    assert!(
        b32[0]
            .audit
            .sender
            .exe
            .as_deref()
            .unwrap()
            .ends_with("/b32 bin/kill32"),
        "hex exe decoded"
    );
    // procps's /bin/kill.
    let procps: Vec<_> = sigs
        .iter()
        .filter(|s| s.event.running.comm == "kill")
        .collect();
    assert_eq!(procps.len(), 1);
    assert_eq!(procps[0].audit.sender.exe.as_deref(), Some("/usr/bin/kill"));
    assert_eq!(
        procps[0].event.running.cmdline.as_deref(),
        Some(format!("/bin/kill -s TERM {}", r.receivers["victim"]).as_str())
    );
    // 10 test_sender calls (killpg: three targets), two b32 calls, /bin/kill.
    assert_eq!(sigs.len(), 9 + 3 + 2 + 1, "{log}");
}

#[test]
fn the_raw_log_gives_every_sender_the_programs_saw() {
    check_against_run("raw.log", "run-raw.txt");
}

#[test]
fn the_enriched_log_gives_every_sender_the_programs_saw() {
    check_against_run("enriched.log", "run-enriched.txt");
    // ENRICHED adds the machine's names.
    let sigs = signals("enriched.log");
    let nobody = sigs
        .iter()
        .find(|s| s.event.running.comm == "nobody kill")
        .unwrap();
    assert_eq!(nobody.audit.sender.user.as_deref(), Some("nobody"));
    assert_eq!(nobody.audit.sender.login_user.as_deref(), Some("cloudsdk"));
    assert_eq!(nobody.audit.target.user.as_deref(), Some("nobody"));
}

#[test]
fn ausearch_output_gives_the_same_records_as_the_log() {
    check_against_run("ausearch.txt", "run-raw.txt");
    let key = |s: &AuditSignal| {
        (
            s.audit.serial,
            s.event.target.pid,
            s.event.running.pid,
            s.event.running.comm.clone(),
            s.event.sig,
            s.audit.success,
            s.audit.exit,
            s.event.running.cmdline.clone(),
        )
    };
    let mut log: Vec<_> = signals("raw.log").iter().map(key).collect();
    let mut aus: Vec<_> = signals("ausearch.txt").iter().map(key).collect();
    let mut int: Vec<_> = signals("ausearch-i.txt").iter().map(key).collect();
    log.sort();
    aus.sort();
    int.sort();
    assert_eq!(log, aus);
    assert_eq!(log, int, "ausearch -i");
}

#[test]
fn ausearch_i_gives_names_for_the_ids() {
    let sigs = signals("ausearch-i.txt");
    let denied = sigs
        .iter()
        .find(|s| s.event.running.comm == "denied")
        .unwrap();
    // -i writes uid=nobody: the number is gone, the name is kept.
    assert_eq!(denied.event.running.uid, None);
    assert_eq!(denied.audit.sender.user.as_deref(), Some("nobody"));
    assert_eq!(denied.audit.target.user.as_deref(), Some("root"));
    assert_eq!(denied.audit.exit, Some(-1));
    let ts: Vec<u64> = signals("raw.log").iter().map(|s| s.event.ts_ns).collect();
    assert!(
        ts.contains(&denied.event.ts_ns),
        "-i's local time read as UTC (the recording machine's zone)"
    );
}

#[test]
fn records_are_joined_by_serial_in_any_order() {
    let text = read("raw.log");
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
    let want = {
        let mut v: Vec<String> = signals("raw.log").iter().map(|s| s.human_line()).collect();
        v.sort();
        v
    };
    // Reversed, and a fixed shuffle (a stride coprime to the length).
    let n = lines.len();
    let stride = (7..n).find(|s| gcd(*s, n) == 1).unwrap();
    for order in [
        (0..n).rev().collect::<Vec<_>>(),
        (0..n).map(|i| i * stride % n).collect(),
    ] {
        let shuffled: Vec<u8> = order
            .iter()
            .flat_map(|&i| [lines[i], b"\n"].concat())
            .collect();
        let mut got: Vec<String> = parse_all(&shuffled)
            .into_iter()
            .map(|i| i.unwrap().human_line())
            .collect();
        got.sort();
        assert_eq!(got, want);
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[test]
fn the_json_record_reads_back_as_documented() {
    let sigs = signals("raw.log");
    let denied = sigs
        .iter()
        .find(|s| s.event.running.comm == "denied")
        .unwrap();
    let mut s = String::new();
    denied.encode(&mut s);
    assert!(s.ends_with("}\n") && s.matches('\n').count() == 1);
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["type"], "signal");
    assert_eq!(v["cause"], "kill");
    assert_eq!(v["sig"], 15);
    assert_eq!(v["sender"]["comm"], "denied");
    assert_eq!(v["sender"]["uid"], 65534);
    assert_eq!(v["target"]["comm"], "victim");
    assert_eq!(v["result"], serde_json::Value::Null);
    let a = &v["audit"];
    assert_eq!(a["syscall"], "kill");
    assert_eq!(a["arch"], "x86_64");
    assert_eq!(a["success"], false);
    assert_eq!(a["exit"], -1);
    assert_eq!(a["error"], "EPERM");
    assert_eq!(a["sender"]["auid"], 1000);
    assert_eq!(a["target"]["uid"], 0);
    assert_eq!(a["key"], "whosent-fixture");
    assert_eq!(a["args"][1], "0xf");
}
