//! An authenticated SSH connection to a board.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ssh2::{ErrorCode, MethodType, Session};

use super::alive::Alive;
use super::dest::Target;
use super::known_hosts::{self, HostKeyPolicy};
use super::watch::{Busy, Fired, Watch};
use super::{auth, SshError};

/// How to connect; `Default` gives ssh's defaults. `Debug` hides the
/// password.
#[derive(Clone)]
pub struct ConnectOpts {
    /// The known_hosts file to check (and, under `AcceptNew`, extend).
    pub known_hosts: PathBuf,
    pub policy: HostKeyPolicy,
    /// For the TCP connect to each address, and then for each step of
    /// the handshake and authentication.
    pub connect_timeout: Duration,
    /// Tried last, for the `password` or `keyboard-interactive` method.
    /// The caller decides where it comes from (`WHOSENT_PASSWORD`, a
    /// prompt).
    pub password: Option<String>,
    /// Keepalives (ssh_config's and `-o`'s ServerAlive*).
    pub alive: Alive,
    /// Ctrl-C: set, it drops the connection at once, wherever it is,
    /// until a stream starts (which then stops its command gracefully).
    pub stop: Option<&'static AtomicBool>,
}

impl std::fmt::Debug for ConnectOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOpts")
            .field("known_hosts", &self.known_hosts)
            .field("policy", &self.policy)
            .field("connect_timeout", &self.connect_timeout)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("alive", &self.alive)
            .finish()
    }
}

impl Default for ConnectOpts {
    fn default() -> Self {
        ConnectOpts {
            known_hosts: known_hosts::default_path(),
            policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            password: None,
            alive: Alive::default(),
            stop: None,
        }
    }
}

/// An SSH session to a board, authenticated and ready for commands.
///
/// One operation runs at a time: concurrent calls from several threads
/// wait for each other (the session switches between blocking and
/// non-blocking mode, which is per session in libssh2).
pub struct Conn {
    /// Declared first so that it is dropped while the socket is open.
    pub(crate) watch: Watch,
    pub(crate) session: Session,
    /// The socket, for `poll` while the session is non-blocking; the
    /// session owns the `TcpStream`.
    pub(crate) fd: RawFd,
    target: Target,
    peer: SocketAddr,
    busy: Mutex<()>,
    /// Set once SCP failed here; see `upload::Conn::scp`.
    pub(crate) scp_unusable: AtomicBool,
    pub(crate) alive: Alive,
    /// Through a jump host: the thread that carries this session over
    /// the jump host's channel. After `session`, so that it is dropped
    /// (and joined) once the session has closed its socket.
    _jump: Option<super::jump::Link>,
}

/// With the keepalives, a board that vanished (nothing acknowledged) is
/// also noticed by TCP; see [`super::alive`] for one that went silent.
const TCP_USER_TIMEOUT_MS: libc::c_int = 60_000;
/// How often a wait for the TCP connection looks at `stop`.
const CONNECT_TICK: Duration = Duration::from_millis(25);

/// libssh2's `LIBSSH2_ERROR_TIMEOUT`.
const ERROR_TIMEOUT: i32 = -9;

impl Conn {
    /// Connects, checks the host key, and logs in (agent, keys, then
    /// password; see [`super::auth`]).
    ///
    /// With `target.jump`, the session runs over a channel of the jump
    /// host's session ([`super::jump`]); both host keys are checked.
    pub fn connect(target: &Target, opts: &ConnectOpts) -> Result<Conn, SshError> {
        let (mut session, fd, peer, jump) = open(target, opts)?;
        let watch = Watch::start(fd, opts.stop, opts.alive.dead_after());
        let via = jump.as_ref().map(|(route, _)| route.clone());
        Self::login(&mut session, peer, via, target, opts).map_err(|e| match watch.fired() {
            Some(Fired::Interrupted) => SshError::Interrupted,
            _ => e,
        })?;
        session.set_keepalive(true, opts.alive.interval.as_secs().max(1) as u32);
        Ok(Conn {
            watch,
            session,
            fd,
            target: target.clone(),
            peer,
            busy: Mutex::new(()),
            scp_unusable: AtomicBool::new(false),
            alive: opts.alive,
            _jump: jump.map(|(_, link)| link),
        })
    }

