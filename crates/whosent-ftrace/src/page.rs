//! Decoding one page read from `per_cpu/cpuN/trace_pipe_raw`.
//!
//! The layout is the kernel ring buffer's (`kernel/trace/ring_buffer.c`):
//! a page header (see [`PageLayout`]), then events, each starting with
//! a 32-bit word holding a 5-bit `type_len` and a 27-bit time delta.
//! When the kernel dropped events before this page it sets
//! `RB_MISSED_EVENTS` in the commit word, and `RB_MISSED_STORED` when the
//! count fits after the data (`ring_buffer_read_page()`).

use crate::header_page::PageLayout;

const RB_MISSED_EVENTS: u64 = 1 << 31;
const RB_MISSED_STORED: u64 = 1 << 30;
/// The length bits of the commit word. The kernel adds the flags above
/// as `int` constants to a `long` (`local_add(RB_MISSED_EVENTS, ...)`),
/// so on 64-bit kernels they arrive sign-extended, and a page whose flag
/// was added twice has only the high bits set (seen on 6.18 under
/// overrun): any bit from 31 up means events were missed.
const COMMIT_MASK: u64 = RB_MISSED_STORED - 1;
const TYPE_PADDING: u32 = 29;
const TYPE_TIME_EXTEND: u32 = 30;
const TYPE_TIME_STAMP: u32 = 31;
/// Absolute timestamps carry 59 bits; the top bits come from the
/// running clock (`rb_fix_abs_ts()`).
const TS_MSB: u64 = 0xf8 << 56;

/// One decoded page.
#[derive(Debug)]
pub struct Page<'a> {
    pub ts: u64,
    /// Events the kernel dropped before this page: `None` if none,
    /// `Some(None)` if it dropped some but could not store how many.
    pub missed: Option<Option<u64>>,
    data: &'a [u8],
}

/// One event payload with its absolute timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEvent<'a> {
    pub ts: u64,
    /// The record as the event's `format` describes it (common fields first).
    pub data: &'a [u8],
}

impl RawEvent<'_> {
    /// The event id (`common_type`, always the first two bytes).
    pub fn id(&self) -> Option<u16> {
        Some(u16::from_ne_bytes(self.data.get(0..2)?.try_into().ok()?))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError(pub String);

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupt ring-buffer page: {}", self.0)
    }
}

impl std::error::Error for PageError {}

fn word(b: &[u8], at: usize, size: usize) -> Option<u64> {
    let s = b.get(at..at + size)?;
    Some(match size {
        4 => u32::from_ne_bytes(s.try_into().ok()?) as u64,
        8 => u64::from_ne_bytes(s.try_into().ok()?),
        _ => return None,
    })
}

impl<'a> Page<'a> {
    pub fn parse(layout: &PageLayout, buf: &'a [u8]) -> Result<Self, PageError> {
        let short = || PageError(format!("page of {} bytes is too short", buf.len()));
        let ts = word(buf, layout.ts_offset, 8).ok_or_else(short)?;
        let commit = word(buf, layout.commit_offset, layout.commit_size).ok_or_else(short)?;
        let len = (commit & COMMIT_MASK) as usize;
        let data = buf
            .get(layout.data_offset..layout.data_offset + len)
            .ok_or_else(|| PageError(format!("commit {len} overruns a {}-byte page", buf.len())))?;
        let missed = if commit < RB_MISSED_EVENTS {
            None
        } else if commit & RB_MISSED_STORED != 0 {
            Some(word(buf, layout.data_offset + len, layout.commit_size))
        } else {
            Some(None)
        };
        Ok(Page { ts, missed, data })
    }

    pub fn events(&self) -> Events<'a> {
        Events {
            data: self.data,
            pos: 0,
            ts: self.ts,
        }
    }
}

pub struct Events<'a> {
    data: &'a [u8],
    pos: usize,
    ts: u64,
}

impl<'a> Events<'a> {
    fn u32_at(&self, at: usize) -> Result<u32, PageError> {
        self.data
            .get(at..at + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or_default()))
            .ok_or_else(|| PageError(format!("event header at {at} runs past the data")))
    }
}

