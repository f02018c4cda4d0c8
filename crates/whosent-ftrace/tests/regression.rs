//! Regression tests, each named after what found the bug and what it
//! was. Inputs found by fuzzing (scripts/fuzz.sh) are cut down to the
//! bytes that matter and built here, so the test says what they mean.

use whosent_ftrace::header_page::PageLayout;
use whosent_ftrace::page::Page;

const L64: PageLayout = PageLayout {
    ts_offset: 0,
    commit_offset: 8,
    commit_size: 8,
    data_offset: 16,
};

fn page(body: &[u8], commit_flags: u64) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    p[8..16].copy_from_slice(&(body.len() as u64 | commit_flags).to_ne_bytes());
    p[16..16 + body.len()].copy_from_slice(body);
    p
}

/// fuzz target `tracedat`, a timeout: a page whose last word is a
/// padding header (type_len 29, delta 1) with no room for its length.
/// `Events` returned the same error again and again without moving on,
/// and the reader's search for a lost-events page's first event
/// (`find_map(Result::ok)`) never ended.
#[test]
fn fuzz_tracedat_timeout_events_end_after_an_error() {
    let padding_without_length = (29u32 | (1 << 5)).to_ne_bytes();
    let buf = page(&padding_without_length, 1 << 31);
    let p = Page::parse(&L64, &buf).unwrap();
    let items: Vec<_> = p.events().take(3).collect();
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items[0].is_err());
    assert_eq!(p.events().find_map(Result::ok), None);
}
