//! `whosent-deploy parse` on audit logs, as a user runs it: the logs a
//! real auditd wrote (crates/whosent-audit/tests/fixtures/host-6.18),
//! checked against what the recorded programs said they did
//! (run-raw.txt: each sender's pid, uid and errno).

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");

fn fixture(name: &str) -> String {
    format!(
        "{}/../crates/whosent-audit/tests/fixtures/host-6.18/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn parse(args: &[&str]) -> Output {
    Command::new(DEPLOY)
        .arg("parse")
        .args(args)
        .output()
        .unwrap()
}

fn parse_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut c = Command::new(DEPLOY)
        .arg("parse")
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input).unwrap();
    c.wait_with_output().unwrap()
}

fn records(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// (comm, pid, uid, errno or "ok") of each test_sender call in the run.
fn senders() -> Vec<(String, i64, i64, String)> {
    let text = std::fs::read_to_string(fixture("run-raw.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(": sent "))
        .map(|(comm, rest)| {
            let v = |k: &str| {
                rest.split(' ')
                    .find_map(|w| w.strip_prefix(&format!("{k}=")).map(String::from))
                    .unwrap()
            };
            let res = rest
                .rsplit_once("err=")
                .map_or("ok".into(), |(_, e)| e.to_string());
            (
                comm.to_string(),
                v("sender_pid").parse().unwrap(),
                v("uid").parse().unwrap(),
                res,
            )
        })
        .collect()
}

#[test]
fn an_audit_log_gives_each_sender_with_its_uid_and_result() {
    for file in ["raw.log", "enriched.log", "ausearch.txt"] {
        let out = parse(&["--json", &fixture(file)]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{file}");
        let recs = records(&out);
        let end = recs.last().unwrap();
        assert_eq!(
            (end["type"].as_str(), end["reason"].as_str()),
            (Some("end"), Some("eof"))
        );
        assert_eq!(end["signals"], 15, "{file}");
        if file == "enriched.log" {
            continue; // another run: other pids (the crate's tests check it)
        }
        for (comm, pid, uid, res) in senders() {
            let r = recs
                .iter()
                .find(|r| r["sender"]["pid"] == pid)
                .unwrap_or_else(|| panic!("{file}: no record of {comm} ({pid})"));
            assert_eq!(r["cause"], "kill");
            assert_eq!(r["sender"]["comm"], comm.as_str(), "{file}");
            assert_eq!(r["sender"]["uid"], uid, "{file}: {comm}");
            let got = r["audit"]["error"].as_str().unwrap_or("ok");
            assert_eq!(got, res, "{file}: {comm}");
        }
    }
}

#[test]
fn the_human_line_names_the_call_and_the_uids() {
    let out = parse(&["--sender-comm", "denied", &fixture("raw.log")]);
    assert_eq!(out.status.code(), Some(0));
    let (_, pid, ..) = senders().into_iter().find(|s| s.0 == "denied").unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().next().unwrap();
    assert!(
        line.starts_with(&format!("SIGTERM: denied({pid}) -> victim(")),
        "{line}"
    );
    assert!(
        line.ends_with("code=SI_USER  kill() failed: EPERM  uid=65534 auid=1000 -> uid=0"),
        "{line}"
    );
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn ausearch_i_from_stdin_is_told_by_content() {
    let input = std::fs::read(fixture("ausearch-i.txt")).unwrap();
    let out = parse_stdin(&["--sig", "USR2", "--comm", "member-a"], &input);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("SIGUSR2: group-kill("), "{text}");
    assert!(
        text.trim_end()
            .ends_with("kill() ok  uid=root auid=cloudsdk -> uid=root"),
        "{text}"
    );
    // No signal matches: exit 1, as for any trace.
    let none = parse_stdin(&["--pid", "1"], &input);
    assert_eq!(none.status.code(), Some(1));
}

#[test]
fn a_damaged_line_is_a_warning_and_the_rest_is_read() {
    let mut input = std::fs::read(fixture("raw.log")).unwrap();
    input.extend_from_slice(b"type=SYSCALL msg=audit(1796124521\n");
    let out = parse_stdin(&["--json"], &input);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        "whosent-deploy: warning: stdin: line 63: not an audit record: msg=audit( is not closed \
         (help: the line was cut or edited; the other records are still read)"
    );
    assert_eq!(records(&out).len(), 16);
}
