//! Reading a tool's output as it streams: a thread per pipe counts the
//! lines that report an event for the watched process, notes when the
//! tool said it was ready and when it first reported an event, and
//! keeps the few other lines (errors, summaries) for later.
//!
//! Counting must cost little: this thread shares two cores with the
//! storm and the tool, and a slow reader throttles the tool through the
//! pipe. Lines are found in place (memchr) and only the part of a line
//! that names the target is looked at (memmem).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What one output line means.
pub enum Class {
    /// An event for the watched process.
    Match,
    /// An event for another process (a filter leak).
    Other,
    /// The tool says it is tracing.
    Ready,
    /// The tool reports lost events (None: some, count unknown).
    Lost(Option<u64>),
    /// Keep the line for the summary (errors, end records).
    Keep,
}

pub type Classify = fn(&[u8], i32) -> Class;

#[derive(Default)]
pub struct Counts {
    pub matched: AtomicU64,
    /// Bytes of the matched lines, newline included.
    pub matched_bytes: AtomicU64,
    pub other: AtomicU64,
    pub lost: AtomicU64,
    pub lost_unknown: AtomicU64,
    /// Nanoseconds after the epoch plus one; 0 = not yet.
    ready_at: AtomicU64,
    first_match_at: AtomicU64,
    /// The first lines worth keeping, and the last ones (where a
    /// summary such as whosent's end record is), whatever came between.
    kept: Mutex<(Vec<String>, std::collections::VecDeque<String>)>,
}