    /// Handshake, host key check, authentication.
    fn login(
        session: &mut Session,
        peer: SocketAddr,
        via: Option<String>,
        target: &Target,
        opts: &ConnectOpts,
    ) -> Result<(), SshError> {
        let handshake_err = |source| match &via {
            None => SshError::Handshake { addr: peer, source },
            Some(jump) => SshError::JumpHandshake {
                jump: jump.clone(),
                host: target.host.clone(),
                port: target.port,
                source,
            },
        };
        session.set_timeout(millis(opts.connect_timeout));
        let prefs =
            known_hosts::algorithm_prefs(session, &opts.known_hosts, &target.host, target.port)?;
        if let Some(prefs) = prefs {
            session
                .method_pref(MethodType::HostKey, &prefs)
                .map_err(handshake_err)?;
        }
        session.handshake().map_err(|e| match e.code() {
            ErrorCode::Session(ERROR_TIMEOUT) if via.is_none() => SshError::HandshakeTimeout {
                addr: peer,
                timeout: opts.connect_timeout,
            },
            _ => handshake_err(e),
        })?;
        known_hosts::verify(
            session,
            &opts.known_hosts,
            &target.host,
            target.port,
            opts.policy,
        )?;
        auth::authenticate(session, target, opts.password.as_deref())?;
        // Streams last as long as the agent runs: no timeout from here
        // (the watch ends a dead link).
        session.set_timeout(0);
        Ok(())
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The address actually connected to (through a jump host, the
    /// jump host's).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The host key algorithm negotiated (`ssh-ed25519`, ...).
    pub fn host_key_algorithm(&self) -> Option<String> {
        self.session
            .methods(MethodType::HostKey)
            .map(str::to_string)
    }

    /// Serialises operations on the session, each one watched for a
    /// dead link while it runs.
    pub(crate) fn lock(&self) -> (MutexGuard<'_, ()>, Busy<'_>) {
        let g = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        (g, self.watch.busy())
    }

    /// The error to report for `e`: if the watch ended the connection,
    /// that is what happened, whatever libssh2 made of it.
    pub(crate) fn explain(&self, e: SshError) -> SshError {
        match self.watch.fired() {
            Some(Fired::Interrupted) => SshError::Interrupted,
            Some(Fired::Dead(quiet)) => SshError::LinkDead {
                addr: self.peer,
                quiet,
                interval: self.alive.interval,
                count: self.alive.count,
            },
            None => e,
        }
    }

    /// Sends a keepalive that wants a reply if the board has been silent
    /// for an interval of the current wait (libssh2 sends at most one per
    /// interval).
    pub(crate) fn keepalive(&self) {
        if self.watch.quiet() >= self.alive.interval {
            let _ = self.session.keepalive_send();
        }
    }

    /// The keepalive settings, for the agent's `--alive-timeout`.
    pub fn alive(&self) -> Alive {
        self.alive
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.session.set_blocking(true);
        // Also bounds freeing channels whose close was never confirmed.
        self.session.set_timeout(1000);
        let _ = self.session.disconnect(None, "whosent-deploy done", None);
        // Freeing the session frees its channels, each waiting for the
        // server to confirm its close, which it does only once the
        // command exited (the agent's teardown): with the socket shut
        // down they do not wait. The watch is told first.
        self.watch.closing();
        // SAFETY: the fd is the session's live socket; it is closed
        // when the session drops, after this.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }
}

/// [`tcp_connect`] in a thread, so that Ctrl-C need not wait for a
/// slow resolver or an unanswered SYN: the thread is left to finish on
/// its own (its socket is closed when it does).
fn tcp_connect_interruptibly(
    target: &Target,
    opts: &ConnectOpts,
) -> Result<(TcpStream, SocketAddr), SshError> {
    let (tx, rx) = mpsc::channel();
    let (host, port, timeout) = (target.host.clone(), target.port, opts.connect_timeout);
    std::thread::spawn(move || {
        let _ = tx.send(tcp_connect(&host, port, timeout));
    });
    // Resolving has no timeout of its own; this bounds it with the rest.
    let deadline = Instant::now() + timeout * 2 + Duration::from_secs(5);
    loop {
        if opts.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Err(SshError::Interrupted);
        }
        match rx.recv_timeout(CONNECT_TICK) {
            Ok(r) => return r,
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => {
                return Err(SshError::Resolve {
                    host: target.host.clone(),
                    source: io::Error::new(io::ErrorKind::TimedOut, "no answer"),
                })
            }
        }
    }
}

/// Resolves and connects to each address in turn; the error is the
/// first address's.
fn tcp_connect(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), SshError> {
    let resolve_err = |source| SshError::Resolve {
        host: host.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(resolve_err)?
        .collect();
    if addrs.is_empty() {
        return Err(resolve_err(io::Error::new(
            io::ErrorKind::NotFound,
            "the name has no addresses",
        )));
    }
    let mut first_err = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok((s, addr)),
            Err(e) => {
                first_err.get_or_insert((addr, e));
            }
        }
    }
    let (addr, e) = first_err.expect("at least one address was tried");
    Err(match e.kind() {
        io::ErrorKind::ConnectionRefused => SshError::ConnectRefused { addr },
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            SshError::ConnectTimeout { addr, timeout }
        }
        _ => SshError::Connect { addr, source: e },
    })
}

/// Keepalives and a user timeout, so that a board that loses power is
/// noticed. Best effort: a failure only loses that detection.
fn tune_socket(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let fd = tcp.as_raw_fd();
    let set = |level, name, value: libc::c_int| {
        // SAFETY: fd is a live socket; the option value is a c_int
        // whose size is passed.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 15);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 5);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 4);
    set(
        libc::IPPROTO_TCP,
        libc::TCP_USER_TIMEOUT,
        TCP_USER_TIMEOUT_MS,
    );
}

/// A session not yet handshaken, over TCP to the board or, with
/// `target.jump`, over the jump host's channel; with its descriptor,
/// the address connected to, and the jump host's route and pump.
#[allow(clippy::type_complexity)] // reason: one private call site, destructured at once
fn open(
    target: &Target,
    opts: &ConnectOpts,
) -> Result<
    (
        Session,
        RawFd,
        SocketAddr,
        Option<(String, super::jump::Link)>,
    ),
    SshError,
> {
    let new = |peer| Session::new().map_err(|source| SshError::Handshake { addr: peer, source });
    match target.jump.as_deref() {
        None => {
            let (tcp, peer) = tcp_connect_interruptibly(target, opts)?;
            tune_socket(&tcp);
            let fd = tcp.as_raw_fd();
            let mut session = new(peer)?;
            session.set_tcp_stream(tcp);
            Ok((session, fd, peer, None))
        }
        Some(j) => {
            let (sock, link) = super::jump::open(j, target, opts)?;
            let fd = sock.as_raw_fd();
            let mut session = new(link.peer)?;
            session.set_tcp_stream(sock);
            Ok((session, fd, link.peer, Some((j.route(), link))))
        }
    }
}

pub(crate) fn millis(d: Duration) -> u32 {
    d.as_millis().clamp(1, u128::from(u32::MAX)) as u32
}
