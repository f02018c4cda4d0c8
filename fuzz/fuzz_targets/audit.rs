//! The audit log reader on arbitrary bytes: every line is a record, is
//! skipped, or is a warning, and every signal record encodes, never a
//! panic. Seeds: the recorded audit logs and ausearch output
//! (crates/whosent-audit/tests/fixtures, scripts/fuzz.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = whosent_audit::Parser::new();
    let mut items = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        p.line(line, &mut items);
    }
    p.finish(&mut items);
    let mut out = String::new();
    for item in items {
        match item {
            Ok(s) => {
                out.clear();
                s.encode(&mut out);
                let _ = s.human_line();
            }
            Err(e) => {
                let _ = (e.to_string(), e.help());
            }
        }
    }
});
