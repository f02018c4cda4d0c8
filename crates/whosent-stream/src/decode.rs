//! Reading the stream incrementally: [`Decoder::push`] the bytes as
//! they arrive (an SSH channel, a pipe, a file), then take frames with
//! [`Decoder::next_frame`] until it answers `Ok(None)` (it needs more bytes).
//! At the end of input, [`Decoder::finish`] says whether the stream was
//! complete or cut, and where: everything before the cut has been
//! yielded.

use crate::frame::{kind, Facts, Frame, ProcFacts, Ready, Repeat};
use crate::{FLAG_BIG_ENDIAN, HEADER_LEN, MAGIC, VERSION};

/// The largest payload a frame may declare: a page (the kernel's
/// sub-buffer is at most 1 MiB, `buffer_subbuf_size_kb`) or a format
/// text, with room to spare. Anything larger is corruption, and is
/// refused before it is buffered.
pub const MAX_FRAME: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError(pub String);

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad capture stream: {}", self.0)
    }
}

impl std::error::Error for StreamError {}

/// How the input ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// After an END or ERROR frame, nothing left over.
    Complete,
    /// The input stopped early: `pending` bytes of a frame (or header)
    /// were never completed, after `offset` bytes that were read whole.
    Cut { offset: u64, pending: usize },
}

#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    pos: usize,
    /// Bytes consumed before `buf[0]`.
    base: u64,
    header: bool,
    ended: bool,
    pub big_endian: bool,
}

/// Whether `bytes` begin like a capture stream (for `parse` to tell
/// formats apart by content).
pub fn is_stream(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StreamError> {
        let s = self
            .b
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| {
                StreamError(format!("frame payload too short ({} bytes)", self.b.len()))
            })?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, StreamError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, StreamError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64, StreamError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn str(&mut self) -> Result<String, StreamError> {
        let n = self.u32()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn opt(&mut self) -> Result<Option<String>, StreamError> {
        let n = self.u32()?;
        if n == u32::MAX {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(self.take(n as usize)?).into_owned(),
        ))
    }
    fn list<T>(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<T, StreamError>,
    ) -> Result<Vec<T>, StreamError> {
        let n = self.u32()? as usize;
        // Each item takes at least 4 bytes: a count cannot promise more.
        if n > (self.b.len() - self.at) / 4 {
            return Err(StreamError(format!(
                "a list of {n} items does not fit its frame"
            )));
        }
        (0..n).map(|_| f(self)).collect()
    }
    fn ints(&mut self) -> Result<Vec<i32>, StreamError> {
        self.list(|c| Ok(c.u32()? as i32))
    }
}

