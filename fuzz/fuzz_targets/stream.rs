//! The capture stream decoder and the session behind it, on arbitrary
//! bytes (docs/stream-format.md): no panic, no unbounded allocation, and
//! the stream is decoded the same whether the bytes come whole or split.
//! Seed it with tests/fixtures/host-6.18/stream-kill.wst:
//!
//! ```sh
//! mkdir -p fuzz/corpus/stream && cp tests/fixtures/host-6.18/stream-kill.wst fuzz/corpus/stream/
//! RUSTC_BOOTSTRAP=1 cargo fuzz run stream fuzz/corpus/stream -- -max_total_time=60
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use whosent_analysis::session::{Collect, Session};
use whosent_proto::query::Query;
use whosent_proto::record::EndReason;
use whosent_stream::decode::Decoder;

/// Decodes `chunks` in order; returns the frames' debug text and the records.
fn run(chunks: &[&[u8]]) -> (Vec<String>, String) {
    let mut d = Decoder::new();
    let mut s = Session::new(Query::default(), None);
    let mut out = Collect::default();
    let mut frames = Vec::new();
    'input: for c in chunks {
        d.push(c);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    frames.push(format!("{f:?}"));
                    if s.frame(f, &mut out).is_err() {
                        break 'input;
                    }
                }
                Ok(None) => break,
                Err(_) => break 'input,
            }
        }
    }
    s.finish(&d.finish(), EndReason::Eof, &mut out);
    (frames, format!("{:?}", (out.signals, out.lost, out.end)))
}

fuzz_target!(|data: &[u8]| {
    let whole = run(&[data]);
    let mid = data.len() / 2;
    let split = run(&[&data[..mid], &data[mid..]]);
    assert_eq!(whole, split);
});
