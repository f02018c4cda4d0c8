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
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ssh2::Channel;

use super::exec::{open_exec, pump, Flow, OwnedChannel, Timeout};
use super::session::Conn;
use super::SshError;

/// How the data got there, for the caller to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMethod {
    Scp,
    /// `cat > FILE` in an exec channel.
    Exec,
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
        let method = if !opts.force_exec && self.scp(data, &part, mode, &mut progress).is_ok() {
            UploadMethod::Scp
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
    /// and exits 127, which libssh2 notices either when starting SCP or
    /// (if the shell was slower than its first read) when the transfer
    /// ends.
    fn scp(
        &self,
        data: &[u8],
        part: &str,
        mode: i32,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), SshError> {
        let channel = {
            let _busy = self.lock();
            let _t = Timeout::set(&self.session, STALL_TIMEOUT);
            self.session
                .scp_send(Path::new(part), mode, data.len() as u64, None)
                .map_err(|source| SshError::Channel {
                    action: format!("starting scp to {part}"),
                    source,
                })?
        };
        let mut channel = OwnedChannel::new(&self.session, channel);
        // scp's protocol: the data, then one NUL byte.
        self.send(&mut channel, data, progress, part)?;
        self.send(&mut channel, b"\0", &mut |_| {}, part)?;
        self.finish(channel, &format!("scp -t {}", quote(part)))
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
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let never = AtomicBool::new(false);
        let status = pump(
            &self.session,
            self.fd,
            &mut channel,
            cmd,
            &mut |d| {
                stdout.extend_from_slice(d);
                Flow::Continue
            },
            &mut |d| stderr.extend_from_slice(d),
            &never,
        )?;
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

/// Quotes for a POSIX shell: `'...'`, with `'` as `'\''`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_survive_the_shell() {
        assert_eq!(quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
