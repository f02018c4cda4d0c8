//! The one error type of the SSH transport, each variant with a `help`
//! line that tells the user what to do next.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong between parsing a destination and
/// reading the last byte a remote command printed.
///
/// `Display` says what happened; [`SshError::help`] says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("bad destination '{dest}': {reason}")]
    BadDestination { dest: String, reason: String },

    /// `user:password@host`. Carries nothing of what was typed, so that
    /// no message can show the password.
    #[error("passwords are not taken on the command line (use WHOSENT_PASSWORD or a key)")]
    PasswordInDestination,

    #[error("cannot read ssh config {}: {source}", path.display())]
    ConfigRead { path: PathBuf, source: io::Error },

    #[error("{}:{line}: {message}", path.display())]
    ConfigInvalid {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// `ProxyCommand` applies to the destination.
    #[error("{}:{line}: {keyword} (used for '{alias}') is not supported: whosent-deploy runs no proxy command (ProxyJump works)", path.display())]
    ConfigUnsupported {
        path: PathBuf,
        line: usize,
        keyword: String,
        alias: String,
    },

    /// A failure on the way to the jump host `jump` (connecting, its
    /// host key, logging in): the board itself was not reached.
    #[error("jump host {jump}: {source}")]
    Jump { jump: String, source: Box<SshError> },

    /// The jump host refused or failed to open the `direct-tcpip`
    /// channel to the board.
    #[error("jump host {jump} cannot reach {host}:{port}: {source}")]
    JumpOpen {
        jump: String,
        host: String,
        port: u16,
        source: ssh2::Error,
    },

    /// The SSH handshake with the board, through the jump host, failed
    /// (or timed out: `source` then says so).
    #[error("SSH handshake with {host}:{port} through jump host {jump} failed: {source}")]
    JumpHandshake {
        jump: String,
        host: String,
        port: u16,
        source: ssh2::Error,
    },

    #[error("cannot resolve host '{host}': {source}")]
    Resolve { host: String, source: io::Error },

    #[error("cannot connect to {addr}: connection refused")]
    ConnectRefused { addr: SocketAddr },

    #[error("cannot connect to {addr}: no answer within {}", secs(*timeout))]
    ConnectTimeout { addr: SocketAddr, timeout: Duration },

    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },

    #[error("no SSH server answered on {addr} within {}", secs(*timeout))]
    HandshakeTimeout { addr: SocketAddr, timeout: Duration },

    #[error("SSH handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        source: ssh2::Error,
    },

    /// Strict policy and no entry for this host in known_hosts.
    #[error(
        "the authenticity of host '{host}' can't be established: it presents {key_type} key {fingerprint}, and {} has no key for it",
        known_hosts.display()
    )]
    UnknownHostKey {
        /// The known_hosts name: `host`, or `[host]:port` off port 22.
        host: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },

    /// Whatever the policy: the host presents a key that differs from
    /// the one recorded.
    #[error(
        "REMOTE HOST IDENTIFICATION HAS CHANGED for '{host}': it now presents {key_type} key {fingerprint}, which does not match {}:{} (someone could be intercepting the connection, or the board's host key changed)",
        known_hosts.display(),
        lines_list(lines)
    )]
    HostKeyChanged {
        host: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
        /// 1-based lines of the entries that disagree.
        lines: Vec<usize>,
    },

    /// Whatever the policy: the key is on a matching `@revoked` line.
    #[error(
        "REVOKED HOST KEY DETECTED for '{host}': it presents {key_type} key {fingerprint}, which {}:{line} marks as revoked (a stolen key could be used to impersonate the board)",
        known_hosts.display()
    )]
    HostKeyRevoked {
        host: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
        /// 1-based line of the `@revoked` entry.
        line: usize,
    },

    /// A `@cert-authority` line names the host and no plain key does.
    #[error(
        "host '{host}' is vouched for by the certificate authority at {}:{line}, but whosent-deploy does not support host certificates",
        known_hosts.display()
    )]
    HostCertificatesUnsupported {
        host: String,
        known_hosts: PathBuf,
        line: usize,
    },

    #[error("cannot read known hosts file {}: {source}", path.display())]
    KnownHostsRead { path: PathBuf, source: io::Error },

    #[error("cannot record the host key in {}: {source}", path.display())]
    KnownHostsWrite { path: PathBuf, source: io::Error },

    #[error("authentication as '{user}' on {host}:{port} failed; tried: {}", tried.join("; "))]
    AuthFailed {
        user: String,
        host: String,
        port: u16,
        /// One entry per method or key, with its outcome.
        tried: Vec<String>,
    },

    #[error("SSH channel error while {action}: {source}")]
    Channel { action: String, source: ssh2::Error },

    #[error("I/O error while {action}: {source}")]
    RemoteIo { action: String, source: io::Error },

    #[error(
        "remote command `{cmd}` failed with status {status}{}",
        stderr_note(stderr)
    )]
    RemoteCommand {
        cmd: String,
        status: i32,
        stderr: String,
    },

    #[error("upload to {path} arrived incomplete: {got} of {expected} bytes")]
    UploadIncomplete {
        path: String,
        expected: u64,
        got: u64,
    },

    #[error("remote command `{cmd}` did not exit within {} of its stdin being closed", secs(*waited))]
    NoExit { cmd: String, waited: Duration },

    /// Ctrl-C (SIGINT, SIGTERM, SIGHUP) before the remote command could
    /// be stopped through its stdin: the connection was dropped.
    #[error("interrupted")]
    Interrupted,

    /// Nothing came from the board for `quiet`, keepalives included.
    #[error("the link to {addr} is dead: no answer for {} (ServerAliveInterval {}, ServerAliveCountMax {})", secs(*quiet), secs(*interval), count)]
    LinkDead {
        addr: SocketAddr,
        quiet: Duration,
        interval: Duration,
        count: u32,
    },
}

