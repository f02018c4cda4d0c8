//! Putting a file on the board.
//!
//! SCP first; boards whose SSH server is dropbear usually lack the
//! `scp` program (and `sftp-server`), so when SCP fails, for whatever
//! reason, the data goes through `cat > FILE` in an exec channel
//! instead, which needs nothing but a shell (a real problem, such as a
//! missing directory, then fails there too, with the shell's message;
//! progress starts over). Either way the data lands in `PATH.whosent-part` and is
//! then `chmod`ed and renamed over `PATH`, so a running old agent is
//! replaced atomically (writing into a running binary fails with
//! ETXTBSY) and a broken transfer never leaves a truncated `PATH`.
//! Finally `wc -c` checks that every byte arrived.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ssh2::Channel;

use super::exec::{open_exec, read_some, NonBlocking, Output, OwnedChannel, Timeout};
use super::session::Conn;
use super::SshError;

/// How the data got there, for the caller to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMethod {
    Scp,
    /// `cat > FILE` in an exec channel.
    Exec,
    /// Written in place: the board is this machine (`--host local`).
    Copy,
}

/// Options for [`Conn::upload_with`].
#[derive(Default)]
pub struct UploadOpts<'a> {
    /// Skip SCP, as if the board had no `scp`.
    pub force_exec: bool,
    /// Called after each chunk with (bytes sent, total).
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
}

const CHUNK: usize = 32 * 1024;
/// Longest a write may wait for the board before the upload fails.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

impl Conn {
    /// Uploads `data` to `remote_path` with permissions `mode` (e.g.
    /// `0o755`). See the module docs.
    pub fn upload(
        &self,
        data: &[u8],
        remote_path: &str,
        mode: i32,
    ) -> Result<UploadMethod, SshError> {
        self.upload_with(data, remote_path, mode, UploadOpts::default())
    }

    /// [`Conn::upload`] with a progress callback or a forced method.
    pub fn upload_with(
        &self,
        data: &[u8],
        remote_path: &str,
        mode: i32,
        opts: UploadOpts<'_>,
    ) -> Result<UploadMethod, SshError> {
        self.upload_inner(data, remote_path, mode, opts)
            .map_err(|e| self.explain(e))
    }

