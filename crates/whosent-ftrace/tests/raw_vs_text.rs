//! The raw decoder checked against the kernel's own text rendering of
//! the same events: one `trace_pipe_raw` page recorded on each emulated
//! board (64-bit arm64 and 32-bit armhf, whose page header differs),
//! decoded with that board's `header_page` and `format` files, must give
//! exactly what the board's `per_cpu/cpu0/trace` printed.
//! (How they were recorded: tests/fixtures/*/README.md.)

use whosent_ftrace::format::EventFormat;
use whosent_ftrace::header_page::PageLayout;
use whosent_ftrace::page::Page;
use whosent_ftrace::signal_generate::SignalLayout;
use whosent_ftrace::text::{self, TextItem};

fn fixture(board: &str, rel: &str) -> Vec<u8> {
    let p = format!(
        "{}/../../tests/fixtures/{board}/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn check(board: &str, commit_size: usize) {
    let layout = PageLayout::parse(fixture(board, "events/header_page").as_slice()).unwrap();
    assert_eq!(layout.commit_size, commit_size);
    let fmt = EventFormat::parse(fixture(board, "events/signal/signal_generate/format").as_slice())
        .unwrap();
    let sig = SignalLayout::new(&fmt).unwrap();
    let raw = fixture(board, "per_cpu/cpu0/trace_pipe_raw");
    let page = Page::parse(&layout, &raw).unwrap();
    let decoded: Vec<_> = page
        .events()
        .map(Result::unwrap)
        .filter(|e| e.id() == Some(sig.id))
        // The kernel prints microseconds rounded to nearest (ns2usecs()).
        .map(|e| ((e.ts + 500) / 1000, sig.decode(e.data).unwrap()))
        .collect();
    let text: Vec<_> = text::parse(fixture(board, "per_cpu/cpu0/trace").as_slice())
        .filter_map(|i| match i.unwrap() {
            TextItem::Signal(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(!text.is_empty());
    assert_eq!(
        decoded.len(),
        text.len(),
        "{board}: raw and text disagree on the count"
    );
    for ((ts_us, r), t) in decoded.iter().zip(&text) {
        assert_eq!(*ts_us, t.ts_ns / 1000, "{board}: timestamp");
        assert_eq!(r.running_tid, t.running_tid);
        assert_eq!((r.sig, r.errno, r.code), (t.sig, t.errno, t.code));
        assert_eq!(
            (r.target_tid, r.target_comm.as_str()),
            (t.target_tid, t.target_comm.as_str())
        );
        assert_eq!(r.group.map(i32::from), t.group);
        assert_eq!(r.result, t.result);
        assert_eq!(r.context, t.context);
    }
}

#[test]
fn arm64_page_matches_its_text() {
    check("arm64-6.1", 8);
}

#[test]
fn armhf_page_matches_its_text() {
    check("armhf-6.1", 4);
}
