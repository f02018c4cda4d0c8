//! The ways a capture is asked to stop from outside: SIGINT, SIGTERM,
//! SIGHUP, stdin reaching EOF (how an SSH session ends: the client
//! closes the channel, and dropbear/sshd close the agent's stdin), and,
//! with `--alive-timeout`, stdin falling silent: whosent-deploy writes a
//! byte every few seconds, and when the network between them silently
//! stops forwarding, no EOF ever comes (the SSH server only notices a
//! dead peer when TCP gives up, which by default takes hours).
//!
//! Signal handlers only record the signal and write a byte to a
//! self-pipe, so the main loop's `poll` wakes at once.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;
use whosent_proto::record::EndReason;

static CAUGHT: AtomicI32 = AtomicI32::new(0);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the byte is a constant.
        unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
    }
}

pub struct Stop {
    /// Read end of the self-pipe, for `poll`.
    pub wake_fd: RawFd,
    /// stdin, when it is a pipe or socket whose EOF means "stop".
    pub stdin_fd: Option<RawFd>,
    /// When stdin last brought bytes (or the capture started).
    heard: Cell<Instant>,
}

impl Stop {
    pub fn install() -> std::io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        WAKE_FD.store(fds[1], Ordering::SeqCst);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction plus a handler that only touches
            // atomics and write(2) is a valid, async-signal-safe setup.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
        Ok(Stop {
            wake_fd: fds[0],
            stdin_fd: watched_stdin(),
            heard: Cell::new(Instant::now()),
        })
    }

    /// The reason a signal asked us to stop, if one did.
    pub fn signalled(&self) -> Option<EndReason> {
        match CAUGHT.load(Ordering::SeqCst) {
            libc::SIGINT => Some(EndReason::Interrupted),
            libc::SIGTERM => Some(EndReason::Terminated),
            libc::SIGHUP => Some(EndReason::Hangup),
            _ => None,
        }
    }

    /// Called when poll says stdin is readable or hung up: drains it and
    /// reports whether it reached EOF. Input itself is ignored, but its
    /// arrival is noted (see [`Stop::silent`]).
    pub fn stdin_closed(&self) -> bool {
        let Some(fd) = self.stdin_fd else {
            return false;
        };
        let mut buf = [0u8; 256];
        // SAFETY: buf is valid for its length; stdin is non-blocking.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            self.heard.set(Instant::now());
        }
        n == 0
            || (n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock)
    }

    /// Whether stdin has been silent for longer than `limit` (the host's
    /// heartbeat stopped). Never without a watched stdin.
    pub fn silent(&self, limit: std::time::Duration) -> bool {
        self.stdin_fd.is_some() && self.heard.get().elapsed() > limit
    }

    /// Input came since `since`: the host is there.
    pub fn heard_since(&self, since: Instant) -> bool {
        self.heard.get() > since
    }
}

/// stdin counts only when it is a pipe or a socket, as under SSH or
/// `whosent-deploy --host local`. A terminal, /dev/null or a file would
/// otherwise end a capture at once (think `nohup`).
fn watched_stdin() -> Option<RawFd> {
    // SAFETY: fstat on fd 0 with a zeroed out-struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(0, &mut st) } != 0 {
        return None;
    }
    let fmt = st.st_mode & libc::S_IFMT;
    if fmt != libc::S_IFIFO && fmt != libc::S_IFSOCK {
        return None;
    }
    // SAFETY: fcntl on a valid fd.
    unsafe {
        let fl = libc::fcntl(0, libc::F_GETFL);
        libc::fcntl(0, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    Some(0)
}
