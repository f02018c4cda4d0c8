//! `--out DIR`: the capture stream kept on the board as a flight
//! recorder of segment files, for a detached capture (docs/detached.md).
//!
//! `seg.00000000`, `seg.00000001`, … each hold a complete stream; the
//! recorder starts a new one once the current one reaches a quarter of
//! `--max-size`, and the oldest are deleted before a write would take
//! the sum past it. Their signal events are counted as dropped in the
//! `stat` file, which the host reads to tell what was lost.

use crate::error::{AgentError, Result};
use crate::spool::Spool;
use std::io;
use std::time::Instant;

pub struct Segments {
    max: u64,
    /// The current segment.
    fd: i32,
    /// The oldest segment present, and (bytes, signal events) of each
    /// from it to the current one, which is last.
    first: u32,
    segs: Vec<(u64, u64)>,
    bytes: u64,
    /// The size of the current segment's start (header to READY); 0 for
    /// the first.
    start: u64,
    signals: u64,
    dropped: u64,
    dropped_segs: u64,
    /// When `stat` was last written, and whether anything changed since.
    stat_at: Instant,
    changed: bool,
}

// The agent works in DIR, and its paths end in a NUL and go to libc as
// they are: std's File, rename and remove_file, and joining paths, cost
// the agent more than these few calls (docs/agent-size.md).

fn seg_name(n: u32) -> String {
    format!("seg.{n:08}\0")
}

/// Creates (or empties) a file for root only; `Err` as open(2) says.
fn create(path: &[u8]) -> io::Result<i32> {
    // SAFETY: `path` ends in a NUL.
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

impl Segments {
    /// Changes to `dir` (which must exist: the host makes it, private)
    /// and creates `seg.00000000` there, so that an error before READY
    /// has a place.
    pub fn open(mut dir: String, max: u64) -> Result<Self> {
        dir.push('\0');
        // SAFETY: `dir` ends in a NUL.
        let fd = if unsafe { libc::chdir(dir.as_ptr().cast()) } < 0 {
            Err(io::Error::last_os_error())
        } else {
            create(b"seg.00000000\0")
        };
        let fd = fd.map_err(|e| {
            dir.pop();
            AgentError::new(
                "out",
                format!("--out {dir}: {e}"),
                "give --out an existing directory where root may write",
            )
        })?;
        Ok(Segments {
            max,
            fd,
            first: 0,
            segs: vec![(0, 0)],
            bytes: 0,
            start: 0,
            signals: 0,
            dropped: 0,
            dropped_segs: 0,
            stat_at: Instant::now(),
            changed: false,
        })
    }

    /// Writes the spool's frames, holding `signals` signal events, to
    /// the current segment, first deleting the oldest segments (never the
    /// current one) as far as needed to stay within `--max-size`.
    pub fn put(&mut self, spool: &mut Spool, signals: u64) -> io::Result<()> {
        let n = spool.pending() as u64;
        while self.bytes + n > self.max && self.segs.len() > 1 {
            let (b, s) = self.segs.remove(0);
            // SAFETY: the name ends in a NUL.
            unsafe { libc::unlink(seg_name(self.first).as_ptr().cast()) };
            self.first += 1;
            self.bytes -= b;
            self.dropped += s;
            self.dropped_segs += 1;
        }
        // A file takes it all, or fails (ENOSPC).
        spool.write(self.fd)?;
        if let Some(last) = self.segs.last_mut() {
            last.0 += n;
            last.1 += signals;
        }
        self.bytes += n;
        self.signals += signals;
        self.changed |= n > 0;
        Ok(())
    }

    /// The current segment's frames after its start reached a quarter of
    /// `--max-size`. Not counting the start: a /proc snapshot bigger than
    /// that (long command lines) would make every page a new segment.
    pub fn full(&self) -> bool {
        self.segs
            .last()
            .is_some_and(|l| l.0 >= self.max / 4 + self.start)
    }

    /// Starts the next segment, whose start (`start` bytes: header to
    /// READY) the caller writes next.
    pub fn rotate(&mut self, start: usize) -> io::Result<()> {
        self.start = start as u64;
        let fd = create(seg_name(self.first + self.segs.len() as u32).as_bytes())?;
        // SAFETY: the old segment's descriptor, not used again.
        unsafe { libc::close(self.fd) };
        self.fd = fd;
        self.segs.push((0, 0));
        Ok(())
    }

    /// The capture is live (its first READY is written): `stat`, then
    /// `ready`.
    pub fn ready(&mut self) {
        self.stat("running", true);
        if let Ok(fd) = create(b"ready\0") {
            // SAFETY: a descriptor just opened.
            unsafe { libc::close(fd) };
        }
    }

    /// An error before READY: a stream of its ERROR frame alone.
    pub fn failed(&mut self, e: &AgentError) {
        let mut b = Vec::new();
        whosent_stream::encode::header(&mut b);
        whosent_stream::encode::error(&mut b, e.kind, &e.message, &e.help);
        // SAFETY: b is valid for its length. A few hundred bytes: one
        // write takes them, or nothing would.
        unsafe { libc::write(self.fd, b.as_ptr().cast(), b.len()) };
    }

    /// Replaces `stat` (write and rename, so a reader never sees half a
    /// line) when something changed and a second has passed, or when
    /// `now`.
    pub fn stat(&mut self, state: &str, now: bool) {
        let t = Instant::now();
        if !(now || self.changed && t.saturating_duration_since(self.stat_at).as_secs() > 0) {
            return;
        }
        let s = format!(
            "v1 pid={} signals={} dropped={} dropped_segments={} bytes={} first={} last={} state={state}\n",
            std::process::id(),
            self.signals,
            self.dropped,
            self.dropped_segs,
            self.bytes,
            self.first,
            self.first as usize + self.segs.len() - 1,
        );
        if let Ok(fd) = create(b"stat.tmp\0") {
            // SAFETY: s is valid for its length; both paths end in a NUL.
            unsafe {
                libc::write(fd, s.as_ptr().cast(), s.len());
                libc::close(fd);
                libc::rename(c"stat.tmp".as_ptr(), c"stat".as_ptr());
            }
        }
        self.stat_at = t;
        self.changed = false;
    }
}