fn parse<'a>(k: u8, p: &'a [u8]) -> Result<Frame<'a>, StreamError> {
    let mut c = Cursor { b: p, at: 0 };
    Ok(match k {
        kind::FORMAT => Frame::Format {
            role: c.u8()?,
            text: &p[1..],
        },
        kind::READY => {
            let mut r = Ready {
                agent: c.str()?,
                kernel: c.str()?,
                arch: c.str()?,
                instance: c.str()?,
                filter: c.str()?,
                cpus: c.list(|c| c.u32())?,
                pids: c.ints()?,
                sender_pids: c.ints()?,
                ..Default::default()
            };
            let flags = c.u8()?;
            r.lineage = flags & 1 != 0;
            r.uid_events = flags & 2 != 0;
            r.ebpf = flags & 4 != 0;
            Frame::Ready(r)
        }
        kind::PAGE => Frame::Page {
            cpu: c.u32()?,
            data: &p[4..],
        },
        kind::ROUND => Frame::Round {
            cut: c.list(|c| c.u32())?,
        },
        kind::PROC => Frame::Proc(ProcFacts {
            why: c.u8()?,
            ts: c.u64()?,
            tid: c.u32()? as i32,
            tgid: c.u32()? as i32,
            ppid: c.u32()? as i32,
            uid: c.u32()?,
            comm: c.str()?,
            exe: c.opt()?,
            cmdline: c.opt()?,
            nstgid: c.ints()?,
        }),
        kind::STATS => Frame::Stats(c.list(|c| Ok((c.u32()?, c.u64()?)))?),
        kind::END => Frame::End { reason: c.u8()? },
        kind::ERROR => Frame::Error {
            kind: c.str()?,
            message: c.str()?,
            help: c.str()?,
        },
        kind::EVENT => {
            let (cpu, ts) = (c.u32()?, c.u64()?);
            let facts = match c.u8()? {
                0 => None,
                _ => Some(Facts {
                    tgid: c.u32()? as i32,
                    tid: c.u32()? as i32,
                    uid: c.u32()?,
                    gid: c.u32()?,
                    cgroup_id: c.u64()?,
                    target_tgid: c.u32()? as i32,
                    exited: c.u8()? != 0,
                    comm: c.str()?,
                    nspid: c.ints()?,
                }),
            };
            Frame::Event {
                cpu,
                ts,
                facts,
                record: &p[c.at..],
            }
        }
        kind::REPEAT => Frame::Repeat(Repeat {
            sender: c.u32()? as i32,
            target: c.u32()? as i32,
            sig: c.u32()? as i32,
            code: c.u32()? as i32,
            result: c.u32()? as i32,
            count: c.u64()?,
            first: c.u64()?,
            last: c.u64()?,
        }),
        other => Frame::Unknown { kind: other },
    })
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds input. Consumed bytes are dropped first, so the buffer holds
    /// at most one frame plus what arrived with it.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.base += self.pos as u64;
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame; `Ok(None)` when more input is needed. An
    /// error is final: the stream cannot be resynchronised.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, StreamError> {
        if !self.header {
            let Some(h) = self.buf.get(..HEADER_LEN) else {
                if !MAGIC.starts_with(&self.buf[..self.buf.len().min(MAGIC.len())]) {
                    return Err(StreamError(
                        "not a whosent capture stream (no magic)".into(),
                    ));
                }
                return Ok(None);
            };
            if h[..8] != MAGIC {
                return Err(StreamError(
                    "not a whosent capture stream (no magic)".into(),
                ));
            }
            let version = u16::from_le_bytes([h[8], h[9]]);
            if version != VERSION {
                return Err(StreamError(format!(
                    "stream version {version}; this whosent reads version {VERSION}"
                )));
            }
            self.big_endian = u16::from_le_bytes([h[10], h[11]]) & FLAG_BIG_ENDIAN != 0;
            if self.big_endian != cfg!(target_endian = "big") {
                return Err(StreamError(
                    "the board's byte order differs from this machine's; decode it on a machine of the board's byte order".into(),
                ));
            }
            self.header = true;
            self.pos = HEADER_LEN;
        }
        let rest = &self.buf[self.pos..];
        if rest.len() < 5 {
            return Ok(None);
        }
        let k = rest[0];
        let len = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if len > MAX_FRAME {
            return Err(StreamError(format!(
                "a frame of {len} bytes at offset {} (at most {MAX_FRAME})",
                self.offset()
            )));
        }
        if rest.len() < 5 + len {
            return Ok(None);
        }
        let start = self.pos + 5;
        self.pos = start + len;
        if matches!(k, kind::END | kind::ERROR) {
            self.ended = true;
        }
        parse(k, &self.buf[start..start + len]).map(Some)
    }

    /// Bytes read whole so far.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Call once the input has ended and [`next_frame`](Self::next_frame) gave `None`.
    pub fn finish(&self) -> Ending {
        let pending = self.buf.len() - self.pos;
        if self.ended && pending == 0 {
            Ending::Complete
        } else {
            Ending::Cut {
                offset: self.offset(),
                pending,
            }
        }
    }
}

#[cfg(test)]
mod tests;
