//! `--stream` (issue #11): a consumer that does not read makes the
//! output lag, not the kernel lose events, as long as the agent's spool
//! has room; past that, every event lost is counted. The stream is
//! decoded by `whosent-deploy parse`, as the host would.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_whosent-agent");
const T: Duration = Duration::from_secs(30);
const STORM: u64 = 60_000;

/// (sent, signals reported for the receiver, end record) of a storm
/// recorded by an agent whose stdout nobody reads until it is over.
fn storm_with_stalled_reader(spool_kb: &str) -> (u64, u64, Value) {
    // One storm at a time: two storms on two cores starve the agent of
    // CPU, and a 256 KiB kernel buffer then overruns (the "lag, not lose"
    // test saw `lost: 2028` when both tests ran at once).
    static ONE_STORM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_STORM.lock().unwrap_or_else(|p| p.into_inner());
    let mut storm = Proc::spawn(Command::new(sibling(AGENT, "signal_storm")).args([
        "--count",
        &STORM.to_string(),
        "--sig",
        "10",
        "--wait-stdin",
    ]));
    let receiver = num(
        &storm.until(T, |l| l.starts_with("storm ready")),
        "receiver",
    );
    // A 256 KiB kernel buffer holds about 5,000 events, a tenth of the
    // storm: without the spool (and with nobody reading) it would overrun.
    let mut a = Command::new(AGENT)
        .args(["--stream", "--sig", "USR1", "--pid", &receiver.to_string()])
        .args(["--buffer-kb", "256", "--spool-kb", spool_kb])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let prefix = format!("whosent-{}-", a.id());
    assert!(
        eventually(T, || std::fs::read_dir("/sys/kernel/tracing/instances")
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))),
        "the agent did not start"
    );
    std::thread::sleep(Duration::from_millis(300));
    storm.write_stdin("go\n");
    let sent = num(&storm.until(T, |l| l.starts_with("storm sent=")), "sent") as u64;
    std::thread::sleep(Duration::from_millis(300));
    // Now read, then stop the agent.
    let mut out = a.stdout.take().unwrap();
    drop(a.stdin.take());
    let mut bytes = Vec::new();
    out.read_to_end(&mut bytes).unwrap();
    assert!(a.wait().unwrap().success());
    let file = std::env::temp_dir().join(format!(
        "whosent-spool-{}-{spool_kb}.wst",
        std::process::id()
    ));
    std::fs::write(&file, &bytes).unwrap();
    let p = Command::new(sibling(AGENT, "whosent-deploy"))
        .arg("parse")
        .arg(&file)
        .arg("--json")
        .output()
        .unwrap();
    std::fs::remove_file(&file).unwrap();
    let recs: Vec<Value> = String::from_utf8(p.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let signals = recs
        .iter()
        .filter(|r| r["type"] == "signal" && r["target"]["pid"] == receiver)
        .count() as u64;
    let end = recs.last().unwrap().clone();
    assert_eq!(end["type"], "end", "{end}");
    (sent, signals, end)
}

#[test]
fn a_stalled_reader_makes_output_lag_not_lose() {
    if !real_kernel("spool") {
        return;
    }
    let (sent, signals, end) = storm_with_stalled_reader("8192");
    assert_eq!(sent, STORM);
    assert_eq!(end["lost"], 0, "{end}");
    assert_eq!(signals, sent, "{end}");
}

#[test]
fn a_full_spool_loses_events_and_counts_every_one() {
    if !real_kernel("spool full") {
        return;
    }
    let (sent, signals, end) = storm_with_stalled_reader("64");
    let lost = end["lost"].as_u64().unwrap();
    assert!(
        lost > 0,
        "64 KiB of spool and a stalled reader cannot hold {sent} events: {end}"
    );
    assert_eq!(end["signals"].as_u64().unwrap(), signals);
    // Every kill() is reported or counted lost (the count may include
    // other events of the instance, hence >=).
    assert!(
        signals + lost >= sent,
        "reported {signals} + lost {lost} < sent {sent}"
    );
}
