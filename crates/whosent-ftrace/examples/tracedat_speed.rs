//! How fast the trace.dat reader decodes: `cargo run --release -p
//! whosent-ftrace --features tracedat --example tracedat_speed FILE`
//! prints the events and signals per second of parse + signals() on
//! FILE (read into memory first; the disk is not timed).

use std::time::Instant;
use whosent_ftrace::tracedat::signals::DatItem;
use whosent_ftrace::tracedat::TraceDat;

fn main() {
    let path = std::env::args().nth(1).expect("usage: tracedat_speed FILE");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = Instant::now();
    let dat = TraceDat::parse(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
    let parsed = start.elapsed();
    let (mut signals, mut lost) = (0u64, 0u64);
    for item in dat.signals().unwrap() {
        match item {
            Ok(DatItem::Signal(_)) => signals += 1,
            Ok(DatItem::Lost { .. }) => lost += 1,
            Err(_) => {}
        }
    }
    let total = start.elapsed();
    // Not timed: how many events of any kind there were.
    let events = dat.records().count();
    println!(
        "{path}: {} bytes; parse (incl. decompression) {:.1} ms; {events} records, {signals} signals, {lost} losses; {:.1} ms in all; {:.2} M signals/s",
        bytes.len(),
        parsed.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        signals as f64 / total.as_secs_f64() / 1e6
    );
}
