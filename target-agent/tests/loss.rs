//! Lost events are reported, never silent: with a tiny buffer and the
//! agent stopped (SIGSTOP) while a storm runs, the kernel overwrites
//! events, and the agent's `lost` records and `end` count must account
//! for every signal the storm sent that it did not report.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_whosent-agent");
const T: Duration = Duration::from_secs(20);

#[test]
fn an_overrun_is_counted_exactly() {
    if !real_kernel("loss") {
        return;
    }
    let mut storm = Proc::spawn(Command::new(sibling(AGENT, "signal_storm")).args([
        "--count",
        "20000",
        "--sig",
        "10",
        "--wait-stdin",
    ]));
    let receiver = num(
        &storm.until(T, |l| l.starts_with("storm ready")),
        "receiver",
    );
    let mut a = Proc::spawn(Command::new(AGENT).args([
        "--sig",
        "USR1",
        "--pid",
        &receiver.to_string(),
        "--buffer-kb",
        "16",
    ]));
    a.until(T, |l| l.contains(r#""type":"ready""#));
    a.signal(libc::SIGSTOP);
    storm.write_stdin("go\n");
    let done = storm.until(T, |l| l.starts_with("storm sent="));
    let sent = num(&done, "sent") as u64;
    a.signal(libc::SIGCONT);
    // Let it drain what the buffer still holds, then stop it.
    std::thread::sleep(Duration::from_millis(500));
    a.close_stdin();
    let lines = a.rest(T);
    let recs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let signals = recs
        .iter()
        .filter(|r| r["type"] == "signal" && r["target"]["pid"] == receiver)
        .count() as u64;
    let lost_records: u64 = recs
        .iter()
        .filter(|r| r["type"] == "lost")
        .map(|r| r["count"].as_u64().unwrap_or(0))
        .sum();
    let end = recs
        .iter()
        .find(|r| r["type"] == "end")
        .expect("an end record");
    let lost = end["lost"].as_u64().unwrap();
    assert!(lost > 0, "a 16 KiB buffer cannot hold {sent} events: {end}");
    assert_eq!(lost, lost_records, "lost records add up to the end count");
    assert_eq!(end["signals"].as_u64().unwrap(), signals);
    // Each kill() generates one event for the receiver; all are either
    // reported or counted lost (the count may include the few task
    // events of the same instance, hence >=).
    assert!(
        signals + lost >= sent,
        "reported {signals} + lost {lost} < sent {sent}"
    );
    assert!(signals > 0);
}
