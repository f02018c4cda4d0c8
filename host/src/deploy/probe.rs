//! What the flow decides from the board's facts ([`crate::board`]):
//! its architecture, whether tracing may run, and whether the backend's
//! command needs `sudo -n`.

use crate::board::{Facts, PROBE};
use crate::build::Target as Arch;
use crate::error::HostError;
use crate::ssh::upload::quote;
use crate::transport::Transport;

/// Runs the probe, through sudo when asked.
pub fn probe(t: &dyn Transport, sudo: bool) -> Result<Facts, HostError> {
    // With --sudo the facts are root's view (tracefs is usually 0700),
    // but the login uid decides whether the command needs the sudo
    // prefix (see `sudo_prefix`).
    let cmd = if sudo {
        format!(
            "echo login_uid=$(id -u); sudo -n sh -c {} 2>/dev/null || sh -c {}",
            quote(PROBE),
            quote(PROBE)
        )
    } else {
        format!("echo login_uid=$(id -u); {PROBE}")
    };
    let out = t.run(&cmd)?;
    Ok(Facts::parse(&String::from_utf8_lossy(&out.stdout)))
}

/// The board's architecture, checked against `--target`.
pub fn arch(given: Option<&str>, f: &Facts) -> Result<Arch, HostError> {
    let board = Arch::from_uname_m(&f.arch);
    match (given.map(Arch::parse).transpose()?, board) {
        (Some(g), Some(b)) if g != b => Err(HostError::other(
            format!("--target {} does not match the board, which is {} (uname -m: {})", given.unwrap_or_default(), b.name(), f.arch),
            "drop --target to use the board's own, or connect to the right board",
        )),
        (Some(g), _) => Ok(g),
        (None, Some(b)) => Ok(b),
        (None, None) => Err(HostError::other(
            format!("the board's architecture '{}' is not supported", f.arch),
            "whosent supports aarch64, armv7 and x86_64 boards; pass --target if uname -m is unusual",
        )),
    }
}

/// Tracing needs root: the probe's uid (root under a working --sudo).
pub fn check_privileges(f: &Facts, sudo: bool) -> Result<(), HostError> {
    if f.is_root() {
        return Ok(());
    }
    if !sudo {
        return Err(HostError::other(
            format!("the login user (uid {}) is not root, and tracing needs root", f.uid.map_or("?".into(), |u| u.to_string())),
            "log in as root (-l root), or pass --sudo for a user who may run sudo without a password",
        ));
    }
    if !f.sudo_ok {
        return Err(HostError::other(
            "--sudo was given, but `sudo -n true` fails on the board (no sudo, or it wants a password)",
            "allow the user passwordless sudo (NOPASSWD in /etc/sudoers.d), or log in as root",
        ));
    }
    Ok(())
}

/// `sudo -n ` unless the login itself is root. The login uid, not the
/// probe's: under --sudo the probe ran as root and says uid 0 even for
/// a user login (stap's copy of the flow once got this wrong).
pub fn sudo_prefix(f: &Facts) -> &'static str {
    if f.login_uid == Some(0) {
        ""
    } else {
        "sudo -n "
    }
}