/// Splits the 32-bit event header into (type_len, time_delta); the
/// bitfield order follows the byte order.
fn split_header(h: u32) -> (u32, u32) {
    if cfg!(target_endian = "little") {
        (h & 0x1f, h >> 5)
    } else {
        (h >> 27, h & 0x07ff_ffff)
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = Result<RawEvent<'a>, PageError>;

    /// After an error the iteration ends: what follows a bad header
    /// cannot be found, and an error repeated forever would hang a
    /// caller that skips errors (found by fuzzing, see
    /// tests/regression.rs).
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.step();
        if let Some(Err(_)) = item {
            self.pos = self.data.len();
        }
        item
    }
}

impl<'a> Events<'a> {
    fn step(&mut self) -> Option<Result<RawEvent<'a>, PageError>> {
        loop {
            if self.pos + 4 > self.data.len() {
                return None;
            }
            let (type_len, delta) = match self.u32_at(self.pos) {
                Ok(h) => split_header(h),
                Err(e) => return Some(Err(e)),
            };
            let at = self.pos;
            match type_len {
                TYPE_PADDING => {
                    // A zero delta marks the discarded tail of the page.
                    if delta == 0 {
                        self.pos = self.data.len();
                        return None;
                    }
                    match self.u32_at(at + 4) {
                        Ok(len) => self.pos = at + 4 + len as usize,
                        Err(e) => return Some(Err(e)),
                    }
                }
                TYPE_TIME_EXTEND => match self.u32_at(at + 4) {
                    Ok(hi) => {
                        self.ts += ((hi as u64) << 27) | delta as u64;
                        self.pos = at + 8;
                    }
                    Err(e) => return Some(Err(e)),
                },
                TYPE_TIME_STAMP => match self.u32_at(at + 4) {
                    Ok(hi) => {
                        let abs = ((hi as u64) << 27) | delta as u64;
                        self.ts = abs | (self.ts & TS_MSB);
                        self.pos = at + 8;
                    }
                    Err(e) => return Some(Err(e)),
                },
                _ => {
                    // Small events encode their length in type_len (4-byte
                    // units); larger ones keep it, plus itself, in array[0].
                    let (start, len) = if type_len == 0 {
                        match self.u32_at(at + 4) {
                            Ok(l) if l >= 4 => (at + 8, l as usize - 4),
                            Ok(l) => {
                                return Some(Err(PageError(format!("event length {l} at {at}"))))
                            }
                            Err(e) => return Some(Err(e)),
                        }
                    } else {
                        (at + 4, type_len as usize * 4)
                    };
                    let Some(data) = self.data.get(start..start + len) else {
                        self.pos = self.data.len();
                        return Some(Err(PageError(format!("event at {at} runs past the data"))));
                    };
                    self.ts += delta as u64;
                    self.pos = start + len;
                    return Some(Ok(RawEvent { ts: self.ts, data }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L64: PageLayout = PageLayout {
        ts_offset: 0,
        commit_offset: 8,
        commit_size: 8,
        data_offset: 16,
    };
    const L32: PageLayout = PageLayout {
        ts_offset: 0,
        commit_offset: 8,
        commit_size: 4,
        data_offset: 12,
    };

    fn hdr(type_len: u32, delta: u32) -> [u8; 4] {
        (type_len | (delta << 5)).to_ne_bytes()
    }

    /// Builds a page the way the kernel lays one out.
    fn page(
        layout: &PageLayout,
        ts: u64,
        body: &[u8],
        commit_flags: u64,
        missed: Option<u64>,
    ) -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        p[..8].copy_from_slice(&ts.to_ne_bytes());
        let commit = body.len() as u64 | commit_flags;
        match layout.commit_size {
            8 => p[8..16].copy_from_slice(&commit.to_ne_bytes()),
            _ => p[8..12].copy_from_slice(&(commit as u32).to_ne_bytes()),
        }
        let d = layout.data_offset;
        p[d..d + body.len()].copy_from_slice(body);
        if let Some(m) = missed {
            let e = d + body.len();
            match layout.commit_size {
                8 => p[e..e + 8].copy_from_slice(&m.to_ne_bytes()),
                _ => p[e..e + 4].copy_from_slice(&(m as u32).to_ne_bytes()),
            }
        }
        p
    }

    #[test]
    fn walks_small_large_extend_and_padding_events() {
        let mut body = Vec::new();
        body.extend(hdr(2, 10)); // 8-byte payload
        body.extend([1, 0, 0xaa, 0, 0, 0, 0, 0]);
        body.extend(hdr(TYPE_TIME_EXTEND, 5));
        body.extend(1u32.to_ne_bytes()); // + (1 << 27) + 5
        body.extend(hdr(0, 7)); // length in array[0]
        body.extend(12u32.to_ne_bytes()); // 8 bytes of data + the length word
        body.extend([2, 0, 0xbb, 0, 0, 0, 0, 0]);
        body.extend(hdr(TYPE_PADDING, 1));
        body.extend(8u32.to_ne_bytes()); // counts itself and 4 bytes of padding
        body.extend([0u8; 4]);
        body.extend(hdr(1, 3));
        body.extend([3, 0, 0, 0]);
        let buf = page(&L64, 1000, &body, 0, None);
        let p = Page::parse(&L64, &buf).unwrap();
        assert_eq!(p.missed, None);
        let evs: Vec<_> = p.events().collect::<Result<_, _>>().unwrap();
        assert_eq!(evs.len(), 3);
        assert_eq!(
            (evs[0].ts, evs[0].id(), evs[0].data[2]),
            (1010, Some(1), 0xaa)
        );
        assert_eq!(
            (evs[1].ts, evs[1].id(), evs[1].data.len()),
            (1010 + (1 << 27) + 5 + 7, Some(2), 8)
        );
        assert_eq!(evs[2].ts, evs[1].ts + 3);
    }

    #[test]
    fn absolute_timestamps_keep_the_top_bits() {
        let mut body = Vec::new();
        body.extend(hdr(TYPE_TIME_STAMP, 3));
        body.extend(2u32.to_ne_bytes());
        body.extend(hdr(1, 0));
        body.extend([9, 0, 0, 0]);
        let buf = page(&L64, 500, &body, 0, None);
        let ev = Page::parse(&L64, &buf)
            .unwrap()
            .events()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(ev.ts, (2 << 27) | 3);
    }

    #[test]
    fn reports_missed_events_stored_or_not() {
        let body = [hdr(1, 0).as_slice(), &[1, 0, 0, 0]].concat();
        let stored = page(
            &L32,
            0,
            &body,
            RB_MISSED_EVENTS | RB_MISSED_STORED,
            Some(42),
        );
        assert_eq!(Page::parse(&L32, &stored).unwrap().missed, Some(Some(42)));
        let bare = page(&L64, 0, &body, RB_MISSED_EVENTS, None);
        let p = Page::parse(&L64, &bare).unwrap();
        assert_eq!(p.missed, Some(None));
        assert_eq!(p.events().count(), 1);
        // As a 64-bit kernel writes them: sign-extended, or added twice.
        let ext = (RB_MISSED_EVENTS as i32) as i64 as u64;
        let stored = page(&L64, 0, &body, ext + RB_MISSED_STORED, Some(7));
        assert_eq!(Page::parse(&L64, &stored).unwrap().missed, Some(Some(7)));
        let twice = page(&L64, 0, &body, ext.wrapping_add(ext), None);
        let p = Page::parse(&L64, &twice).unwrap();
        assert_eq!((p.missed, p.events().count()), (Some(None), 1));
    }

    #[test]
    fn null_padding_ends_the_page_and_garbage_errors() {
        let body = [
            hdr(1, 0).as_slice(),
            &[1, 0, 0, 0],
            &hdr(TYPE_PADDING, 0),
            &[0; 8],
        ]
        .concat();
        let buf = page(&L64, 0, &body, 0, None);
        assert_eq!(Page::parse(&L64, &buf).unwrap().events().count(), 1);
        let bad = [hdr(20, 0).as_slice(), &[0; 4]].concat();
        let buf = page(&L64, 0, &bad, 0, None);
        assert!(Page::parse(&L64, &buf)
            .unwrap()
            .events()
            .next()
            .unwrap()
            .is_err());
        let mut huge = page(&L64, 0, &[], 0, None);
        huge[8..16].copy_from_slice(&5000u64.to_ne_bytes());
        assert!(Page::parse(&L64, &huge).is_err());
    }
}
