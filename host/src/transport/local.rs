//! This machine as a transport, for `--host local`: commands run under
//! `sh -c`, files are written in place, and a stream's command gets a
//! pipe for stdin that is closed to stop it, exactly as a dropped SSH
//! session would.

use super::{Flow, Output, SshError, Transport, UploadMethod};
use crate::ssh::STOP_GRACE;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

pub struct Local;

fn io_err(action: String) -> impl FnOnce(io::Error) -> SshError {
    move |source| SshError::RemoteIo { action, source }
}

/// The shell's convention: 128 + n for a command killed by signal n.
fn code(s: ExitStatus) -> i32 {
    s.code()
        .or_else(|| s.signal().map(|n| 128 + n))
        .unwrap_or(-1)
}

/// A held command on this machine: dropping it closes its stdin, as
/// this process exiting (however it exits) does.
pub struct HeldChild(Child);

impl super::Hold for HeldChild {}

impl Drop for HeldChild {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        // Reaped if it is done; else it ends on its own, reparented.
        let _ = self.0.try_wait();
    }
}

impl Transport for Local {
    fn hold(&self, cmd: &str) -> Result<(Output, Box<dyn super::Hold + '_>), SshError> {
        use std::io::BufRead;
        let mut child = Command::new("sh")
            .args(["-c", cmd])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(format!("running `{cmd}`")))?;
        let mut out = io::BufReader::new(child.stdout.take().expect("piped"));
        let mut stdout = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = out
                .read_until(b'\n', &mut line)
                .map_err(io_err(format!("reading the output of `{cmd}`")))?;
            if n == 0 || line == crate::ssh::hold::HELD {
                break;
            }
            stdout.extend_from_slice(&line);
        }
        if line != crate::ssh::hold::HELD {
            // It exited without waiting: all of its output, and its status.
            let mut stderr = Vec::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_end(&mut stderr);
            }
            let status = child.wait().map(code).unwrap_or(-1);
            return Ok((
                Output {
                    status,
                    stdout,
                    stderr,
                },
                Box::new(()),
            ));
        }
        let out = Output {
            status: 0,
            stdout,
            stderr: Vec::new(),
        };
        Ok((out, Box::new(HeldChild(child))))
    }

    fn run(&self, cmd: &str) -> Result<Output, SshError> {
        let out = Command::new("sh")
            .args(["-c", cmd])
            .stdin(Stdio::null())
            .output()
            .map_err(io_err(format!("running `{cmd}`")))?;
        Ok(Output {
            status: code(out.status),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn upload(
        &self,
        data: &[u8],
        path: &str,
        mode: i32,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<UploadMethod, SshError> {
        // As on a board: a part file renamed over the path, so that a
        // running program is replaced, not rewritten (ETXTBSY).
        let part = format!("{path}.whosent-part");
        let write = || -> io::Result<()> {
            std::fs::write(&part, data)?;
            std::fs::set_permissions(&part, std::fs::Permissions::from_mode(mode as u32 & 0o7777))?;
            std::fs::rename(&part, path)
        };
        write().map_err(io_err(format!("writing {path}")))?;
        progress(data.len() as u64, data.len() as u64);
        Ok(UploadMethod::Copy)
    }

    fn stream(
        &self,
        cmd: &str,
        on_line: &mut dyn FnMut(&[u8]) -> Flow,
        on_stderr: &mut dyn FnMut(&[u8]),
        stop: &AtomicBool,
    ) -> Result<i32, SshError> {
        let mut lines = crate::ssh::lines::Lines::default();
        let status = self.stream_bytes(cmd, &mut |d| lines.feed(d, on_line), on_stderr, stop);
        lines.finish(on_line);
        status
    }

    fn stream_bytes(
        &self,
        cmd: &str,
        on_data: &mut dyn FnMut(&[u8]) -> Flow,
        on_stderr: &mut dyn FnMut(&[u8]),
        stop: &AtomicBool,
    ) -> Result<i32, SshError> {
        let mut child = Command::new("sh")
            .args(["-c", cmd])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(format!("starting `{cmd}`")))?;
        let status = pump(&mut child, cmd, on_data, on_stderr, stop);
        if status.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }
}

/// Reads both pipes as data comes, stdout in chunks; on a stop closes
/// stdin and gives the command [`STOP_GRACE`] to exit. Once `on_data`
/// says stop, nothing more is delivered (as over SSH).
///
/// stdout is read by a thread of its own into an unbounded queue: the
/// agent's recorder writes as fast as the kernel fills its buffers, and
/// a storm's decoding on this side (0.4 M events/s with lineage into
/// JSON, docs/benchmarks.md) is slower than a local storm (up to 450k/s).
/// Read in the decoding loop, a full pipe would stall the agent, fill
/// its spool and make the kernel overwrite; queued here, the output lags
/// (at about 55 bytes per event) and nothing is lost.
fn pump(
    child: &mut Child,
    cmd: &str,
    on_data: &mut dyn FnMut(&[u8]) -> Flow,
    on_stderr: &mut dyn FnMut(&[u8]),
    stop: &AtomicBool,
) -> Result<i32, SshError> {
    let mut stdin = child.stdin.take();
    let chunks = child.stdout.take().map(read_to_queue);
    let mut err = child.stderr.take();
    let mut buf = vec![0u8; 64 * 1024];
    let mut deliver = true;
    let mut out_open = chunks.is_some();
    let mut stopping: Option<Instant> = None;
    while out_open || err.is_some() {
        if stopping.is_none() && (stop.load(Ordering::Relaxed) || !deliver) {
            stopping = Some(Instant::now());
            drop(stdin.take());
        }
        if stopping.is_some_and(|s| s.elapsed() > STOP_GRACE) {
            return Err(SshError::NoExit {
                cmd: cmd.to_string(),
                waited: STOP_GRACE,
            });
        }
        if let Some(rx) = chunks.as_ref().filter(|_| out_open) {
            // Wait for stdout a little, then take all that is queued.
            let wait = Duration::from_millis(if err.is_some() { 10 } else { 100 });
            let mut next = rx.recv_timeout(wait).map_err(|e| match e {
                RecvTimeoutError::Timeout => TryRecvError::Empty,
                RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
            });
            loop {
                match next {
                    Ok(Ok(data)) => {
                        if deliver && on_data(&data) == Flow::Stop {
                            deliver = false;
                        }
                    }
                    Ok(Err(e)) => return Err(io_err(format!("reading the output of `{cmd}`"))(e)),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        out_open = false;
                        break;
                    }
                }
                next = rx.try_recv();
            }
        }
        if let Some(e) = err.as_mut() {
            let mut p = libc::pollfd {
                fd: e.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; stdout's wait above paces the loop.
            let timeout = if out_open { 0 } else { 100 };
            if unsafe { libc::poll(&mut p, 1, timeout) } > 0 {
                match e
                    .read(&mut buf)
                    .map_err(io_err(format!("reading the errors of `{cmd}`")))?
                {
                    0 => err = None,
                    n => on_stderr(&buf[..n]),
                }
            }
        }
    }
    drop(stdin);
    let st = child
        .wait()
        .map_err(io_err(format!("waiting for `{cmd}`")))?;
    Ok(code(st))
}

type Chunk = io::Result<Vec<u8>>;

/// Reads `out` to its end on a thread of its own; the thread ends with
/// the pipe (the command exited or was killed).
fn read_to_queue(mut out: ChildStdout) -> Receiver<Chunk> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || loop {
        let mut b = vec![0u8; 64 * 1024];
        match out.read(&mut b) {
            Ok(0) => return,
            Ok(n) => {
                b.truncate(n);
                if tx.send(Ok(b)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_uploads_and_streams_on_this_machine() {
        let dir = std::env::temp_dir().join(format!("whosent-local-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x").display().to_string();
        Local
            .upload(b"echo hi; echo oops >&2; exit 3", &f, 0o755, &mut |_, _| {})
            .unwrap();
        let out = Local.run(&format!("sh {f}")).unwrap();
        assert_eq!(
            (out.status, &out.stdout[..], &out.stderr[..]),
            (3, &b"hi\n"[..], &b"oops\n"[..])
        );
        let (mut lines, mut errs) = (Vec::new(), Vec::new());
        let never = AtomicBool::new(false);
        let st = Local
            .stream(
                "echo a; echo b >&2; printf c",
                &mut |l| {
                    lines.push(l.to_vec());
                    Flow::Continue
                },
                &mut |e| errs.extend_from_slice(e),
                &never,
            )
            .unwrap();
        assert_eq!(
            (st, lines, errs),
            (0, vec![b"a".to_vec(), b"c".to_vec()], b"b\n".to_vec())
        );
        // A stop closes stdin: `cat` then ends.
        let stop = AtomicBool::new(true);
        let st = Local
            .stream("cat; exit 4", &mut |_| Flow::Continue, &mut |_| {}, &stop)
            .unwrap();
        assert_eq!(st, 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
