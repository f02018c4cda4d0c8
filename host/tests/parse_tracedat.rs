//! `whosent-deploy parse` on trace-cmd's trace.dat, as a user runs it.
//! The independent oracle is trace-cmd: for each fixture, the records
//! from the trace.dat must be the records `parse` gives for the text
//! `trace-cmd report` printed from the same file
//! (tests/fixtures/host-6.18/tracedat/README.md).

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");

fn fixture(name: &str) -> String {
    format!(
        "{}/../tests/fixtures/host-6.18/tracedat/{name}",
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

fn records(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `report.txt` has no flags column, so its records are all in task
/// context; `report-l.txt` has the flags but cuts comms to 8 bytes. The
/// expected record is report.txt's, with the context (and with it who
/// is the sender) from report-l.txt.
fn expected(plain: &Value, with_flags: &Value) -> Value {
    let mut e = plain.clone();
    if e["type"] == "signal" && with_flags["context"] != "task" {
        for k in ["context", "origin", "cause", "sender", "running"] {
            e[k] = with_flags[k].clone();
        }
        // The full comm: report.txt's, wherever its record put the task
        // (a timer's cause leaves `sender` null there too).
        let who = if plain["sender"].is_null() {
            "running"
        } else {
            "sender"
        };
        e["running"]["comm"] = plain[who]["comm"].clone();
    }
    e
}

#[test]
fn trace_dat_gives_the_records_of_its_trace_cmd_report() {
    for name in ["v6", "v7", "v7-zstd", "v7-zstd-dropped"] {
        let dat = parse(&["--json", &fixture(&format!("{name}.dat"))]);
        assert_eq!(dat.status.code(), Some(0), "{name}: {}", stderr(&dat));
        assert_eq!(stderr(&dat), "", "{name}");
        let plain = parse(&["--json", &fixture(&format!("{name}.report.txt"))]);
        let flags = parse(&["--json", &fixture(&format!("{name}.report-l.txt"))]);
        let (dat, plain, flags) = (records(&dat), records(&plain), records(&flags));
        assert_eq!(dat.len(), plain.len(), "{name}");
        assert_eq!(dat.len(), flags.len(), "{name}");
        assert!(dat.len() > 500, "{name}: {}", dat.len());
        for (i, (d, (p, f))) in dat.iter().zip(plain.iter().zip(&flags)).enumerate() {
            assert_eq!(*d, expected(p, f), "{name}, record {i}");
        }
        let end = dat.last().unwrap();
        assert_eq!(
            (&end["type"], &end["reason"]),
            (&"end".into(), &"eof".into())
        );
    }
}

#[test]
fn the_query_filters_trace_dat_as_it_does_text() {
    let out = parse(&[
        "--sig",
        "TERM",
        "--comm",
        "test_receiver",
        &fixture("v7-zstd.dat"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with("SIGTERM: test_sender(tid "), "{text}");
    assert!(lines[0].ends_with("code=SI_TKILL  delivered"), "{text}");
    // Nothing matches: exit 1, and no complaint.
    let out = parse(&["--sig", "KILL", &fixture("v6.dat")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "");
}

#[test]
fn lost_events_are_reported_and_counted() {
    let out = parse(&[
        "--json",
        "--comm",
        "nobody",
        &fixture("v7-zstd-dropped.dat"),
    ]);
    let recs = records(&out);
    assert_eq!(out.status.code(), Some(1), "no signal matched");
    let lost: Vec<&Value> = recs.iter().filter(|r| r["type"] == "lost").collect();
    let report = std::fs::read_to_string(fixture("v7-zstd-dropped.report.txt")).unwrap();
    // trace-cmd: `CPU:0 [1014 EVENTS DROPPED]`
    let marker = report
        .lines()
        .find(|l| l.contains("EVENTS DROPPED"))
        .unwrap();
    let n: u64 = marker
        .split('[')
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(lost.len(), 1, "{recs:?}");
    assert_eq!(lost[0]["count"], n);
    assert_eq!(recs.last().unwrap()["lost"], n);
}

#[test]
fn stdin_is_told_apart_by_content_too() {
    for name in ["v7.dat", "v7.report.txt"] {
        let mut child = Command::new(DEPLOY)
            .args(["parse", "--json", "--comm", "test_receiver", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = std::fs::read(fixture(name)).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let recs = records(&out);
        let sigs: Vec<i64> = recs.iter().filter_map(|r| r["sig"].as_i64()).collect();
        assert_eq!(sigs, [10, 35, 15, 14], "{name}");
    }
}

/// A copy of `name` cut to `len` bytes, or with `patch` written at `at`.
fn damaged(name: &str, len: usize, at: usize, patch: &[u8]) -> tempfile_path::Path {
    let mut b = std::fs::read(fixture(name)).unwrap();
    b.truncate(len);
    if at + patch.len() <= b.len() {
        b[at..at + patch.len()].copy_from_slice(patch);
    }
    tempfile_path::write(&b)
}

#[test]
fn a_cut_or_corrupt_trace_dat_is_one_line_with_help_and_exit_2() {
    let v7 = std::fs::read(fixture("v7.dat")).unwrap();
    let cases = [
        // v7 keeps its options at the end: cut, nothing is left.
        damaged("v7.dat", v7.len() / 2, 0, &[]),
        // The magic and a version that does not exist.
        damaged("v6.dat", 64, 10, b"9"),
        // Cut inside the header.
        damaged("v6.dat", 14, 0, &[]),
    ];
    for p in &cases {
        let out = parse(&[p.as_str()]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert_eq!(out.stdout, b"", "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("whosent-deploy: error: "), "{err}");
        assert!(err.contains("(help: "), "{err}");
        assert!(err.contains("trace.dat"), "{err}");
    }
}

#[test]
fn a_v6_cut_in_its_cpu_data_gives_what_came_before_and_a_warning() {
    let whole = parse(&["--json", &fixture("v6.dat")]);
    let whole = records(&whole);
    // v6 has the metadata first; cut into the second CPU's data.
    let len = std::fs::read(fixture("v6.dat")).unwrap().len();
    let p = damaged("v6.dat", len - 2048, 0, &[]);
    let out = parse(&["--json", p.as_str()]);
    let err = stderr(&out);
    assert!(
        err.contains("warning: ") && err.contains("truncated"),
        "{err}"
    );
    assert!(err.contains("(help: "), "{err}");
    let cut = records(&out);
    assert!(
        cut.len() > 1 && cut.len() < whole.len(),
        "{} of {}",
        cut.len(),
        whole.len()
    );
    // Every record that is there is one of the whole file's.
    for r in &cut[..cut.len() - 1] {
        assert!(whole.contains(r), "{r}");
    }
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// Temporary files without another dependency: a unique path under the
/// target directory's tmp, removed on drop.
mod tempfile_path {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);

    pub struct Path(String);

    impl Path {
        pub fn as_str(&self) -> &str {
            &self.0
        }
    }

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    pub fn write(bytes: &[u8]) -> Path {
        let dir = env!("CARGO_TARGET_TMPDIR");
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = format!("{dir}/parse-tracedat-{}-{n}.dat", std::process::id());
        std::fs::write(&p, bytes).unwrap();
        Path(p)
    }
}
