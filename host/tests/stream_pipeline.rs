//! The capture stream end to end, as a user sees it (issue #11): the
//! agent recording and the host decoding give the same records as the
//! standalone agent, `--save` keeps a stream that `parse` reads back,
//! and a cut stream yields what came before the cut and says so.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
const T: Duration = Duration::from_secs(10);
const KILL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/host-6.18/stream-kill.wst"
);

fn records(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A signal record without what differs between two captures of the
/// same event (each has its own instance, which stamps its own time).
fn comparable(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("ts");
    v
}

#[test]
fn the_host_decodes_what_the_standalone_agent_reports() {
    if !real_kernel("stream vs standalone") {
        return;
    }
    let mut r = Proc::spawn(Command::new(sibling(DEPLOY, "test_receiver")).arg("10"));
    let rpid = num(&r.until(T, |l| l.starts_with("ready")), "pid") as i32;
    wait_comm(rpid, "test_receiver");
    let p = rpid.to_string();
    let dir = std::env::temp_dir().join(format!("whosent-stream-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("capture.wst");
    let q = ["--sig", "USR1", "--pid", &p, "--count", "1"];
    let mut alone = Proc::spawn(Command::new(sibling(DEPLOY, "whosent-agent")).args(q));
    let mut d = Proc::spawn(
        Command::new(DEPLOY)
            .args(["--host", "local", "--json", "--save"])
            .arg(&saved)
            .args(q),
    );
    alone.until(T, |l| l.contains(r#""type":"ready""#));
    d.until(T, |l| l.contains(r#""type":"ready""#));
    // The sender stays 2 s after its kill (then sends a second one,
    // after both captures ended): each agent reads its /proc facts after
    // the fact, and on a loaded machine one of them found it gone (nspid
    // null) where the other did not, which is right for each.
    let out = Command::new(sibling(DEPLOY, "test_sender"))
        .args(["--repeat", "2", "--delay-ms", "2000", "kill", "10", &p])
        .output()
        .unwrap();
    assert!(out.status.success());
    let got = r.until(T, |l| l.starts_with("got"));
    let a = records(&alone.rest(T));
    let h = records(&d.rest(T));
    assert_eq!((alone.wait(T), d.wait(T)), (0, 0));
    let sig = |v: &[Value]| comparable(v.iter().find(|r| r["type"] == "signal").unwrap().clone());
    let (sa, sh) = (sig(&a), sig(&h));
    assert_eq!(sa, sh, "standalone and streamed records differ");
    assert_eq!(sh["sender"]["pid"], num(&got, "si_pid"));
    assert_eq!(sh["sender"]["uid"], num(&got, "si_uid"));
    assert_eq!(h.last().unwrap()["reason"], "count");
    // The saved stream reads back to the same signal.
    let back = Command::new(DEPLOY)
        .arg("parse")
        .arg(&saved)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(back.status.code(), Some(0));
    let lines: Vec<String> = String::from_utf8(back.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(sig(&records(&lines)), sh);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_cut_file_gives_the_records_before_the_cut_and_says_where() {
    let bytes = std::fs::read(KILL).unwrap();
    let dir = std::env::temp_dir().join(format!("whosent-cut-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let whole = Command::new(DEPLOY)
        .args(["parse", KILL, "--json"])
        .output()
        .unwrap();
    let whole: Vec<Value> = String::from_utf8(whole.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last_signal = whole.iter().rposition(|r| r["type"] == "signal").unwrap();
    // Cut in the middle of the last frame (the END): both signals are
    // there, and the end says the file stopped early.
    let cut = dir.join("cut.wst");
    std::fs::write(&cut, &bytes[..bytes.len() - 1]).unwrap();
    let out = Command::new(DEPLOY)
        .arg("parse")
        .arg(&cut)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the capture stream was cut after"),
        "{stderr}"
    );
    let recs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        recs.iter().filter(|r| r["type"] == "signal").count(),
        whole[..=last_signal]
            .iter()
            .filter(|r| r["type"] == "signal")
            .count()
    );
    assert!(recs
        .iter()
        .any(|r| r["type"] == "lost" && r["count"].is_null()));
    let end = recs.last().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["reason"].as_str()),
        (Some("end"), Some("eof"))
    );
    assert_eq!(out.status.code(), Some(0), "signals were reported");
    // Garbage after the magic is one clear error, exit 2.
    std::fs::write(&cut, [&bytes[..12], &[0xff; 40][..]].concat()).unwrap();
    let out = Command::new(DEPLOY)
        .arg("parse")
        .arg(&cut)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad capture stream"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_save_path_that_cannot_be_written_fails_before_anything_runs() {
    let out = Command::new(DEPLOY)
        .args([
            "--host",
            "local",
            "--save",
            "/nonexistent-dir/x.wst",
            "--sig",
            "USR1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot create --save file /nonexistent-dir/x.wst"),
        "{stderr}"
    );
    // An agent that fails before tracing leaves no file behind.
    let saved = std::env::temp_dir().join(format!("whosent-nosave-{}.wst", std::process::id()));
    let out = Command::new(DEPLOY)
        .args(["--host", "local", "--pid", "2147483000", "--save"])
        .arg(&saved)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such process"));
    assert!(!saved.exists(), "{} was left behind", saved.display());
}

/// A storm in human mode is folded: a few lines, not 50,000, and the
/// counts add up to what was sent; the delivered count is what the
/// receiver's handler saw (signal_storm's `received=`).
#[test]
fn a_storm_is_folded_into_a_few_lines_whose_counts_match_the_receiver() {
    if !real_kernel("storm folding") {
        return;
    }
    const N: u64 = 50_000;
    let mut storm = Proc::spawn(Command::new(sibling(DEPLOY, "signal_storm")).args([
        "--count",
        &N.to_string(),
        "--sig",
        "10",
        "--wait-stdin",
    ]));
    let rpid = num(
        &storm.until(T, |l| l.starts_with("storm ready")),
        "receiver",
    );
    let mut d = Proc::spawn(Command::new(DEPLOY).args([
        "--host",
        "local",
        "--pid",
        &rpid.to_string(),
        "--sig",
        "USR1",
        "--count",
        &N.to_string(),
    ]));
    // The ready line goes to stderr: wait for the instance instead.
    std::thread::sleep(Duration::from_millis(800));
    storm.write_stdin("go\n");
    let done = storm.until(T, |l| l.starts_with("storm sent="));
    assert_eq!(num(&done, "sent") as u64, N);
    let received = num(&done, "received") as u64;
    let lines = d.rest(T);
    assert_eq!(d.wait(T), 0, "{lines:?}");
    assert!(lines.len() <= 8, "not folded: {} lines", lines.len());
    let count = |l: &String| -> u64 {
        l.trim_start()
            .strip_prefix('×')
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let total: u64 = lines
        .iter()
        .map(|l| if l.starts_with("  ×") { count(l) } else { 0 })
        .sum();
    let single = lines.iter().filter(|l| l.starts_with("SIGUSR1:")).count() as u64;
    let counted_runs = lines.iter().filter(|l| l.starts_with("  ×")).count() as u64;
    // Each run is its first line plus, when it folded more, a count.
    assert_eq!(total + (single - counted_runs), N, "{lines:#?}");
    let delivered: u64 = lines
        .iter()
        .filter(|l| l.starts_with("  ×") && l.ends_with("delivered"))
        .map(count)
        .sum();
    assert_eq!(delivered, received, "{lines:#?}");
}