impl SshError {
    /// One line telling the user what to do about this error.
    pub fn help(&self) -> String {
        use SshError::*;
        match self {
            BadDestination { .. } => {
                "write the destination as [USER@]HOST[:PORT], e.g. root@board.local:2222 or root@[fe80::2%eth0]:22".into()
            }
            PasswordInDestination => {
                "write the destination as USER@HOST[:PORT], and log in with a key (-i KEY) or set WHOSENT_PASSWORD in the environment".into()
            }
            ConfigRead { .. } => "fix the permissions of the ssh config file, or point at another one".into(),
            ConfigInvalid { .. } => "fix that line of the ssh config (see `man ssh_config`)".into(),
            ConfigUnsupported { keyword, .. } => format!(
                "if the {keyword} is `ssh -W %h:%p JUMPHOST`, write `ProxyJump JUMPHOST` instead (or pass -J JUMPHOST); otherwise forward a port (`ssh -N -L 2222:BOARD:22 JUMPHOST`) and deploy to 127.0.0.1:2222"
            ),
            Jump { source, .. } => source.help(),
            JumpOpen { jump, .. } => format!(
                "check the board's name and port as {jump} sees them (HostName, -p), and that {jump}'s sshd allows forwarding (AllowTcpForwarding yes)"
            ),
            JumpHandshake { .. } => {
                "the jump host reached the port, but no SSH server answered there: check the board's port (-p)".into()
            }
            Resolve { .. } => "check the host name (and any HostName in ~/.ssh/config), or use the board's IP address".into(),
            ConnectRefused { .. } => {
                "check the host and port (-p), and that an SSH server (sshd or dropbear) runs on the board".into()
            }
            ConnectTimeout { .. } => {
                "check that the board is powered and on the network (ping it), and the host and port (-p)".into()
            }
            Connect { .. } => "check the network path to the board, and the host and port (-p)".into(),
            HandshakeTimeout { .. } => {
                "the port accepts connections but does not speak SSH: check the port (-p)".into()
            }
            Handshake { .. } => {
                "check the port (-p) and the SSH server's log on the board (`logread` for dropbear, `journalctl -u ssh` for OpenSSH)".into()
            }
            UnknownHostKey { fingerprint, known_hosts, .. } => format!(
                "if {fingerprint} is the board's key (on the board: `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`, or `dropbearkey -y -f /etc/dropbear/dropbear_ed25519_host_key`), run again with --accept-new-host-key to record it in {}",
                known_hosts.display()
            ),
            HostKeyChanged { host, known_hosts, .. } => format!(
                "if the board was reflashed or its keys regenerated, remove the old entry with `ssh-keygen -R '{host}' -f {}` and run again with --accept-new-host-key; otherwise do not connect",
                known_hosts.display()
            ),
            HostKeyRevoked { .. } => {
                "do not connect: no flag accepts a revoked key; give the board new host keys and record the new one".into()
            }
            HostCertificatesUnsupported { known_hosts, .. } => format!(
                "record the board's own host key in {} (check its fingerprint on the board with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`)",
                known_hosts.display()
            ),
            KnownHostsRead { .. } | KnownHostsWrite { .. } => {
                "fix the permissions of the known_hosts file and its directory, or use another known_hosts file".into()
            }
            AuthFailed { user, host, port, .. } => {
                let dest = if host.contains(':') { format!("[{host}]") } else { host.clone() };
                format!(
                    "pass the right key with -i KEY, install yours on the board with `ssh-copy-id -p {port} {user}@{dest}`, or set WHOSENT_PASSWORD to log in with a password"
                )
            }
            Channel { .. } | RemoteIo { .. } => {
                "the connection to the board broke or its SSH server refused the request: run again, and check the server's log on the board".into()
            }
            RemoteCommand { .. } => {
                "read the remote error above; check the path, free space (`df`) and permissions on the board".into()
            }
            UploadIncomplete { .. } => "check free space on the board (`df`) and upload again".into(),
            NoExit { .. } => {
                "the remote process may still run: find it with `ps` on the board and kill it".into()
            }
            Interrupted => {
                "nothing was traced; the board removes what was uploaded by itself".into()
            }
            LinkDead { .. } => {
                "check the network to the board; the agent there stops by itself when it stops hearing from us (-o ServerAliveInterval=SECS and -o ServerAliveCountMax=N set how soon)".into()
            }
        }
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

fn lines_list(lines: &[usize]) -> String {
    let v: Vec<String> = lines.iter().map(ToString::to_string).collect();
    v.join(",")
}

/// The board's stderr, on the error's one line: escaped as names are,
/// so a newline shows as `\n` and nothing reaches the terminal raw.
fn stderr_note(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {}", whosent_proto::escape::escape(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_error_is_one_line_with_the_board_text_escaped() {
        let e = SshError::RemoteCommand {
            cmd: "mkdir x".into(),
            status: 1,
            stderr: "mkdir: x\x1b[2J: exists\nsecond line\n".into(),
        };
        assert_eq!(
            e.to_string(),
            "remote command `mkdir x` failed with status 1: mkdir: x\\x1b[2J: exists\\nsecond line"
        );
    }
}
