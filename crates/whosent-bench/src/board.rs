//! The emulated aarch64 board (scripts/board.sh, docs/boards.md): boot,
//! plain `ssh` with the board's key and known_hosts, and `down` when the
//! guard is dropped, also on the harness's error paths.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Board {
    pub name: String,
    pub port: u16,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    script: PathBuf,
    down: bool,
}

/// Undoes `printf %q` for the simple values board.sh prints.
fn unquote(v: &str) -> String {
    let v = v.trim();
    if let Some(inner) = v.strip_prefix("$'").and_then(|s| s.strip_suffix('\'')) {
        return inner.to_string();
    }
    let mut out = String::new();
    let mut esc = false;
    for c in v.chars() {
        if esc {
            out.push(c);
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else {
            out.push(c);
        }
    }
    out
}

impl Board {
    /// Boots a board named `name`; returns it and the time to SSH.
    pub fn up(repo: &Path, name: &str) -> io::Result<(Board, Duration)> {
        let script = repo.join("scripts/board.sh");
        let t0 = Instant::now();
        let out = Command::new(&script)
            .args(["up", "aarch64", "--name", name])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        let boot = t0.elapsed();
        if !out.status.success() {
            // A half-started board is still taken down.
            let _ = Command::new(&script)
                .args(["down", name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(io::Error::other(format!(
                "board.sh up failed: {}",
                err.lines().last().unwrap_or("")
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")).map(unquote))
                .unwrap_or_default()
        };
        let b = Board {
            name: name.into(),
            port: get("BOARD_PORT").parse().unwrap_or(0),
            key: get("BOARD_KEY").into(),
            known_hosts: get("BOARD_KNOWN_HOSTS").into(),
            script,
            down: false,
        };
        if b.port == 0 {
            return Err(io::Error::other("board.sh up printed no BOARD_PORT"));
        }
        Ok((b, boot))
    }

    pub fn ssh_opts(&self) -> Vec<String> {
        [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("IdentityFile={}", self.key.display()),
            "-o".into(),
            "ConnectTimeout=10".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-o".into(),
            format!("Port={}", self.port),
            "root@127.0.0.1".into(),
        ])
        .collect()
    }

    /// Runs `cmd` on the board; returns its stdout and the wall time.
    pub fn ssh(&self, cmd: &str, input: Option<&[u8]>) -> io::Result<(String, Duration)> {
        let t0 = Instant::now();
        let mut child = Command::new("ssh")
            .args(self.ssh_opts())
            .arg(cmd)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let (Some(data), Some(mut w)) = (input, child.stdin.take()) {
            w.write_all(data)?;
        }
        let out = child.wait_with_output()?;
        let t = t0.elapsed();
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "ssh {cmd:?}: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok((String::from_utf8_lossy(&out.stdout).into_owned(), t))
    }

    pub fn down(&mut self) {
        if self.down {
            return;
        }
        self.down = true;
        let _ = Command::new(&self.script)
            .args(["down", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        self.down();
    }
}

#[cfg(test)]
mod tests {
    use super::unquote;

    #[test]
    fn undoes_printf_q() {
        assert_eq!(unquote(r"/tmp/a\ b"), "/tmp/a b");
        assert_eq!(unquote("36322"), "36322");
    }
}
