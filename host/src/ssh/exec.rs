//! Remote commands: short ones ([`Conn::run`]) and long-running ones
//! whose stdout is read line by line as it arrives ([`Conn::stream`]).
//!
//! # How a stream stops
//!
//! When the caller sets `stop`, or `on_line` returns [`Flow::Stop`],
//! the command's stdin is closed (SSH EOF) and it has
//! [`STOP_GRACE`] to exit; then the channel is closed. No signal is
//! sent: SSH servers run exec commands without a terminal, so there is
//! no SIGHUP either, and a command that ignores its stdin keeps running
//! until it next writes to its closed stdout (SIGPIPE). The whosent
//! agent therefore treats EOF on stdin as its order to clean up and
//! exit; SIGHUP (when run under a terminal) and SIGPIPE are its
//! fallbacks.
//!
//! While a stream runs, its command gets a newline on stdin every
//! [`super::Alive::heartbeat`], which the agent answers and whose
//! absence ends it (see [`super::alive`]); the wrapper of the stap
//! backend reads and drops it.

use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ssh2::{Channel, ErrorCode, Session};

use super::session::{millis, Conn};
use super::SshError;

/// What `on_line` wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
    /// The command has said all it will (the agent's END frame): the
    /// channel is closed without waiting for the command to exit, which
    /// cleans up on its own (the agent's ftrace teardown took 1.5 s on
    /// the emulated board, and a Ctrl-C must end the run within 1 s).
    /// The status is then 0.
    Done,
}

/// A finished short command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit status; 128 + the signal number if a signal killed it.
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// How long a stopped command has to exit after its stdin closed.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// Longest wait between two looks at the `stop` flag.
const POLL_MS: libc::c_int = 100;
/// For opening a channel and starting the command.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// libssh2's `LIBSSH2_ERROR_EAGAIN`.
const ERROR_EAGAIN: i32 = -37;

impl Conn {
    /// Runs a short command and collects its output.
    pub fn run(&self, cmd: &str) -> Result<Output, SshError> {
        let _busy = self.lock();
        let run = || {
            let mut channel = open_exec(&self.session, cmd)?;
            self.collect(&mut channel, cmd)
        };
        run().map_err(|e| self.explain(e))
    }

    /// Runs an open channel to its end, collecting stdout and stderr.
    /// The caller holds the session lock.
    pub(crate) fn collect(
        &self,
        channel: &mut OwnedChannel<'_>,
        cmd: &str,
    ) -> Result<Output, SshError> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let never = AtomicBool::new(false);
        let status = pump(
            self,
            false,
            channel,
            cmd,
            &mut |d| {
                stdout.extend_from_slice(d);
                Flow::Continue
            },
            &mut |d| stderr.extend_from_slice(d),
            &never,
        )?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs a command and hands its stdout to `on_line` one line at a
    /// time (without the `\n`; a last line without one comes at the
    /// end) and its stderr to `on_stderr` in chunks, as they arrive.
    ///
    /// `stop` is looked at least every 100 ms. Once it is set the
    /// command's stdin is closed and lines keep coming until it exits
    /// (the agent's last records), for at most [`STOP_GRACE`]. Once
    /// `on_line` returns [`Flow::Stop`] no more lines are delivered and
    /// the command is stopped the same way. See the module docs.
    ///
    /// Returns the exit status, 128 + n if signal n killed the command;
    /// [`SshError::NoExit`] if it did not exit in time after a stop.
    ///
    /// The callbacks must not use this `Conn` (operations on one
    /// connection wait for each other); open a second one if needed.
    pub fn stream(
        &self,
        cmd: &str,
        on_line: &mut dyn FnMut(&[u8]) -> Flow,
        on_stderr: &mut dyn FnMut(&[u8]),
        stop: &AtomicBool,
    ) -> Result<i32, SshError> {
        let _busy = self.lock();
        let mut lines = super::lines::Lines::default();
        let status = self
            .start_stream(cmd)
            .and_then(|mut channel| {
                pump(
                    self,
                    true,
                    &mut channel,
                    cmd,
                    &mut |data| lines.feed(data, on_line),
                    on_stderr,
                    stop,
                )
            })
            .map_err(|e| self.explain(e))?;
        lines.finish(on_line);
        Ok(status)
    }
}

