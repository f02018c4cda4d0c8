//! Reaching a board through a jump host (`-J`, `ProxyJump`), as
//! `ssh -J` does but without running ssh: a session to the jump host
//! (host key checked and logged in like any board), a `direct-tcpip`
//! channel from it to the board's port (RFC 4254 §7.2, what `ssh -W`
//! opens), and the board's own session run over that channel.
//!
//! libssh2 runs a session over a socket descriptor, not over a
//! channel, so the board's session gets one end of a `socketpair(2)`
//! and a thread pumps bytes between the other end and the channel. The
//! thread owns the jump host's session alone (libssh2 sessions are not
//! shared between threads), in non-blocking mode, polling both sides.
//! The board's session cannot tell the difference: its host key is
//! checked against known_hosts under the board's own name and port,
//! as ssh does through a ProxyJump.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Duration;

use ssh2::{BlockDirections, Channel};

use super::dest::Target;
use super::session::{Conn, ConnectOpts};
use super::SshError;

/// The pump thread; dropping it ends the thread and waits for it.
pub(crate) struct Link {
    thread: Option<JoinHandle<()>>,
    /// The board session's end of the socket pair (a second descriptor
    /// of it): shut down on drop, so the pump sees EOF even while the
    /// session still holds its own descriptor, as when the board's host
    /// key is refused and the session is dropped after this.
    ours: UnixStream,
    /// The jump host's address, as the board's peer.
    pub(crate) peer: SocketAddr,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Bytes already written (the board session's disconnect) are
        // still read by the pump before it sees the EOF.
        let _ = self.ours.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects to `jump` (itself through its own jump hosts, if any) and
/// opens a channel from it to `board`'s host and port; returns the
/// socket for the board's session and the pump that serves it.
pub(crate) fn open(
    jump: &Target,
    board: &Target,
    opts: &ConnectOpts,
) -> Result<(UnixStream, Link), SshError> {
    let conn = Conn::connect(jump, opts).map_err(|e| SshError::Jump {
        jump: jump.route(),
        source: Box::new(e),
    })?;
    let peer = conn.peer();
    let channel = {
        let _busy = conn.lock();
        conn.session
            .set_timeout(super::session::millis(opts.connect_timeout));
        let ch = conn
            .session
            .channel_direct_tcpip(&board.host, board.port, None)
            .map_err(|source| SshError::JumpOpen {
                jump: jump.route(),
                host: board.host.clone(),
                port: board.port,
                source,
            })?;
        conn.session.set_timeout(0);
        ch
    };
    let (ours, theirs) = UnixStream::pair().map_err(|source| SshError::RemoteIo {
        action: "making the socket pair for the jump host's channel".into(),
        source,
    })?;
    let ours_too = ours.try_clone().map_err(|source| SshError::RemoteIo {
        action: "making the socket pair for the jump host's channel".into(),
        source,
    })?;
    let thread = std::thread::Builder::new()
        .name("whosent-jump".into())
        .spawn(move || pump(conn, channel, theirs))
        .map_err(|source| SshError::RemoteIo {
            action: "starting the jump host's pump".into(),
            source,
        })?;
    Ok((
        ours,
        Link {
            thread: Some(thread),
            ours: ours_too,
            peer,
        },
    ))
}

/// How long one wait for either side may last. Only a safety net: the
/// poll wakes on data, and libssh2 may hold data it already read off
/// the socket, which is why every round reads until it would block.
const POLL_MS: libc::c_int = 200;

/// Moves bytes both ways until the board's session has gone (its end
/// of the pair closed) or the channel has ended, then closes the
/// channel and the jump host's session.
fn pump(conn: Conn, mut ch: Channel, local: UnixStream) {
    if local.set_nonblocking(true).is_err() {
        return;
    }
    conn.session.set_blocking(false);
    let mut local_r = &local;
    let mut local_w = &local;
    let mut up: Vec<u8> = Vec::new(); // board session -> channel
    let mut down: Vec<u8> = Vec::new(); // channel -> board session
    let (mut local_eof, mut chan_eof) = (false, false);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut moved = false;
        if up.is_empty() && !local_eof {
            match local_r.read(&mut buf) {
                Ok(0) => local_eof = true,
                Ok(n) => {
                    up.extend_from_slice(&buf[..n]);
                    moved = true;
                }
                Err(e) if blocked(&e) => {}
                Err(_) => local_eof = true,
            }
        }
        while !up.is_empty() {
            match ch.write(&up) {
                Ok(0) => break,
                Ok(n) => {
                    up.drain(..n);
                    moved = true;
                }
                Err(e) if blocked(&e) => break,
                Err(_) => return close(conn, ch),
            }
        }
        if local_eof && up.is_empty() {
            // The board's session is gone (its disconnect, if any,
            // was forwarded above): say so to the board and stop.
            let _ = ch.send_eof();
            return close(conn, ch);
        }
        if down.is_empty() && !chan_eof {
            match ch.read(&mut buf) {
                Ok(0) if ch.eof() => chan_eof = true,
                Ok(0) => {}
                Ok(n) => {
                    down.extend_from_slice(&buf[..n]);
                    moved = true;
                }
                Err(e) if blocked(&e) => {}
                Err(_) => chan_eof = true,
            }
        }
        while !down.is_empty() {
            match local_w.write(&down) {
                Ok(0) => break,
                Ok(n) => {
                    down.drain(..n);
                    moved = true;
                }
                Err(e) if blocked(&e) => break,
                Err(_) => return close(conn, ch),
            }
        }
        if chan_eof && down.is_empty() {
            // The board (or the jump host) hung up: the board's session
            // reads EOF and reports the connection lost.
            let _ = local.shutdown(std::net::Shutdown::Write);
            if local_eof {
                return close(conn, ch);
            }
        }
        if !moved {
            wait(&conn, &local, !down.is_empty(), chan_eof);
        }
    }
}

fn blocked(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(libc::EAGAIN)
}

/// Waits until the board's socket or the jump host's has something to
/// do, or [`POLL_MS`] passed.
fn wait(conn: &Conn, local: &UnixStream, local_out: bool, chan_eof: bool) {
    let dirs = conn.session.block_directions();
    let mut jump_events = libc::POLLIN;
    if matches!(dirs, BlockDirections::Outbound | BlockDirections::Both) {
        jump_events |= libc::POLLOUT;
    }
    let mut local_events = libc::POLLIN;
    if local_out {
        local_events |= libc::POLLOUT;
    }
    let mut fds = [
        libc::pollfd {
            fd: local.as_raw_fd(),
            events: local_events,
            revents: 0,
        },
        libc::pollfd {
            fd: conn.fd,
            events: if chan_eof { 0 } else { jump_events },
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfd entries, their count passed.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, POLL_MS) };
}

/// Ends the channel and then the jump host's session (its Drop sends
/// the disconnect), each bounded by a short timeout.
fn close(conn: Conn, mut ch: Channel) {
    conn.session.set_blocking(true);
    conn.session
        .set_timeout(Duration::from_secs(1).as_millis() as u32);
    let _ = ch.close();
    drop(ch);
    drop(conn);
}
