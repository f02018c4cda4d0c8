//! The trace.dat reader on arbitrary bytes: it must return an error or
//! records, never panic, hang or allocate without bound. Seeds: the
//! trace.dat fixtures (scripts/fuzz.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;
use whosent_ftrace::tracedat::TraceDat;

/// Well under libFuzzer's 2 GiB RSS limit, however the input is shaped.
const LIMIT: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(dat) = TraceDat::parse_with_limit(data, LIMIT) else {
        return;
    };
    for r in dat.records() {
        let _ = r;
    }
    if let Ok(signals) = dat.signals() {
        for s in signals {
            let _ = s;
        }
    }
});