impl Conn {
    /// As [`Conn::stream`], with stdout handed over in chunks as they
    /// arrive rather than split into lines: for the binary capture stream.
    pub fn stream_bytes(
        &self,
        cmd: &str,
        on_data: &mut dyn FnMut(&[u8]) -> Flow,
        on_stderr: &mut dyn FnMut(&[u8]),
        stop: &AtomicBool,
    ) -> Result<i32, SshError> {
        let _busy = self.lock();
        self.start_stream(cmd)
            .and_then(|mut channel| pump(self, true, &mut channel, cmd, on_data, on_stderr, stop))
            .map_err(|e| self.explain(e))
    }

    /// Starts a stream's command; from then on Ctrl-C stops it through
    /// its stdin (the caller's `stop`) instead of dropping the connection.
    fn start_stream(&self, cmd: &str) -> Result<OwnedChannel<'_>, SshError> {
        let channel = open_exec(&self.session, cmd)?;
        self.watch.disarm();
        Ok(channel)
    }
}

/// Opens a session channel and starts `cmd` in it.
pub(crate) fn open_exec<'a>(session: &'a Session, cmd: &str) -> Result<OwnedChannel<'a>, SshError> {
    let _t = Timeout::set(session, OPEN_TIMEOUT);
    let channel = session
        .channel_session()
        .map_err(|source| SshError::Channel {
            action: "opening a channel".into(),
            source,
        })?;
    let mut channel = OwnedChannel::new(session, channel);
    channel.exec(cmd).map_err(|source| SshError::Channel {
        action: format!("starting `{cmd}`"),
        source,
    })?;
    Ok(channel)
}

/// A channel whose drop waits at most [`DROP_WAIT`] for the server to
/// confirm the close. libssh2 waits for that confirmation, and OpenSSH
/// sends it only once the command has exited: a command that outlives a
/// stop would otherwise hold the caller as long as it runs.
pub(crate) struct OwnedChannel<'a> {
    session: &'a Session,
    channel: Option<Channel>,
    /// Dropped without waiting for the server's confirmation.
    abandoned: bool,
}

/// How long a stop waits for the server to confirm closing the channel
/// of a command that did not exit.
const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// How long dropping a channel waits for that confirmation; a channel
/// that did not get it is freed with the session.
const DROP_WAIT: Duration = Duration::from_millis(200);

impl<'a> OwnedChannel<'a> {
    pub(crate) fn new(session: &'a Session, channel: Channel) -> Self {
        OwnedChannel {
            session,
            channel: Some(channel),
            abandoned: false,
        }
    }

    /// Its close was asked for and its command needs no waiting for.
    pub(crate) fn abandon(&mut self) {
        self.abandoned = true;
    }
}

impl std::ops::Deref for OwnedChannel<'_> {
    type Target = Channel;
    fn deref(&self) -> &Channel {
        self.channel.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for OwnedChannel<'_> {
    fn deref_mut(&mut self) -> &mut Channel {
        self.channel.as_mut().expect("present until drop")
    }
}

impl Drop for OwnedChannel<'_> {
    fn drop(&mut self) {
        let wait = if self.abandoned {
            Duration::from_millis(1)
        } else {
            DROP_WAIT
        };
        let _t = Timeout::set(self.session, wait);
        // A timed-out free leaves the channel to the session's own free.
        drop(self.channel.take());
    }
}

