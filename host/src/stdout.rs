//! stdout as whosent-deploy writes it: every write checked. A reader
//! that went away (EPIPE: `| head -1`) ends the output quietly, as
//! ripgrep does; any other failure (`>/dev/full`, an I/O error) is an
//! error, because records that were never written must not pass for
//! reported ones. `print!` would panic on either (exit 101).

use crate::error::HostError;
use std::io::{self, Write};

/// Whether `e` means stdout's reader went away rather than a failure.
pub fn reader_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// The error for a failed write to stdout.
pub fn error(e: io::Error) -> HostError {
    HostError::Output(e)
}

/// Writes all of `text` to stdout and flushes it: `Ok` also when the
/// reader went away, [`HostError::Output`] for any other failure.
pub fn print(text: &[u8]) -> Result<(), HostError> {
    write_to(&mut io::stdout().lock(), text)
}

/// As [`print`], to `out` (stdout, or one board's share of it).
pub fn write_to(out: &mut dyn Write, text: &[u8]) -> Result<(), HostError> {
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if !reader_gone(&e) => Err(error(e)),
        _ => Ok(()),
    }
}

/// File descriptor 1 without std's line buffering: a `write` that
/// returns n has put n bytes in the kernel's hands, which is what lets
/// [`crate::report::Report`] count a signal as written only once it was.
/// (std's `StdoutLock` buffers the tail of a short write and reports it
/// as written.)
pub struct Raw;

impl Write for Raw {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buf is valid for its length; fd 1 is ours to write.
            let n = unsafe { libc::write(1, buf.as_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                // A non-blocking stdout (set by whoever shares it): wait.
                io::ErrorKind::WouldBlock => {
                    let mut p = libc::pollfd {
                        fd: 1,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut p, 1, 1000) };
                }
                _ => return Err(e),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
