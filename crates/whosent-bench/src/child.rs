//! Child processes measured the way the kernel accounts them: reaped
//! with `wait4`, whose `rusage` holds the child's CPU time (user+sys,
//! including its own waited-for children, such as trace-cmd's per-CPU
//! recorders) and its peak RSS (`ru_maxrss`, the VmHWM of the largest
//! process of the tree).
//!
//! A `Proc` that is dropped unreaped is killed and reaped, so an error
//! in the harness never leaves a tracer running.

use std::fs;
use std::io;
use std::process::{ChildStdin, ChildStdout, Command};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default)]
pub struct Exit {
    /// Raw wait status.
    pub status: i32,
    pub user: Duration,
    pub sys: Duration,
    pub maxrss_kb: u64,
    /// From spawn to reap.
    pub wall: Duration,
}

impl Exit {
    pub fn cpu(&self) -> Duration {
        self.user + self.sys
    }

    pub fn code(&self) -> Option<i32> {
        libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status))
    }

    pub fn describe(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exit {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            format!("killed by signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("status {:#x}", self.status)
        }
    }
}

pub struct Proc {
    pub pid: i32,
    pub started: Instant,
    exit: Option<Exit>,
}

pub struct Pipes {
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
}

fn tv(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> io::Result<(Proc, Pipes)> {
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
        let pipes = Pipes {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
        };
        // std's Child neither waits nor kills on drop; wait4 below reaps.
        let pid = child.id() as i32;
        crate::cleanup::note_pid(name, pid);
        Ok((
            Proc {
                pid,
                started,
                exit: None,
            },
            pipes,
        ))
    }

    pub fn signal(&self, sig: i32) {
        if self.exit.is_none() {
            // SAFETY: kill(2) on our own unreaped child: the pid cannot
            // have been reused while we have not waited for it.
            unsafe { libc::kill(self.pid, sig) };
        }
    }

    fn wait4(&mut self, flags: i32) -> Option<Exit> {
        if let Some(e) = self.exit {
            return Some(e);
        }
        let mut status = 0;
        // SAFETY: zeroed rusage is a valid out-parameter.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: valid pointers to locals.
            let r = unsafe { libc::wait4(self.pid, &mut status, flags, &mut ru) };
            if r == self.pid {
                let e = Exit {
                    status,
                    user: tv(ru.ru_utime),
                    sys: tv(ru.ru_stime),
                    maxrss_kb: ru.ru_maxrss as u64,
                    wall: self.started.elapsed(),
                };
                self.exit = Some(e);
                return Some(e);
            }
            if r == 0 {
                return None;
            }
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // ECHILD: somebody else reaped it; report an empty exit.
            let e = Exit {
                status: -1,
                wall: self.started.elapsed(),
                ..Exit::default()
            };
            self.exit = Some(e);
            return Some(e);
        }
    }

    pub fn try_wait(&mut self) -> Option<Exit> {
        self.wait4(libc::WNOHANG)
    }

    pub fn wait(&mut self) -> Exit {
        self.wait4(0).unwrap_or_default()
    }

    pub fn wait_timeout(&mut self, d: Duration) -> Option<Exit> {
        let end = Instant::now() + d;
        loop {
            if let Some(e) = self.try_wait() {
                return Some(e);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `sig`, waits up to `grace`, then SIGKILL.
    pub fn stop(&mut self, sig: i32, grace: Duration) -> (Exit, bool) {
        self.signal(sig);
        if let Some(e) = self.wait_timeout(grace) {
            return (e, false);
        }
        self.signal(libc::SIGKILL);
        (self.wait(), true)
    }

    pub fn running(&mut self) -> bool {
        self.try_wait().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.signal(libc::SIGKILL);
            self.wait();
        }
    }
}

/// The sum of VmHWM over `pid` and its descendants, in KiB: what a
/// multi-process tool (trace-cmd's recorders) holds at its peak, which
/// `ru_maxrss` (one process) understates.
pub fn tree_hwm_kb(pid: i32) -> u64 {
    tree_pids(pid).iter().filter_map(|p| hwm_kb(*p)).sum()
}

/// `pid` and its descendants.
pub fn tree_pids(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    let table = ppid_table();
    while i < all.len() {
        let p = all[i];
        all.extend(table.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    all
}

pub fn hwm_kb(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

fn ppid_table() -> Vec<(i32, i32)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            // The comm field may hold spaces and parentheses: parse after the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}