impl Counts {
    fn mark(slot: &AtomicU64, epoch: Instant) {
        let ns = epoch.elapsed().as_nanos() as u64 + 1;
        let _ = slot.compare_exchange(0, ns, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn get(slot: &AtomicU64) -> Option<Duration> {
        match slot.load(Ordering::SeqCst) {
            0 => None,
            n => Some(Duration::from_nanos(n - 1)),
        }
    }

    pub fn ready_at(&self) -> Option<Duration> {
        Self::get(&self.ready_at)
    }

    pub fn first_match_at(&self) -> Option<Duration> {
        Self::get(&self.first_match_at)
    }

    pub fn matched(&self) -> u64 {
        self.matched.load(Ordering::SeqCst)
    }

    /// The kept lines: the first ones, then the last ones.
    pub fn kept(&self) -> Vec<String> {
        self.kept
            .lock()
            .map(|k| k.0.iter().chain(k.1.iter()).cloned().collect())
            .unwrap_or_default()
    }
}

pub struct Feed {
    pub counts: Arc<Counts>,
    handle: Option<JoinHandle<()>>,
}

/// At most this many lines are kept at the start and at the end, so a
/// tool that prints an error (or a loss report) per event cannot fill
/// memory or push out its final summary.
const KEEP_MAX: usize = 32;

impl Feed {
    pub fn start<R: Read + Send + 'static>(
        src: R,
        classify: Classify,
        target: i32,
        epoch: Instant,
    ) -> Feed {
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        let handle = std::thread::spawn(move || {
            read_lines(src, |line| count(&c, classify(line, target), line, epoch))
        });
        Feed {
            counts,
            handle: Some(handle),
        }
    }

    /// Waits for the pipe's end (the tool has exited and closed it).
    pub fn join(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn count(c: &Counts, class: Class, line: &[u8], epoch: Instant) {
    match class {
        Class::Match => {
            c.matched_bytes
                .fetch_add(line.len() as u64 + 1, Ordering::Relaxed);
            if c.matched.fetch_add(1, Ordering::SeqCst) == 0 {
                Counts::mark(&c.first_match_at, epoch);
            }
        }
        Class::Other => {
            c.other.fetch_add(1, Ordering::SeqCst);
        }
        Class::Ready => {
            Counts::mark(&c.ready_at, epoch);
            keep(c, line);
        }
        Class::Lost(n) => {
            match n {
                Some(n) => c.lost.fetch_add(n, Ordering::SeqCst),
                None => c.lost_unknown.fetch_add(1, Ordering::SeqCst),
            };
            keep(c, line);
        }
        Class::Keep => keep(c, line),
    }
}

/// Calls `f` with each line (without its newline) as it arrives. Lines
/// are found in place in a large buffer with glibc's memchr: a storm of
/// 1M records of ~3 KB must not be slowed down by its reader, or the
/// tool under test is throttled by the pipe and measured wrongly.
pub fn read_lines<R: Read>(mut src: R, mut f: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; 4 << 20];
    let mut have = 0;
    loop {
        if have == buf.len() {
            // One line longer than the buffer: grow it.
            buf.resize(buf.len() * 2, 0);
        }
        let n = match src.read(&mut buf[have..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        have += n;
        let mut start = 0;
        while let Some(nl) = memchr(b'\n', &buf[start..have]) {
            f(&buf[start..start + nl]);
            start += nl + 1;
        }
        buf.copy_within(start..have, 0);
        have -= start;
    }
    if have > 0 {
        f(&buf[..have]);
    }
}

fn memchr(b: u8, hay: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe `hay`.
    let p = unsafe { libc::memchr(hay.as_ptr().cast(), b as i32, hay.len()) };
    (!p.is_null()).then(|| p as usize - hay.as_ptr() as usize)
}

/// Where `pat` first occurs in `hay` (glibc's memmem).
pub fn find(hay: &[u8], pat: &[u8]) -> Option<usize> {
    // SAFETY: both pointers and lengths describe live slices.
    let p = unsafe {
        libc::memmem(
            hay.as_ptr().cast(),
            hay.len(),
            pat.as_ptr().cast(),
            pat.len(),
        )
    };
    (!p.is_null()).then(|| p as usize - hay.as_ptr() as usize)
}

fn keep(c: &Counts, line: &[u8]) {
    if let Ok(mut k) = c.kept.lock() {
        let s: String = String::from_utf8_lossy(line)
            .trim_end()
            .chars()
            .take(400)
            .collect();
        if k.0.len() < KEEP_MAX {
            k.0.push(s);
        } else {
            if k.1.len() == KEEP_MAX {
                k.1.pop_front();
            }
            k.1.push_back(s);
        }
    }
}

/// The integer that follows the last `key` in `line`.
pub fn int_after_last(line: &[u8], key: &[u8]) -> Option<i64> {
    let mut at = None;
    let mut from = 0;
    while let Some(i) = find(&line[from..], key) {
        at = Some(from + i + key.len());
        from += i + 1;
    }
    int_at(line, at?)
}

/// The integer that follows the first `key` in `line`.
pub fn int_after(line: &[u8], key: &[u8]) -> Option<i64> {
    int_at(line, find(line, key)? + key.len())
}

fn int_at(line: &[u8], at: usize) -> Option<i64> {
    let rest = line.get(at..)?;
    let (neg, rest) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        _ => (false, rest),
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let n: i64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    Some(if neg { -n } else { n })
}

pub fn contains(line: &[u8], pat: &[u8]) -> bool {
    find(line, pat).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_in_place() {
        let mut got = Vec::new();
        read_lines(&b"a\nbb\n\nccc"[..], |l| got.push(l.to_vec()));
        assert_eq!(
            got,
            vec![b"a".to_vec(), b"bb".to_vec(), b"".to_vec(), b"ccc".to_vec()]
        );
    }

    #[test]
    fn integers_after_keys() {
        let l = br#"{"sender":{"pid":12},"target":{"pid":345,"tid":345}}"#;
        assert_eq!(int_after_last(l, br#""pid":"#), Some(345));
        assert_eq!(int_after(l, br#""pid":"#), Some(12));
        assert_eq!(int_after(b"x pid=-3 ", b"pid="), Some(-3));
        assert_eq!(int_after(b"x pid=", b"pid="), None);
        assert!(contains(b"CPU:1 [LOST 5 EVENTS]", b"LOST"));
    }
}
