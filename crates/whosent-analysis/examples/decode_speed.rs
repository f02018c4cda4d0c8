//! How fast the host decodes a saved stream into records, with lineage
//! and JSON encoding but no output: `cargo run --release -p
//! whosent-analysis --example decode_speed -- FILE` (a stream saved with
//! `whosent-deploy --save FILE`).

use std::time::Instant;
use whosent_analysis::pipeline::{Lineage, Sink};
use whosent_analysis::session::{Records, Session};
use whosent_proto::query::Query;
use whosent_proto::record::{End, EndReason, ErrorRec, Lost, Ready, SignalEvent};
use whosent_stream::decode::Decoder;

#[derive(Default)]
struct Count {
    signals: u64,
    bytes: usize,
    buf: String,
    /// `NO_JSON=1`: decode only, to tell the two costs apart.
    no_json: bool,
}

impl Sink for Count {
    fn signal(&mut self, e: &SignalEvent, lineage: Option<&Lineage>) {
        self.signals += 1;
        if self.no_json {
            return;
        }
        self.buf.clear();
        e.encode_with(&mut self.buf, lineage.map(|l| l.json.as_str()));
        self.bytes += self.buf.len();
    }
    fn lost(&mut self, _: &Lost) {}
    fn exit(&mut self, _: &whosent_proto::record::ExitRec) {}
}

impl Records for Count {
    fn ready(&mut self, _: &Ready) {}
    fn end(&mut self, e: &End) {
        eprintln!("end: {e:?}");
    }
    fn error(&mut self, e: &ErrorRec) {
        eprintln!("error: {e:?}");
    }
    fn repeat(&mut self, _: &whosent_proto::record::RepeatRec) {}
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: decode_speed FILE");
    let data = std::fs::read(&path).expect("read");
    let t = Instant::now();
    let mut d = Decoder::new();
    let mut s = Session::new(Query::default(), None);
    let mut out = Count {
        no_json: std::env::var_os("NO_JSON").is_some(),
        ..Default::default()
    };
    for chunk in data.chunks(64 * 1024) {
        d.push(chunk);
        while let Some(f) = d.next_frame().expect("frame") {
            s.frame(f, &mut out).expect("session");
        }
    }
    s.finish(&d.finish(), EndReason::Eof, &mut out);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} signals in {secs:.3} s: {:.2} M/s, {} B of JSON per record",
        out.signals,
        out.signals as f64 / secs / 1e6,
        out.bytes / out.signals.max(1) as usize
    );
}