    fn upload_inner(
        &self,
        data: &[u8],
        remote_path: &str,
        mode: i32,
        mut opts: UploadOpts<'_>,
    ) -> Result<UploadMethod, SshError> {
        let mode = mode & 0o7777;
        let part = format!("{remote_path}.whosent-part");
        let mut progress = |sent: u64| {
            if let Some(p) = opts.progress.as_mut() {
                p(sent, data.len() as u64);
            }
        };
        // Any SCP failure falls back (see `scp`); if the board really
        // cannot take the file, the exec path says why in its shell's
        // words. Progress then starts over.
        let try_scp = !opts.force_exec && !self.scp_unusable.load(Ordering::Relaxed);
        let method = if try_scp && self.scp(data, &part, mode, &mut progress).is_ok() {
            UploadMethod::Scp
        } else if self.watch.fired().is_some() {
            // Not SCP's fault: the connection was dropped.
            return Err(SshError::Interrupted);
        } else {
            self.exec_cat(data, &part, &mut progress)?;
            UploadMethod::Exec
        };
        let q = quote(remote_path);
        let cmd = format!(
            "chmod {mode:o} {p} && mv -f {p} {q} && wc -c < {q}",
            p = quote(&part)
        );
        let out = self.run(&cmd)?;
        if out.status != 0 {
            let _ = self.run(&format!("rm -f {}", quote(&part)));
            return Err(SshError::RemoteCommand {
                cmd,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let got = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or(0);
        if got != data.len() as u64 {
            return Err(SshError::UploadIncomplete {
                path: remote_path.to_string(),
                expected: data.len() as u64,
                got,
            });
        }
        Ok(method)
    }

    /// Sends the file with SCP. Fails on a board without `scp`:
    /// dropbear runs `scp -t` in a shell that answers "scp: not found"
    /// and exits 127.
    ///
    /// libssh2 notices that either as a failed start, or not at all: when
    /// the shell's exit (EOF) arrives before its first read but its
    /// message is still unread, `scp_send` hands back the dead channel,
    /// writes into it then stall, and libssh2's SCP state is left
    /// half-way with a pointer to that channel (libssh2 1.11, `scp.c`,
    /// `scp_send_empty_channel`). So the channel is checked before any
    /// data goes in, and after any SCP failure this connection never
    /// calls `scp_send` again.
    fn scp(
        &self,
        data: &[u8],
        part: &str,
        mode: i32,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), SshError> {
        let cmd = format!("scp -t {}", quote(part));
        let result = self.scp_inner(data, part, mode, progress, &cmd);
        if result.is_err() {
            self.scp_unusable.store(true, Ordering::Relaxed);
        }
        result
    }

    fn scp_inner(
        &self,
        data: &[u8],
        part: &str,
        mode: i32,
        progress: &mut dyn FnMut(u64),
        cmd: &str,
    ) -> Result<(), SshError> {
        let mut channel = {
            let _busy = self.lock();
            let _t = Timeout::set(&self.session, STALL_TIMEOUT);
            let channel = self
                .session
                .scp_send(Path::new(part), mode, data.len() as u64, None)
                .map_err(|source| SshError::Channel {
                    action: format!("starting scp to {part}"),
                    source,
                })?;
            OwnedChannel::new(&self.session, channel)
        };
        if let Some(said) = self.scp_died(&mut channel) {
            return Err(SshError::RemoteCommand {
                cmd: cmd.to_string(),
                status: 127,
                stderr: said,
            });
        }
        // scp's protocol: the data, then one NUL byte.
        self.send(&mut channel, data, progress, part)?;
        self.send(&mut channel, b"\0", &mut |_| {}, part)?;
        self.finish(channel, cmd)
    }

    /// What a started `scp -t` said, if it has already quit or spoke at
    /// all (a working one says nothing until the data has come).
    fn scp_died(&self, channel: &mut Channel) -> Option<String> {
        let _busy = self.lock();
        let _nb = NonBlocking::set(&self.session);
        let mut said = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(Some(n)) = read_some(channel, &mut buf) {
            said.extend_from_slice(&buf[..n]);
        }
        let mut stderr = channel.stderr();
        while let Ok(Some(n)) = read_some(&mut stderr, &mut buf) {
            said.extend_from_slice(&buf[..n]);
        }
        (channel.eof() || !said.is_empty()).then(|| {
            let text = String::from_utf8_lossy(&said).trim().to_string();
            if text.is_empty() {
                "scp quit at once".to_string()
            } else {
                text
            }
        })
    }

    /// Sends the file through `cat > PART`, which any shell can do.
    fn exec_cat(
        &self,
        data: &[u8],
        part: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), SshError> {
        let cmd = format!("cat > {}", quote(part));
        let mut channel = {
            let _busy = self.lock();
            open_exec(&self.session, &cmd)?
        };
        let sent = self.send(&mut channel, data, progress, part);
        // The remote error, if any, says more than a failed write.
        self.finish(channel, &cmd)?;
        sent
    }

    /// Writes all of `data`, in chunks, reporting progress.
    fn send(
        &self,
        channel: &mut Channel,
        data: &[u8],
        progress: &mut dyn FnMut(u64),
        part: &str,
    ) -> Result<(), SshError> {
        let _busy = self.lock();
        let _t = Timeout::set(&self.session, STALL_TIMEOUT);
        let mut sent = 0u64;
        for chunk in data.chunks(CHUNK) {
            channel
                .write_all(chunk)
                .map_err(|source| SshError::RemoteIo {
                    action: format!("uploading to {part}"),
                    source,
                })?;
            sent += chunk.len() as u64;
            progress(sent);
        }
        Ok(())
    }

    /// Closes the command's stdin and waits for it to succeed.
    fn finish(&self, mut channel: OwnedChannel<'_>, cmd: &str) -> Result<(), SshError> {
        let _busy = self.lock();
        let _ = channel.send_eof();
        let Output {
            status,
            stdout,
            mut stderr,
        } = self.collect(&mut channel, cmd)?;
        if status != 0 {
            // scp reports errors on stdout after a \x01 or \x02 byte.
            stderr.extend(stdout.iter().filter(|b| **b >= b' ' || **b == b'\n'));
            return Err(SshError::RemoteCommand {
                cmd: cmd.to_string(),
                status,
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            });
        }
        Ok(())
    }
}

/// Quotes for a POSIX shell (shlex): a word as it is when the shell
/// would take it literally, else in quotes.
pub fn quote(s: &str) -> String {
    match shlex::try_quote(s) {
        Ok(q) => q.into_owned(),
        // Only a NUL byte is refused, and no shell word can hold one (nor
        // can a command-line argument); quote it anyway, it will fail there.
        Err(_) => format!("'{}'", s.replace('\'', r"'\''")),
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_survive_the_shell() {
        for s in [
            "/tmp/a b",
            "it's",
            "",
            "$(reboot)",
            "a\"b`c`\\",
            "plain-word_1.2",
            "x\ny",
        ] {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {}", quote(s))])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s, "{}", quote(s));
        }
        assert_eq!(quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(quote(""), "''");
    }
}
