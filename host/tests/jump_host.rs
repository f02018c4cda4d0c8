//! Boards behind a jump host (issue #14): `-J` and `ProxyJump`, with a
//! real OpenSSH server as the jump host and Debian's dropbear as the
//! board (both from `scripts/local-sshd.sh up --dropbear`, on 127.0.0.1
//! ports of their own; the board is this machine, logged in as
//! whosent-test with `--sudo`).
//!
//! The oracles are independent of whosent: the receiver's own
//! `si_pid` for the sender, and the kernel's socket table for the
//! route. While the capture runs, whosent-deploy must hold a TCP
//! connection to the jump host's port and none to the board's, and the
//! board's must have one from an sshd process: the jump host's.
//!
//! It needs root (the script installs the servers and creates the
//! user) and the real kernel; without them the tests print why and
//! pass, unless `CI=true`, where they fail.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
/// Long enough for the first build of the agent (cached afterwards).
const T: Duration = Duration::from_secs(300);

struct Servers {
    /// OpenSSH, the jump host.
    jump_port: u16,
    /// dropbear, the board.
    board_port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
    dir: PathBuf,
}

static SERVERS: OnceLock<Result<Servers, String>> = OnceLock::new();
static STATE_DIR: OnceLock<PathBuf> = OnceLock::new();

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-sshd.sh")
}

