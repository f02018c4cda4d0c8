//! Emulated boards and a local OpenSSH server for the deploy tests,
//! started once per test binary through the project's scripts and
//! stopped at exit (an `atexit` handler: libtest returns normally).
#![allow(dead_code)] // reason: each test crate uses a different part

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `KEY=value` lines as the scripts print them (values may be
/// `printf %q`-quoted; ours never contain spaces except SSH opts).
fn vars(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches('\'').replace("\\ ", " "),
            )
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Board {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
}

static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SSHD_DIR: OnceLock<PathBuf> = OnceLock::new();
static BOARDS: Mutex<Vec<(String, Result<Board, String>)>> = Mutex::new(Vec::new());

extern "C" fn stop_all() {
    let names = STARTED.lock().map(|v| v.clone()).unwrap_or_default();
    for n in names {
        let _ = Command::new(root().join("scripts/board.sh"))
            .args(["down", &n])
            .output();
    }
    if let Some(d) = SSHD_DIR.get() {
        let _ = Command::new(root().join("scripts/local-sshd.sh"))
            .args(["down", "--dir"])
            .arg(d)
            .output();
    }
}

fn register_teardown() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| unsafe {
        libc::atexit(stop_all);
    });
}

/// Boots (or reuses) a board `arch`/`variant` for this test binary.
pub fn board(arch: &str, variant: &str) -> Board {
    let name = format!("t{}-{arch}-{variant}", std::process::id());
    // One boot per name, even when tests ask at once.
    static BOOT: Mutex<()> = Mutex::new(());
    let _g = BOOT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, b)) = BOARDS.lock().unwrap().iter().find(|(n, _)| *n == name) {
        return b.clone().unwrap_or_else(|e| panic!("{e}"));
    }
    register_teardown();
    STARTED.lock().unwrap().push(name.clone());
    let out = Command::new(root().join("scripts/board.sh"))
        .args(["up", arch, "--variant", variant, "--name", &name])
        .output()
        .expect("scripts/board.sh runs");
    let b = if out.status.success() {
        let v = vars(&String::from_utf8_lossy(&out.stdout));
        Ok(Board {
            name: name.clone(),
            host: v["BOARD_HOST"].clone(),
            port: v["BOARD_PORT"].parse().unwrap(),
            user: v["BOARD_USER"].clone(),
            key: v["BOARD_KEY"].clone().into(),
            known_hosts: v["BOARD_KNOWN_HOSTS"].clone().into(),
        })
    } else {
        Err(format!(
            "board {name} did not come up: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    };
    BOARDS.lock().unwrap().push((name, b.clone()));
    b.unwrap_or_else(|e| panic!("{e}"))
}

/// The local OpenSSH server: a board with scp, sftp and sudo.
pub fn sshd() -> Board {
    static S: OnceLock<Result<Board, String>> = OnceLock::new();
    S.get_or_init(|| {
        register_teardown();
        let dir = std::env::temp_dir().join(format!("whosent-sshd-boards-{}", std::process::id()));
        SSHD_DIR.set(dir.clone()).ok();
        let out = Command::new(root().join("scripts/local-sshd.sh"))
            .args(["up", "--dir"])
            .arg(&dir)
            .arg("--watch-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("scripts/local-sshd.sh runs");
        if !out.status.success() {
            return Err(format!(
                "local sshd: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let v = vars(&String::from_utf8_lossy(&out.stdout));
        Ok(Board {
            name: "local-sshd".into(),
            host: "127.0.0.1".into(),
            port: v["SSHD_PORT"].parse().unwrap(),
            user: v["SSHD_USER"].clone(),
            key: v["SSHD_KEY"].clone().into(),
            known_hosts: v["SSHD_KNOWN_HOSTS"].clone().into(),
        })
    })
    .clone()
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Exclusive use of one board by one test, so that what a test finds
/// left on the board is its own doing.
pub fn exclusive(name: &str) -> std::sync::MutexGuard<'static, ()> {
    static LOCKS: Mutex<Vec<(String, &'static Mutex<()>)>> = Mutex::new(Vec::new());
    let m = {
        let mut l = LOCKS.lock().unwrap();
        match l.iter().find(|(n, _)| n == name) {
            Some((_, m)) => *m,
            None => {
                let m: &'static Mutex<()> = Box::leak(Box::new(Mutex::new(())));
                l.push((name.to_string(), m));
                m
            }
        }
    };
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Board {
    /// The connection flags for whosent-deploy.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--host".into(),
            format!("{}@{}", self.user, self.host),
            "-p".into(),
            self.port.to_string(),
            "-i".into(),
            self.key.display().to_string(),
            "--known-hosts".into(),
            self.known_hosts.display().to_string(),
        ]
    }

    /// Runs a command on the board with the system's own ssh client (an
    /// independent path from whosent's), as `user`.
    pub fn ssh_as(&self, user: &str, cmd: &str) -> (i32, String) {
        let out = Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-i")
            .arg(&self.key)
            .args(["-p", &self.port.to_string()])
            .arg(format!("{user}@{}", self.host))
            .arg(cmd)
            .output()
            .expect("ssh runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs `cmd` on the board with `input` on its stdin; its stdout as
    /// bytes (a tar stream, say).
    pub fn ssh_bytes(&self, cmd: &str, input: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .arg("-i")
            .arg(&self.key)
            .args(["-p", &self.port.to_string()])
            .arg(format!("{}@{}", self.user, self.host))
            .arg(cmd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("ssh runs");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ssh {cmd}: {:?}", out.status);
        out.stdout
    }

    /// Reboots the board: powered off and booted again from its image
    /// (qemu runs with -no-reboot), on the same SSH port and with the
    /// same host keys, so that this `Board` reaches it as before. What
    /// was in its RAM (the initramfs: /tmp) is gone.
    pub fn reboot(&self, arch: &str, variant: &str) {
        let sh = root().join("scripts/board.sh");
        let down = Command::new(&sh)
            .args(["down", &self.name])
            .output()
            .unwrap();
        assert!(
            down.status.success(),
            "{}",
            String::from_utf8_lossy(&down.stderr)
        );
        let up = Command::new(&sh)
            .args(["up", arch, "--variant", variant, "--name", &self.name])
            .args(["--port", &self.port.to_string()])
            .output()
            .unwrap();
        assert!(
            up.status.success(),
            "board {} did not come back: {}",
            self.name,
            String::from_utf8_lossy(&up.stderr)
        );
    }

    pub fn ssh(&self, cmd: &str) -> String {
        let (st, out) = self.ssh_as(&self.user, cmd);
        assert_eq!(st, 0, "ssh {cmd}: {out}");
        out
    }

    /// Starts a victim (`sleep 600`) on the board, detached from the SSH
    /// session, and waits until it has exec'd: before that its comm is
    /// the shell's, and a signal would name the wrong target.
    pub fn victim(&self) -> i64 {
        let pid: i64 = self
            .ssh("sleep 600 </dev/null >/dev/null 2>&1 & echo $!")
            .trim()
            .parse()
            .unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.ssh(&format!("cat /proc/{pid}/comm")).trim() != "sleep" {
            assert!(
                std::time::Instant::now() < end,
                "victim {pid} never became sleep"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        pid
    }

    /// Sends `sig` to `pid` from a short-lived shell on the board; returns
    /// that shell's pid as the board reports it.
    pub fn kill_from_shell(&self, sig: &str, pid: i64) -> i64 {
        self.ssh(&format!("sh -c 'kill -{sig} {pid}; echo $$'"))
            .trim()
            .parse()
            .unwrap()
    }

    /// What whosent may have left on the board: instances and files.
    pub fn leftovers(&self) -> String {
        self.ssh("ls /sys/kernel/tracing/instances 2>/dev/null | grep whosent; ls -d ${TMPDIR:-/tmp}/whosent* 2>/dev/null; true")
            .trim()
            .to_string()
    }
}
