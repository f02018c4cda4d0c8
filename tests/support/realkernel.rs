//! Shared by the tests that touch the real kernel (included with
//! `#[path]` from each crate's tests): finding the workspace's built
//! programs, the root/tracefs gate, and running the agent and the test
//! programs while reading their output line by line.
#![allow(dead_code)] // reason: each test crate uses a different part

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A program built in this workspace's target dir, next to `anchor`
/// (a `CARGO_BIN_EXE_*` path of the crate under test).
pub fn sibling(anchor: &str, name: &str) -> PathBuf {
    let p = PathBuf::from(anchor).with_file_name(name);
    assert!(
        p.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`), as scripts/test.sh does",
        p.display()
    );
    p
}

/// True when this test can use the real kernel. In CI a missing piece
/// fails the test; elsewhere the test is skipped with a printed reason.
pub fn real_kernel(test: &str) -> bool {
    let why = if unsafe { libc::geteuid() } != 0 {
        Some("not root")
    } else if !std::path::Path::new("/sys/kernel/tracing/events/signal/signal_generate").exists() {
        Some("tracefs is not mounted at /sys/kernel/tracing (mount -t tracefs nodev /sys/kernel/tracing)")
    } else {
        None
    };
    match why {
        None => true,
        Some(w) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: needs the real kernel, but {w}; CI must run it")
        }
        Some(w) => {
            eprintln!("SKIPPED {test}: {w}");
            false
        }
    }
}

/// A child whose stdout lines arrive on a channel.
pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("  [child stderr] {l}");
            }
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next line, or `None` at EOF or after `timeout`.
    pub fn line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => {
                self.seen.push(l.clone());
                Some(l)
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The first line satisfying `f`, within `timeout` overall.
    pub fn until(&mut self, timeout: Duration, f: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.line(left) {
                Some(l) if f(&l) => return l,
                Some(_) => {}
                None => break,
            }
        }
        panic!("no matching line within {timeout:?}; saw: {:#?}", self.seen)
    }

    /// All remaining lines until EOF.
    pub fn rest(&mut self, timeout: Duration) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(l) = self.line(timeout) {
            v.push(l);
        }
        v
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    pub fn write_stdin(&mut self, s: &str) {
        if let Some(i) = self.stdin.as_mut() {
            let _ = i.write_all(s.as_bytes());
        }
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Waits for exit; the exit code, or 128 + signal.
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                return st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
            }
            assert!(
                Instant::now() < end,
                "process {} did not exit within {timeout:?}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `key=value` field from a test program's line, e.g. `si_pid`.
pub fn field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

pub fn num(line: &str, key: &str) -> i64 {
    field(line, key)
        .unwrap_or_else(|| panic!("no {key}= in '{line}'"))
        .parse()
        .unwrap_or_else(|_| panic!("{key}= is not a number in '{line}'"))
}

/// Whether the ftrace instance still exists.
pub fn instance_exists(name: &str) -> bool {
    std::path::Path::new("/sys/kernel/tracing/instances")
        .join(name)
        .exists()
}

/// Polls `f` until it is true or `timeout` passes.
pub fn eventually(timeout: Duration, f: impl Fn() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `pid` has exec'd `comm`: a signal sent between fork and
/// exec would show the parent's comm as the target.
pub fn wait_comm(pid: i32, comm: &str) {
    let ok = eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
    });
    assert!(ok, "pid {pid} never became {comm}");
}

/// A cgroup v2 directory of a test's own, removed on drop (its members
/// must have exited by then). Its inode number is the id the kernel
/// gives its tasks (`bpf_get_current_cgroup_id`, kernfs: the id is the
/// inode number on 64-bit kernels).
pub struct Cgroup {
    pub dir: PathBuf,
    pub id: u64,
}

impl Cgroup {
    /// Under the first cgroup2 mount (`/sys/fs/cgroup` on most systems,
    /// `/sys/fs/cgroup/unified` beside v1 hierarchies). `None`, with the
    /// reason printed, where there is none; in CI that fails the test.
    pub fn new(test: &str) -> Option<Cgroup> {
        use std::os::unix::fs::MetadataExt;
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let Some(root) = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        }) else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: no cgroup2 file system is mounted; CI must run it");
            }
            eprintln!("SKIPPED {test}: no cgroup2 file system is mounted");
            return None;
        };
        let dir = root.join(format!("whosent-test-{}-{test}", std::process::id()));
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot create the cgroup {}: {e}", dir.display()));
        let id = std::fs::metadata(&dir).unwrap().ino();
        Some(Cgroup { dir, id })
    }

    /// A shell command that moves the shell into this cgroup and then
    /// runs `cmd` there.
    pub fn run_in(&self, cmd: &str) -> String {
        format!(
            "echo $$ > {}/cgroup.procs && exec {cmd}",
            self.dir.display()
        )
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // A member may still be a zombie for a moment after its parent
        // was told it exited.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "warning: could not remove the cgroup {}",
            self.dir.display()
        );
    }
}
