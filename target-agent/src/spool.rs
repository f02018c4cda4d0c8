//! The bounded spool between the kernel's per-CPU buffers and stdout.
//!
//! The recorder reads pages as fast as the kernel fills them and keeps
//! the frames here until stdout (an SSH channel, a pipe) takes them, so
//! a slow consumer makes output lag instead of making the kernel
//! overwrite unread pages. When the spool is full the recorder stops
//! reading: then the kernel overwrites, and counts what it overwrote
//! (the pages' missed-events marks, per-CPU `stats`), so nothing is
//! lost without being reported.

use std::io;

pub struct Spool {
    pub buf: Vec<u8>,
    head: usize,
    limit: usize,
    /// The host is known to be gone (`--alive-timeout`): `write_all`
    /// does not wait for a stdout nobody reads, which would keep the
    /// agent, and its ftrace instance, alive on a dead link.
    pub stalled: bool,
}

impl Spool {
    pub fn new(limit: usize) -> Self {
        Spool {
            buf: Vec::with_capacity(64 * 1024),
            head: 0,
            limit,
            stalled: false,
        }
    }

    pub fn pending(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Whether `n` more bytes fit.
    pub fn room(&self, n: usize) -> bool {
        self.pending() + n <= self.limit
    }

    /// Writes what stdout takes now (stdout is non-blocking); `Err` when
    /// it is gone.
    pub fn write(&mut self, fd: i32) -> io::Result<()> {
        while self.pending() > 0 {
            let b = &self.buf[self.head..];
            // SAFETY: b is valid for its length.
            let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            self.head += n as usize;
        }
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
            // Give back what a burst grew.
            self.buf.shrink_to(64 * 1024);
        } else if self.head > self.buf.len() / 2 {
            self.buf.drain(..self.head);
            self.head = 0;
        }
        Ok(())
    }

    /// Writes everything, waiting for stdout as needed (not once the
    /// host is known to be gone: then `Err`).
    pub fn write_all(&mut self, fd: i32) -> io::Result<()> {
        while self.pending() > 0 {
            self.write(fd)?;
            if self.pending() == 0 {
                break;
            }
            if self.stalled {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 1000) };
        }
        Ok(())
    }
}
