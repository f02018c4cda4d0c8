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
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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

impl Transport for Local {
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

/// Reads both pipes as data comes (poll), stdout in chunks; on a stop
/// closes stdin and gives the command [`STOP_GRACE`] to exit. Once
/// `on_data` says stop, nothing more is delivered (as over SSH).
fn pump(
    child: &mut Child,
    cmd: &str,
    on_data: &mut dyn FnMut(&[u8]) -> Flow,
    on_stderr: &mut dyn FnMut(&[u8]),
    stop: &AtomicBool,
) -> Result<i32, SshError> {
    let mut stdin = child.stdin.take();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let mut buf = vec![0u8; 64 * 1024];
    let mut deliver = true;
    let mut stopping: Option<Instant> = None;
    while out.is_some() || err.is_some() {
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
        let fds: Vec<i32> = [
            out.as_ref().map(|o| o.as_raw_fd()),
            err.as_ref().map(|e| e.as_raw_fd()),
        ]
        .into_iter()
        .map(|fd| fd.unwrap_or(-1))
        .collect();
        let mut pfd: Vec<libc::pollfd> = fds
            .iter()
            .map(|&fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: two pollfds (negative fds are ignored by poll).
        unsafe { libc::poll(pfd.as_mut_ptr(), 2, 100) };
        if pfd[0].revents != 0 {
            let n = out.as_mut().map_or(Ok(0), |o| o.read(&mut buf));
            match n.map_err(io_err(format!("reading the output of `{cmd}`")))? {
                0 => out = None,
                n => {
                    if deliver && on_data(&buf[..n]) == Flow::Stop {
                        deliver = false;
                    }
                }
            }
        }
        if pfd[1].revents != 0 {
            let n = err.as_mut().map_or(Ok(0), |e| e.read(&mut buf));
            match n.map_err(io_err(format!("reading the errors of `{cmd}`")))? {
                0 => err = None,
                n => on_stderr(&buf[..n]),
            }
        }
    }
    drop(stdin);
    let st = child
        .wait()
        .map_err(io_err(format!("waiting for `{cmd}`")))?;
    Ok(code(st))
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
