//! The ftrace text parser on arbitrary bytes: every line either parses,
//! is skipped, or is an error item, never a panic. Seeds: the recorded
//! ftrace text fixtures (scripts/fuzz.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;
use whosent_ftrace::text;

fuzz_target!(|data: &[u8]| {
    for item in text::parse(data) {
        if let Ok(text::TextItem::Signal(s)) = item {
            let _ = s.into_event();
        }
    }
});