/// Moves a started command's output to the callbacks until it exits,
/// and returns its status. Stops it as the module docs say when `stop`
/// is set or `on_stdout` returns `Stop` (after which stdout is read and
/// dropped). `beat`: send the stream's heartbeat.
pub(crate) fn pump(
    conn: &Conn,
    beat: bool,
    channel: &mut OwnedChannel<'_>,
    cmd: &str,
    on_stdout: &mut dyn FnMut(&[u8]) -> Flow,
    on_stderr: &mut dyn FnMut(&[u8]),
    stop: &AtomicBool,
) -> Result<i32, SshError> {
    let io_err = |source| SshError::RemoteIo {
        action: format!("reading the output of `{cmd}`"),
        source,
    };
    let (session, fd) = (&conn.session, conn.fd);
    let _nb = NonBlocking::set(session);
    let mut buf = vec![0u8; 32 * 1024];
    let mut stopping: Option<Instant> = None;
    let mut deliver = true;
    let mut eof_sent = false;
    let mut beat_at = Instant::now() + conn.alive.heartbeat();
    loop {
        let mut progress = false;
        while let Some(n) = read_some(&mut **channel, &mut buf).map_err(io_err)? {
            progress = true;
            if !deliver {
                continue;
            }
            match on_stdout(&buf[..n]) {
                Flow::Continue => {}
                Flow::Stop => {
                    deliver = false;
                    stopping.get_or_insert_with(Instant::now);
                }
                Flow::Done => {
                    // Asked, not waited for: the server confirms the close
                    // only once the command has exited.
                    let _ = channel.send_eof();
                    let _ = channel.close();
                    channel.abandon();
                    return Ok(0);
                }
            }
        }
        let mut stderr = channel.stderr();
        while let Some(n) = read_some(&mut stderr, &mut buf).map_err(io_err)? {
            progress = true;
            on_stderr(&buf[..n]);
        }
        if channel.eof() {
            break;
        }
        if stopping.is_none() && stop.load(Ordering::Relaxed) {
            stopping = Some(Instant::now());
        }
        if let Some(since) = stopping {
            if !eof_sent {
                match channel.send_eof() {
                    Err(e) if would_block(&e) => {}
                    // Sent, or the channel is already going away.
                    _ => eof_sent = true,
                }
            }
            if since.elapsed() > STOP_GRACE {
                close_briefly(session, fd, channel);
                return Err(SshError::NoExit {
                    cmd: cmd.to_string(),
                    waited: STOP_GRACE,
                });
            }
        }
        if beat && stopping.is_none() && Instant::now() >= beat_at {
            match channel.write(b"\n") {
                // Full: the next look tries again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A write error shows up as a read error too.
                _ => beat_at = Instant::now() + conn.alive.heartbeat(),
            }
        }
        conn.keepalive();
        if !progress {
            // Data libssh2 already holds for the channel (it may have
            // come in while the other stream was read) needs no wait.
            let ms = if channel.read_window().available > 0 {
                1
            } else {
                POLL_MS
            };
            wait_socket(session, fd, ms);
        }
    }
    // EOF came; the exit status and the close follow it.
    let deadline = Instant::now() + STOP_GRACE;
    loop {
        match channel.wait_close() {
            Err(e) if would_block(&e) && Instant::now() < deadline => {
                wait_socket(session, fd, POLL_MS)
            }
            _ => break,
        }
    }
    Ok(exit_code(channel))
}

/// Asks the server to close the channel, waiting at most [`CLOSE_WAIT`]
/// for it to agree.
fn close_briefly(session: &Session, fd: RawFd, channel: &mut Channel) {
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        match channel.close() {
            Err(e) if would_block(&e) && Instant::now() < deadline => {
                wait_socket(session, fd, POLL_MS)
            }
            _ => break,
        }
    }
}

/// `Some(n)` bytes read, `None` when nothing is there now (or at EOF).
pub(crate) fn read_some(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match r.read(buf) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// The shell's convention: 128 + n for a command killed by signal n.
fn exit_code(channel: &Channel) -> i32 {
    let signal = channel.exit_signal().ok().and_then(|s| s.exit_signal);
    match signal {
        Some(name) => 128 + whosent_proto::signal::parse(&name).unwrap_or(127),
        None => channel.exit_status().unwrap_or(-1),
    }
}

pub(crate) fn would_block(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(ERROR_EAGAIN)
}

/// Waits until the socket is ready in the direction libssh2 last
/// blocked on, or `ms` passed.
pub(crate) fn wait_socket(session: &Session, fd: RawFd, ms: libc::c_int) {
    let mut events = libc::POLLIN;
    if matches!(
        session.block_directions(),
        ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
    ) {
        events |= libc::POLLOUT;
    }
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    unsafe { libc::poll(&mut pfd, 1, ms) };
}

/// Non-blocking mode for as long as it lives.
pub(crate) struct NonBlocking<'a>(&'a Session);

impl<'a> NonBlocking<'a> {
    pub(crate) fn set(session: &'a Session) -> Self {
        session.set_blocking(false);
        NonBlocking(session)
    }
}

impl Drop for NonBlocking<'_> {
    fn drop(&mut self) {
        self.0.set_blocking(true);
    }
}

/// A libssh2 timeout for blocking calls for as long as it lives (the
/// connection otherwise runs without one).
pub(crate) struct Timeout<'a> {
    session: &'a Session,
    before: u32,
}

impl<'a> Timeout<'a> {
    pub(crate) fn set(session: &'a Session, d: Duration) -> Self {
        let before = session.timeout();
        session.set_timeout(millis(d));
        Timeout { session, before }
    }
}

impl Drop for Timeout<'_> {
    fn drop(&mut self) {
        self.session.set_timeout(self.before);
    }
}