fn servers(test: &str) -> Option<&'static Servers> {
    if !real_kernel(test) {
        return None;
    }
    match SERVERS.get_or_init(start) {
        Ok(s) => Some(s),
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: CI=true and the local servers are unavailable: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

const STATE_PREFIX: &str = "/tmp/whosent-jump-test-";

/// The `--watch-pid` watcher stops the servers of a test binary that
/// was killed, but leaves its state dir: remove those of processes
/// that are gone.
fn remove_stale_state_dirs() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Some(pid) = path
            .to_str()
            .and_then(|p| p.strip_prefix(STATE_PREFIX))
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn start() -> Result<Servers, String> {
    remove_stale_state_dirs();
    let dir = PathBuf::from(format!("{STATE_PREFIX}{}", std::process::id()));
    STATE_DIR.set(dir.clone()).expect("started once");
    // SAFETY: registering a plain extern "C" fn.
    unsafe { libc::atexit(stop) };
    let out = Command::new("bash")
        .arg(script())
        .args(["up", "--dropbear", "--dir"])
        .arg(&dir)
        .args(["--watch-pid", &std::process::id().to_string()])
        .output()
        .map_err(|e| format!("cannot run local-sshd.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "local-sshd.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let vars = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |name: &str| -> Result<String, String> {
        vars.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
            .ok_or_else(|| format!("local-sshd.sh printed no {name}"))
    };
    let port = |name: &str| get(name)?.parse::<u16>().map_err(|e| e.to_string());
    Ok(Servers {
        jump_port: port("SSHD_PORT")?,
        board_port: port("SSHD_DROPBEAR_PORT")?,
        key: get("SSHD_KEY")?.into(),
        known_hosts: get("SSHD_KNOWN_HOSTS")?.into(),
        dir,
    })
}

extern "C" fn stop() {
    if let Some(dir) = STATE_DIR.get() {
        let _ = Command::new("bash")
            .arg(script())
            .args(["down", "--dir"])
            .arg(dir)
            .output();
        let _ = fs::remove_dir_all(dir);
    }
}

impl Servers {
    /// The known_hosts lines of the server on `port`.
    fn keys_of(&self, port: u16) -> String {
        let all = fs::read_to_string(&self.known_hosts).unwrap();
        let prefix = format!("[127.0.0.1]:{port} ");
        all.lines()
            .filter(|l| l.starts_with(&prefix))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// A known_hosts file of its own for a test, with `text`.
    fn known_hosts_file(&self, tag: &str, text: &str) -> PathBuf {
        let p = self.dir.join(format!("known_hosts-{tag}"));
        fs::write(&p, text).unwrap();
        p
    }

    /// An ssh config naming the jump host `gw` (its key as an
    /// IdentityFile: `-i` is the board's, as in ssh) and the board
    /// `board`, reached through `ProxyJump gw`.
    fn ssh_config(&self) -> PathBuf {
        let p = self.dir.join("ssh_config");
        let text = format!(
            "Host gw\n    HostName 127.0.0.1\n    Port {}\n    User whosent-test\n    IdentityFile {}\n\n\
             Host board\n    HostName 127.0.0.1\n    Port {}\n    User whosent-test\n    ProxyJump gw\n",
            self.jump_port,
            self.key.display(),
            self.board_port
        );
        fs::write(&p, text).unwrap();
        p
    }

    fn deploy(&self, known_hosts: &Path) -> Command {
        let mut c = Command::new(DEPLOY);
        c.arg("-F")
            .arg(self.ssh_config())
            .arg("--known-hosts")
            .arg(known_hosts)
            .arg("-i")
            .arg(&self.key)
            .arg("--sudo");
        c
    }
}

/// The TCP connections (local port, remote port, socket inode) of
/// /proc/net/tcp.
fn tcp_sockets() -> Vec<(u16, u16, u64)> {
    let text = fs::read_to_string("/proc/net/tcp").unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = |a: &str| u16::from_str_radix(a.rsplit(':').next()?, 16).ok();
            Some((port(f.get(1)?)?, port(f.get(2)?)?, f.get(9)?.parse().ok()?))
        })
        .collect()
}

/// The socket inodes process `pid` holds.
fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let l = fs::read_link(e.path()).ok()?;
            let s = l.to_str()?;
            s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The pids whose comm is `name`.
fn pids_named(name: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .collect()
}

/// A live capture of one kill, with `route` (`-J gw --host ...`, or
/// the config's `board`): the route is checked in the socket table and
/// the sender against the receiver's si_pid.
fn live_run_through_the_jump_host(s: &Servers, route: &[String]) {
    let (mut r, rpid) = {
        let mut r = Proc::spawn(Command::new(sibling(DEPLOY, "test_receiver")).arg("10"));
        let pid = num(&r.until(T, |l| l.starts_with("ready")), "pid") as i32;
        wait_comm(pid, "test_receiver");
        (r, pid)
    };
    let p = rpid.to_string();
    let mut cmd = s.deploy(&s.known_hosts);
    cmd.args(route)
        .args(["--json", "--sig", "USR1", "--pid", &p, "--count", "1"]);
    let mut d = Proc::spawn(&mut cmd);
    d.until(T, |l| l.contains(r#""type":"ready""#));

    // The route, from the kernel's socket table.
    let socks = tcp_sockets();
    let ours = socket_inodes(d.pid());
    let to = |port: u16| -> Vec<u64> {
        socks
            .iter()
            .filter(|(_, rem, _)| *rem == port)
            .map(|s| s.2)
            .collect()
    };
    assert!(
        to(s.jump_port).iter().any(|i| ours.contains(i)),
        "whosent-deploy holds no connection to the jump host's port {}",
        s.jump_port
    );
    assert!(
        !to(s.board_port).iter().any(|i| ours.contains(i)),
        "whosent-deploy connected to the board's port {} directly",
        s.board_port
    );
    let sshd_socks: Vec<u64> = pids_named("sshd")
        .into_iter()
        .chain(pids_named("sshd-session"))
        .flat_map(socket_inodes)
        .collect();
    assert!(
        to(s.board_port).iter().any(|i| sshd_socks.contains(i)),
        "no sshd holds a connection to the board's port {}",
        s.board_port
    );

    let out = Command::new(sibling(DEPLOY, "test_sender"))
        .args(["kill", "10", &p])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sender = num(stdout.lines().last().unwrap(), "sender_pid") as i32;
    let got = r.until(T, |l| l.starts_with("got"));
    assert_eq!(num(&got, "si_pid") as i32, sender, "the receiver's view");
    let rec = d.until(T, |l| l.contains(r#""type":"signal""#));
    assert!(
        rec.contains(&format!(r#""sender":{{"pid":{sender},"#)),
        "{rec}"
    );
    assert_eq!(d.wait(T), 0);
}

#[test]
fn a_live_run_through_an_openssh_jump_host_reports_the_sender() {
    let Some(s) = servers("jump -J") else { return };
    let board = format!("whosent-test@127.0.0.1:{}", s.board_port);
    live_run_through_the_jump_host(s, &["-J".into(), "gw".into(), "--host".into(), board]);
}

#[test]
fn proxy_jump_in_the_ssh_config_is_followed() {
    let Some(s) = servers("jump ProxyJump") else {
        return;
    };
    live_run_through_the_jump_host(s, &["--host".into(), "board".into()]);
}

/// One connection attempt that must fail before anything reaches the
/// board; returns its one stderr line. Signal 50 (RTMIN+16), which no
/// other test sends, for the runs that do connect.
fn refused(s: &Servers, known_hosts: &Path, extra: &[&str]) -> String {
    let out: Output = s
        .deploy(known_hosts)
        .args(["--host", "board", "--sig", "50", "--duration", "1"])
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn an_unknown_jump_host_key_is_refused_and_accept_new_records_it() {
    let Some(s) = servers("jump unknown key") else {
        return;
    };
    // The board's key is known, the jump host's is not.
    let kh = s.known_hosts_file("unknown-jump", &s.keys_of(s.board_port));
    let err = refused(s, &kh, &[]);
    assert!(
        err.contains("jump host gw: the authenticity of host")
            && err.contains(&format!("[127.0.0.1]:{}", s.jump_port)),
        "{err}"
    );
    assert!(err.contains("--accept-new-host-key"), "{err}");
    // The jump host's key known, the board's not: the second hop is
    // checked too, under the board's own name and port.
    let kh = s.known_hosts_file("unknown-board", &s.keys_of(s.jump_port));
    let err = refused(s, &kh, &[]);
    assert!(!err.contains("jump host gw:"), "{err}");
    assert!(
        err.contains(&format!(
            "the authenticity of host '[127.0.0.1]:{}'",
            s.board_port
        )),
        "{err}"
    );
    // With --accept-new-host-key both are recorded, as OpenSSH's
    // accept-new does, and the next strict run connects.
    let kh = s.known_hosts_file("accept-new", "");
    let out = s
        .deploy(&kh)
        .args([
            "--host",
            "board",
            "--accept-new-host-key",
            "--sig",
            "50",
            "--duration",
            "0.5",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = fs::read_to_string(&kh).unwrap();
    for port in [s.jump_port, s.board_port] {
        assert!(
            recorded.contains(&format!("[127.0.0.1]:{port} ")),
            "{port} not recorded: {recorded}"
        );
    }
    let out = s
        .deploy(&kh)
        .args(["--host", "board", "--sig", "50", "--duration", "0.5"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_changed_jump_host_key_is_refused_even_with_accept_new() {
    let Some(s) = servers("jump changed key") else {
        return;
    };
    // The jump host's port recorded with the board's keys: a different
    // key than the one it presents.
    let wrong = s.keys_of(s.board_port).replace(
        &format!("[127.0.0.1]:{} ", s.board_port),
        &format!("[127.0.0.1]:{} ", s.jump_port),
    );
    let kh = s.known_hosts_file("changed", &format!("{wrong}{}", s.keys_of(s.board_port)));
    for extra in [&[][..], &["--accept-new-host-key"]] {
        let err = refused(s, &kh, extra);
        assert!(
            err.contains("jump host gw: REMOTE HOST IDENTIFICATION HAS CHANGED"),
            "{extra:?}: {err}"
        );
    }
    assert_eq!(
        fs::read_to_string(&kh).unwrap(),
        format!("{wrong}{}", s.keys_of(s.board_port)),
        "known_hosts must not change"
    );
}
