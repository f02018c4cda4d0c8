//! A command kept running beside the others, its stdin open for as long
//! as the caller holds it: [`Conn::hold`]. When the connection ends,
//! however it ends (Ctrl-C drops it, `kill -9` of whosent-deploy closes
//! it), the SSH server closes that stdin, so a command that waits for
//! EOF learns that the host is gone and can clean up after it
//! (`deploy::dir`).

use std::time::{Duration, Instant};

use super::exec::{open_exec, read_some, wait_socket, NonBlocking, Output, OwnedChannel, Timeout};
use super::session::Conn;
use super::SshError;

/// The line a held command prints when it has said all it will say
/// before waiting.
pub const HELD: &[u8] = b".\n";

/// How long a held command may take to say it is waiting.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A held command; dropping it closes its stdin.
pub struct Held<'a> {
    conn: &'a Conn,
    channel: Option<OwnedChannel<'a>>,
}

impl Conn {
    /// Starts `cmd` and returns what it printed up to a line `.` (without
    /// it), leaving it running with its stdin open until the [`Held`]
    /// drops. If it exits first, the output is all of it, with its status
    /// (else the status is 0).
    pub fn hold(&self, cmd: &str) -> Result<(Output, Held<'_>), SshError> {
        let _busy = self.lock();
        self.hold_inner(cmd).map_err(|e| self.explain(e))
    }

    fn hold_inner(&self, cmd: &str) -> Result<(Output, Held<'_>), SshError> {
        let mut channel = open_exec(&self.session, cmd)?;
        let io_err = |source| SshError::RemoteIo {
            action: format!("reading the output of `{cmd}`"),
            source,
        };
        let _nb = NonBlocking::set(&self.session);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let mut progress = false;
            while let Some(n) = read_some(&mut *channel, &mut buf).map_err(io_err)? {
                stdout.extend_from_slice(&buf[..n]);
                progress = true;
            }
            while let Some(n) = read_some(&mut channel.stderr(), &mut buf).map_err(io_err)? {
                stderr.extend_from_slice(&buf[..n]);
                progress = true;
            }
            if let Some(at) = find_held(&stdout) {
                stdout.truncate(at);
                let out = Output {
                    status: 0,
                    stdout,
                    stderr,
                };
                let held = Held {
                    conn: self,
                    channel: Some(channel),
                };
                return Ok((out, held));
            }
            if channel.eof() {
                drop(_nb);
                let _t = Timeout::set(&self.session, Duration::from_secs(1));
                let _ = channel.wait_close();
                let status = channel.exit_status().unwrap_or(-1);
                let out = Output {
                    status,
                    stdout,
                    stderr,
                };
                return Ok((
                    out,
                    Held {
                        conn: self,
                        channel: None,
                    },
                ));
            }
            if Instant::now() > deadline {
                return Err(SshError::NoExit {
                    cmd: cmd.to_string(),
                    waited: ANSWER_TIMEOUT,
                });
            }
            self.keepalive();
            if !progress {
                wait_socket(&self.session, self.fd, 100);
            }
        }
    }
}

/// Where the `.` line starts, if it came.
fn find_held(out: &[u8]) -> Option<usize> {
    if out == HELD {
        return Some(0);
    }
    out.windows(HELD.len() + 1)
        .position(|w| w[0] == b'\n' && &w[1..] == HELD)
        .map(|i| i + 1)
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let Some(mut channel) = self.channel.take() else {
            return;
        };
        let _busy = self.conn.lock();
        // EOF is what the command waits for; the close follows (bounded
        // by the channel's own drop), and neither waits on a dead link.
        let _t = Timeout::set(&self.conn.session, Duration::from_millis(200));
        let _ = channel.send_eof();
        // Its close needs no waiting for: EOF was all it waited for.
        channel.abandon();
        drop(channel);
    }
}

#[cfg(test)]
mod tests {
    use super::find_held;

    #[test]
    fn the_held_line_is_a_whole_line() {
        assert_eq!(find_held(b"new /tmp/x\n.\n"), Some(11));
        assert_eq!(find_held(b".\n"), Some(0));
        assert_eq!(find_held(b"new /tmp/x.\n"), None);
        assert_eq!(find_held(b"new /tmp/x\n."), None);
    }
}
