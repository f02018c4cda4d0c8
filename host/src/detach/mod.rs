//! Detached captures (issue #14): `start` leaves the agent recording on
//! the board, outside any SSH session, into a capture directory
//! `<--dir>/whosent-cap-<ID>`; `collect` reads its segments back and
//! decodes them here with the live run's pipeline; `stop` ends it and
//! removes everything; `status` lists the board's captures. The layout
//! of the directory is the contract with the agent (docs/detached.md).
//!
//! Each command acts on one board, a [`Board`], and writes to the
//! writer it is given, so that a fleet runs it per board.
//!
//! - [`listing`]: what the board holds, in one command;
//! - [`cursor`]: how far a capture was collected;
//! - [`size`]: the values of `--max-size`;
//! - [`start`], [`collect`], [`stop`], [`status`]: the commands;
//! - [`segments`]: reading and decoding the segments;
//! - [`args`], [`command`]: the command lines, and the glue from them.

pub mod args;
pub mod collect;
pub mod command;
pub mod cursor;
pub mod listing;
pub mod segments;
pub mod size;
pub mod start;
pub mod status;
pub mod stop;

use crate::error::HostError;
use crate::ssh::upload::quote;
use crate::transport::{Output, Transport};
use listing::{Capture, Listing};

/// `--dir`'s default.
pub const DEFAULT_DIR: &str = "/tmp";

/// One board's captures, as the commands reach them.
pub struct Board<'a> {
    pub t: &'a dyn Transport,
    /// The `--host` given: it names the board in messages, and in JSON
    /// records unless it is `local` (as a live run's).
    pub host: String,
    /// `--dir`.
    pub dir: String,
    /// The capture's files are root's: a login that is not root reaches
    /// them through `sudo -n` (`--sudo`).
    pub sudo: bool,
}

impl Board<'_> {
    /// Runs `script` on the board, as root when `sudo` (for a login
    /// that is root, without sudo).
    pub fn run(&self, script: &str) -> Result<Output, HostError> {
        let cmd = if self.sudo {
            let q = quote(script);
            format!(r#"if [ "$(id -u)" = 0 ]; then sh -c {q}; else sudo -n sh -c {q}; fi"#)
        } else {
            script.to_string()
        };
        Ok(self.t.run(&cmd)?)
    }

    /// The host in JSON records: none for this machine.
    pub fn label(&self) -> Option<String> {
        (self.host != "local").then(|| self.host.clone())
    }

    /// A capture directory's path.
    pub fn path(&self, id: &str) -> String {
        format!("{}/whosent-cap-{id}", self.dir)
    }

    /// Lists the captures.
    pub fn list(&self) -> Result<Listing, HostError> {
        let out = self.run(&listing::script(&self.dir))?;
        if out.status != 0 {
            return Err(HostError::other(
                format!(
                    "cannot list the captures in {} on {}: {}",
                    self.dir,
                    self.host,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "check --dir, and that the login is root (or give --sudo)",
            ));
        }
        let mut l = Listing::parse(&String::from_utf8_lossy(&out.stdout));
        // Only names a start can have made are captures.
        l.captures.retain(|c| check_id(&c.id).is_ok());
        Ok(l)
    }

    /// The capture `id` names, or the only one when it names none.
    pub fn choose<'l>(&self, l: &'l Listing, id: Option<&str>) -> Result<&'l Capture, HostError> {
        let ids = || {
            l.captures
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match id {
            Some(id) => {
                check_id(id)?;
                l.captures.iter().find(|c| c.id == id).ok_or_else(|| {
                    HostError::other(
                        format!(
                            "no capture {id} on {} in {}{}",
                            self.host,
                            self.dir,
                            match l.captures.len() {
                                0 => " (it has none)".to_string(),
                                _ => format!(" (it has {})", ids()),
                            }
                        ),
                        "give an id that `whosent-deploy status` lists, and the --dir the capture was started with",
                    )
                })
            }
            None => match l.captures.as_slice() {
                [one] => Ok(one),
                [] => Err(HostError::other(
                    format!("no capture on {} in {}", self.host, self.dir),
                    "start one with `whosent-deploy start`, or give the --dir it was started with",
                )),
                _ => Err(HostError::Usage(format!(
                    "{} has {} captures: {}; say which with --id ID",
                    self.host,
                    l.captures.len(),
                    ids()
                ))),
            },
        }
    }
}

/// An id is 8 lowercase hex digits: anything else cannot name a
/// capture (and is never put into a path).
pub fn check_id(id: &str) -> Result<(), HostError> {
    if id.len() == 8 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Ok(());
    }
    Err(HostError::Usage(format!(
        "--id {}: not a capture id (8 hex digits, as `whosent-deploy start` printed it)",
        whosent_proto::escape::escape(id)
    )))
}

/// `--dir` must be absolute: the captures must be found again by
/// later commands, whatever their login's directory.
pub fn check_dir(dir: &str) -> Result<String, HostError> {
    let d = dir.trim_end_matches('/');
    if !dir.starts_with('/') || dir.contains('\n') {
        return Err(HostError::Usage(format!(
            "--dir {}: give an absolute path on the board, e.g. /tmp or /var/lib/whosent",
            whosent_proto::escape::escape(dir)
        )));
    }
    Ok(if d.is_empty() { "/".into() } else { d.into() })
}

/// A new capture id: 8 random lowercase hex digits.
pub fn new_id() -> Result<String, HostError> {
    use std::io::Read;
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| HostError::Io("reading /dev/urandom".into(), e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests;
