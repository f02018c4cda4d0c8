//! An authenticated SSH connection to a board.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ssh2::{ErrorCode, MethodType, Session};

use super::dest::Target;
use super::known_hosts::{self, HostKeyPolicy};
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
}

impl std::fmt::Debug for ConnectOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOpts")
            .field("known_hosts", &self.known_hosts)
            .field("policy", &self.policy)
            .field("connect_timeout", &self.connect_timeout)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
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
        }
    }
}

/// An SSH session to a board, authenticated and ready for commands.
///
/// One operation runs at a time: concurrent calls from several threads
/// wait for each other (the session switches between blocking and
/// non-blocking mode, which is per session in libssh2).
pub struct Conn {
    pub(crate) session: Session,
    /// The socket, for `poll` while the session is non-blocking; the
    /// session owns the `TcpStream`.
    pub(crate) fd: RawFd,
    target: Target,
    peer: SocketAddr,
    busy: Mutex<()>,
    /// Set once SCP failed here; see `upload::Conn::scp`.
    pub(crate) scp_unusable: AtomicBool,
    /// Through a jump host: the thread that carries this session over
    /// the jump host's channel. After `session`, so that it is dropped
    /// (and joined) once the session has closed its socket.
    _jump: Option<super::jump::Link>,
}

/// Seconds between SSH keepalives while streaming. With TCP's user
/// timeout below, a board that vanished is noticed within about a
/// minute instead of the kernel's fifteen.
const KEEPALIVE_SECS: u32 = 15;
const TCP_USER_TIMEOUT_MS: libc::c_int = 60_000;

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
        let via = jump.as_ref().map(|(route, _)| route.clone());
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
            known_hosts::algorithm_prefs(&session, &opts.known_hosts, &target.host, target.port)?;
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
            &session,
            &opts.known_hosts,
            &target.host,
            target.port,
            opts.policy,
        )?;
        auth::authenticate(&session, target, opts.password.as_deref())?;
        // Streams last as long as the agent runs: no timeout from here.
        session.set_timeout(0);
        session.set_keepalive(false, KEEPALIVE_SECS);
        Ok(Conn {
            session,
            fd,
            target: target.clone(),
            peer,
            busy: Mutex::new(()),
            scp_unusable: AtomicBool::new(false),
            _jump: jump.map(|(_, link)| link),
        })
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

    /// Serialises operations on the session.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.session.set_blocking(true);
        // Also bounds freeing channels whose close was never confirmed.
        self.session.set_timeout(1000);
        let _ = self.session.disconnect(None, "whosent-deploy done", None);
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
            let (tcp, peer) = tcp_connect(&target.host, target.port, opts.connect_timeout)?;
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
