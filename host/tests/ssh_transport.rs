//! The SSH transport against a real OpenSSH server on 127.0.0.1.
//!
//! The servers come from `scripts/local-sshd.sh up --dropbear`, started
//! once for this test binary in its own state dir
//! (`/tmp/whosent-sshd-test-PID`) on ports the script finds free:
//! OpenSSH (with a second port where `scp` is missing) and Debian's
//! dropbear 2022.83, the server most boards run, set up as a board
//! without `scp`. It is stopped twice over: an
//! `atexit` handler runs `local-sshd.sh down` and removes the dir when
//! the test binary exits (libtest returns from `main` or calls
//! `process::exit`, both run atexit handlers), and the script's
//! `--watch-pid` watcher stops it within a second if this process dies
//! any other way (a signal, an abort).
//!
//! It needs root (the script installs openssh-server and creates the
//! user whosent-test). Without root, or when the server cannot start,
//! the tests that need it print why and pass, unless `CI=true`, where
//! they fail. The tests of destinations, ssh_config and of connection
//! failures need no server.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use whosent_deploy::ssh::{
    self, Conn, ConnectOpts, Flow, HostKeyPolicy, SshError, Target, UploadMethod, UploadOpts,
};

// ---------------------------------------------------------------------
// The server

struct Server {
    port: u16,
    noscp_port: u16,
    dropbear_port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
    dir: PathBuf,
    user: String,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static STATE_DIR: OnceLock<PathBuf> = OnceLock::new();

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/local-sshd.sh")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The shared server, or `None` (after saying why) when it cannot run
/// here and this is not CI.
fn server() -> Option<&'static Server> {
    match SERVER.get_or_init(start_server) {
        Ok(s) => Some(s),
        Err(why) if in_ci() => panic!("CI=true and the local sshd is unavailable: {why}"),
        Err(why) => {
            // Once, and past libtest's capture of eprintln!, so that
            // the reason shows in a passing run.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "ssh_transport: skipping the tests that need a local sshd: {why}"
                );
            });
            None
        }
    }
}

macro_rules! need_server {
    () => {
        match server() {
            Some(s) => s,
            None => return,
        }
    };
}

fn start_server() -> Result<Server, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "these tests need root: local-sshd.sh installs openssh-server and creates a user"
                .into(),
        );
    }
    remove_stale_state_dirs();
    let dir = PathBuf::from(format!("{STATE_PREFIX}{}", std::process::id()));
    STATE_DIR.set(dir.clone()).expect("started once");
    // SAFETY: registering a plain extern "C" fn.
    unsafe { libc::atexit(stop_server) };
    let out = Command::new("bash")
        .arg(script())
        .args(["up", "--dropbear", "--dir"])
        .arg(&dir)
        .args(["--watch-pid", &std::process::id().to_string()])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
    if !out.status.success() {
        return Err(format!(
            "local-sshd.sh up failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let vars = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |name: &str| -> Result<String, String> {
        vars.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
            .ok_or_else(|| format!("local-sshd.sh printed no {name}: {vars}"))
    };
    let port = |name: &str| -> Result<u16, String> {
        get(name)?.parse().map_err(|e| format!("{name}: {e}"))
    };
    Ok(Server {
        port: port("SSHD_PORT")?,
        noscp_port: port("SSHD_NOSCP_PORT")?,
        dropbear_port: port("SSHD_DROPBEAR_PORT")?,
        key: get("SSHD_KEY")?.into(),
        known_hosts: get("SSHD_KNOWN_HOSTS")?.into(),
        dir: get("SSHD_DIR")?.into(),
        user: get("SSHD_USER")?,
    })
}

const STATE_PREFIX: &str = "/tmp/whosent-sshd-test-";

/// The watcher stops the server of a test binary that was killed, but
/// leaves its state dir; remove those of processes that are gone.
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

extern "C" fn stop_server() {
    if let Some(dir) = STATE_DIR.get() {
        let _ = Command::new("bash")
            .arg(script())
            .args(["down", "--dir"])
            .arg(dir)
            .output();
        let _ = fs::remove_dir_all(dir);
    }
}

// ---------------------------------------------------------------------
// Helpers

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("whosent-ssh-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn target(srv: &Server, port: u16, user: &str) -> Target {
    Target {
        host: "127.0.0.1".into(),
        port,
        user: user.into(),
        identity_files: vec![srv.key.clone()],
        alias: format!("{user}@127.0.0.1:{port}"),
        jump: None,
    }
}

fn opts(known_hosts: &Path, policy: HostKeyPolicy) -> ConnectOpts {
    ConnectOpts {
        known_hosts: known_hosts.to_path_buf(),
        policy,
        connect_timeout: Duration::from_secs(5),
        password: None,
        ..ConnectOpts::default()
    }
}

fn connect(srv: &Server) -> Conn {
    Conn::connect(
        &target(srv, srv.port, &srv.user),
        &opts(&srv.known_hosts, HostKeyPolicy::Strict),
    )
    .unwrap_or_else(|e| panic!("{e}\n  help: {}", e.help()))
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `SHA256:...` of a public key file, as ssh-keygen prints it.
fn keygen_fingerprint(pub_file: &Path) -> String {
    let out = sh("ssh-keygen", &["-lf", pub_file.to_str().unwrap()]);
    out.split_whitespace().nth(1).unwrap().to_string()
}

fn host_pub(srv: &Server, kind: &str) -> String {
    let p = srv.dir.join(format!("ssh_host_{kind}_key.pub"));
    let text = fs::read_to_string(p).unwrap();
    let mut f = text.split_whitespace();
    format!("{} {}", f.next().unwrap(), f.next().unwrap())
}

fn new_keypair(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    sh(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()],
    );
    key
}

fn remote_tmp(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("/tmp/whosent-upload-{tag}-{}-{n}", std::process::id())
}

/// 200 KiB that no chunk boundary leaves alike.
fn payload() -> Vec<u8> {
    (0..200 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

// ---------------------------------------------------------------------
// Commands

#[test]
fn a_connection_can_move_between_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Conn>();
    send_and_sync::<SshError>();
}

#[test]
fn connects_and_runs_id() {
    let srv = need_server!();
    let conn = connect(srv);
    let out = conn.run("id -u").unwrap();
    let expected = sh("id", &["-u", &srv.user]);
    assert_eq!(out.status, 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected.trim());
    assert!(out.stderr.is_empty());
    // Passwordless sudo, as the agent needs for tracefs.
    let out = conn.run("sudo -n id -u").unwrap();
    assert_eq!((out.status, out.stdout.as_slice()), (0, &b"0\n"[..]));
}

#[test]
fn root_logs_in_with_the_same_key() {
    let srv = need_server!();
    let conn = Conn::connect(
        &target(srv, srv.port, "root"),
        &opts(&srv.known_hosts, HostKeyPolicy::Strict),
    )
    .unwrap();
    assert_eq!(conn.run("id -u").unwrap().stdout, b"0\n");
}

#[test]
fn run_reports_status_and_stderr() {
    let srv = need_server!();
    let conn = connect(srv);
    let out = conn.run("echo out; echo err >&2; exit 3").unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    // Several commands on one connection.
    assert_eq!(conn.run("true").unwrap().status, 0);
}

#[test]
fn a_command_killed_by_a_signal_exits_128_plus_n() {
    let srv = need_server!();
    let conn = connect(srv);
    assert_eq!(conn.run("kill -TERM $$").unwrap().status, 128 + 15);
}

#[test]
fn run_copes_with_more_output_than_the_window() {
    let srv = need_server!();
    let conn = connect(srv);
    // 4 MiB on each stream at once: reading one stream to its end
    // before the other would deadlock.
    let out = conn
        .run("head -c 4194304 /dev/zero & head -c 4194304 /dev/zero >&2; wait")
        .unwrap();
    assert_eq!(
        (out.status, out.stdout.len(), out.stderr.len()),
        (0, 4 << 20, 4 << 20)
    );
}

// ---------------------------------------------------------------------
// Streams

/// Ticks every 200 ms until its stdin closes, then says so on stderr
/// and prints a last line, as the agent's final record.
const TICKER: &str = "(i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done) & t=$!; \
                      cat >/dev/null; kill $t; echo eof >&2; echo bye";

#[test]
fn stream_delivers_lines_as_they_arrive_and_stop_closes_stdin() {
    let srv = need_server!();
    let conn = connect(srv);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let mut lines: Vec<(Duration, String)> = Vec::new();
    let mut stderr = Vec::new();
    let status = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1500));
            stop.store(true, Ordering::Relaxed);
        });
        conn.stream(
            TICKER,
            &mut |l| {
                lines.push((start.elapsed(), String::from_utf8_lossy(l).into_owned()));
                Flow::Continue
            },
            &mut |e| stderr.extend_from_slice(e),
            &stop,
        )
    })
    .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(status, 0);
    // The remote saw EOF on stdin, and its last words still came.
    assert_eq!(stderr, b"eof\n");
    assert_eq!(lines.last().unwrap().1, "bye");
    let ticks: Vec<_> = lines
        .iter()
        .filter(|(_, l)| l.starts_with("tick"))
        .collect();
    assert!(ticks.len() >= 4, "{lines:?}");
    assert_eq!(ticks[0].1, "tick 0");
    // Incremental: the first tick came long before the stop, not in one
    // lump at the end.
    assert!(ticks[0].0 < Duration::from_millis(1000), "{lines:?}");
    assert!(
        ticks.last().unwrap().0 - ticks[0].0 >= Duration::from_millis(500),
        "{lines:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1500) + ssh::STOP_GRACE,
        "{elapsed:?}"
    );
}

#[test]
fn stream_stops_when_on_line_says_so() {
    let srv = need_server!();
    let conn = connect(srv);
    let stop = AtomicBool::new(false);
    let mut seen = 0;
    let mut stderr = Vec::new();
    let status = conn
        .stream(
            TICKER,
            &mut |_| {
                seen += 1;
                if seen == 3 {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            },
            &mut |e| stderr.extend_from_slice(e),
            &stop,
        )
        .unwrap();
    assert_eq!(seen, 3, "no line after Stop");
    assert_eq!(status, 0);
    assert_eq!(stderr, b"eof\n");
}

#[test]
fn stream_reports_a_command_that_ignores_eof() {
    let srv = need_server!();
    let conn = connect(srv);
    let stop = AtomicBool::new(true);
    let start = Instant::now();
    let err = conn
        .stream("exec sleep 6", &mut |_| Flow::Continue, &mut |_| {}, &stop)
        .unwrap_err();
    assert!(matches!(err, SshError::NoExit { .. }), "{err}");
    let elapsed = start.elapsed();
    // The grace period, then at most a second or two closing the channel
    // (the server only confirms once `sleep` exits, at 6 s).
    assert!(
        elapsed >= ssh::STOP_GRACE && elapsed < ssh::STOP_GRACE + Duration::from_millis(2500),
        "{elapsed:?}"
    );
    // The connection is still usable.
    assert_eq!(conn.run("echo ok").unwrap().stdout, b"ok\n");
}

#[test]
fn stream_hands_over_a_last_line_without_newline_and_the_status() {
    let srv = need_server!();
    let conn = connect(srv);
    let stop = AtomicBool::new(false);
    let mut lines = Vec::new();
    let status = conn
        .stream(
            "printf 'a\\n\\nb'; exit 4",
            &mut |l| {
                lines.push(l.to_vec());
                Flow::Continue
            },
            &mut |_| {},
            &stop,
        )
        .unwrap();
    assert_eq!(status, 4);
    assert_eq!(lines, vec![b"a".to_vec(), b"".to_vec(), b"b".to_vec()]);
}

// ---------------------------------------------------------------------
// Uploads

fn check_upload(conn: &Conn, force_exec: bool, expected: UploadMethod) {
    let data = payload();
    let path = remote_tmp(if force_exec { "exec" } else { "auto" });
    let mut calls = Vec::new();
    let mut progress = |sent, total| calls.push((sent, total));
    let method = conn
        .upload_with(
            &data,
            &path,
            0o750,
            UploadOpts {
                force_exec,
                progress: Some(&mut progress),
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n  help: {}", e.help()));
    let got = fs::read(&path);
    let mode = fs::metadata(&path).map(|m| m.permissions().mode() & 0o7777);
    let _ = fs::remove_file(&path);
    assert_eq!(method, expected);
    assert!(got.unwrap() == data, "content differs");
    assert_eq!(mode.unwrap(), 0o750);
    assert_eq!(calls.last(), Some(&(data.len() as u64, data.len() as u64)));
    assert!(calls.len() > 1, "progress comes per chunk");
    assert!(!Path::new(&format!("{path}.whosent-part")).exists());
}

#[test]
fn upload_uses_scp_where_there_is_scp() {
    let srv = need_server!();
    check_upload(&connect(srv), false, UploadMethod::Scp);
}

#[test]
fn upload_through_exec_when_forced() {
    let srv = need_server!();
    check_upload(&connect(srv), true, UploadMethod::Exec);
}

#[test]
fn upload_falls_back_to_exec_on_a_board_without_scp() {
    let srv = need_server!();
    let conn = Conn::connect(
        &target(srv, srv.noscp_port, &srv.user),
        &opts(&srv.known_hosts, HostKeyPolicy::Strict),
    )
    .unwrap();
    // The server really lacks scp, as dropbear boards do.
    let out = conn.run("scp -t /tmp/x").unwrap();
    assert_eq!(out.status, 127);
    assert!(String::from_utf8_lossy(&out.stderr).contains("scp: not found"));
    check_upload(&conn, false, UploadMethod::Exec);
    // Again on the same connection, which now goes straight to exec
    // (libssh2's SCP state may be stale after such a failure).
    check_upload(&conn, false, UploadMethod::Exec);
}

#[test]
fn upload_replaces_an_existing_file_and_its_mode() {
    let srv = need_server!();
    let conn = connect(srv);
    let path = remote_tmp("replace");
    conn.upload(b"old contents, longer", &path, 0o600).unwrap();
    conn.upload(b"new", &path, 0o755).unwrap();
    let got = fs::read(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    let _ = fs::remove_file(&path);
    assert_eq!((got.as_slice(), mode), (&b"new"[..], 0o755));
}

#[test]
fn upload_to_a_missing_directory_says_why() {
    let srv = need_server!();
    let conn = connect(srv);
    for force_exec in [false, true] {
        let err = conn
            .upload_with(
                b"x",
                "/nonexistent-whosent/dir/agent",
                0o755,
                UploadOpts {
                    force_exec,
                    progress: None,
                },
            )
            .unwrap_err();
        assert!(matches!(err, SshError::RemoteCommand { .. }), "{err}");
        assert!(err.to_string().contains("nonexistent-whosent"), "{err}");
    }
}

// ---------------------------------------------------------------------
// Host keys

#[test]
fn unknown_host_is_refused_with_its_fingerprint() {
    let srv = need_server!();
    let tmp = TempDir::new("unknown");
    let kh = tmp.path().join("known_hosts");
    let err = Conn::connect(
        &target(srv, srv.port, &srv.user),
        &opts(&kh, HostKeyPolicy::Strict),
    )
    .err()
    .expect("an unknown host must be refused");
    let SshError::UnknownHostKey {
        key_type,
        fingerprint,
        host,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(host, &format!("[127.0.0.1]:{}", srv.port));
    let kind = if key_type == "ssh-ed25519" {
        "ed25519"
    } else {
        "ecdsa"
    };
    let expected = keygen_fingerprint(&srv.dir.join(format!("ssh_host_{kind}_key.pub")));
    assert_eq!(fingerprint, &expected);
    assert!(err.to_string().contains(&expected), "{err}");
    assert!(
        err.help().contains("--accept-new-host-key"),
        "{}",
        err.help()
    );
    assert!(!kh.exists(), "strict mode writes nothing");
}

#[test]
fn accept_new_records_the_key_as_openssh_does() {
    let srv = need_server!();
    let tmp = TempDir::new("acceptnew");
    let ssh_dir = tmp.path().join("home/.ssh");
    let kh = ssh_dir.join("known_hosts");
    let t = target(srv, srv.port, &srv.user);
    Conn::connect(&t, &opts(&kh, HostKeyPolicy::AcceptNew)).unwrap();
    let text = fs::read_to_string(&kh).unwrap();
    assert!(
        text.starts_with(&format!("[127.0.0.1]:{} ", srv.port)),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1);
    assert_eq!(
        fs::metadata(&kh).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        fs::metadata(&ssh_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // OpenSSH finds it.
    sh(
        "ssh-keygen",
        &[
            "-F",
            &format!("[127.0.0.1]:{}", srv.port),
            "-f",
            kh.to_str().unwrap(),
        ],
    );
    // The next strict connection is accepted, and adds nothing.
    Conn::connect(&t, &opts(&kh, HostKeyPolicy::Strict)).unwrap();
    Conn::connect(&t, &opts(&kh, HostKeyPolicy::AcceptNew)).unwrap();
    assert_eq!(fs::read_to_string(&kh).unwrap(), text);
}

#[test]
fn a_changed_key_is_refused_under_every_policy() {
    let srv = need_server!();
    let tmp = TempDir::new("changed");
    let other = new_keypair(tmp.path(), "other");
    let other_pub = fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_pub: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    let kh = tmp.path().join("known_hosts");
    let name = format!("[127.0.0.1]:{}", srv.port);
    fs::write(
        &kh,
        format!(
            "# comment\nelsewhere {}\n{name} {}\n",
            host_pub(srv, "ed25519"),
            other_pub.join(" ")
        ),
    )
    .unwrap();
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let err = Conn::connect(&target(srv, srv.port, &srv.user), &opts(&kh, policy))
            .err()
            .expect("a changed key must be refused");
        assert!(matches!(err, SshError::HostKeyChanged { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
            "{msg}"
        );
        assert!(msg.contains(&format!("{}:3", kh.display())), "{msg}");
        assert!(
            err.help()
                .contains(&format!("ssh-keygen -R '{name}' -f {}", kh.display())),
            "{}",
            err.help()
        );
    }
    // The file is left alone.
    assert_eq!(fs::read_to_string(&kh).unwrap().lines().count(), 3);
}

#[test]
fn the_recorded_key_type_is_negotiated() {
    let srv = need_server!();
    let tmp = TempDir::new("keytype");
    let kh = tmp.path().join("known_hosts");
    for (kind, alg) in [("ecdsa", "ecdsa-sha2-nistp256"), ("ed25519", "ssh-ed25519")] {
        fs::write(
            &kh,
            format!("[127.0.0.1]:{} {}\n", srv.port, host_pub(srv, kind)),
        )
        .unwrap();
        let conn = Conn::connect(
            &target(srv, srv.port, &srv.user),
            &opts(&kh, HostKeyPolicy::Strict),
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(conn.host_key_algorithm().as_deref(), Some(alg));
    }
}

#[test]
fn hashed_known_hosts_entries_match() {
    let srv = need_server!();
    let tmp = TempDir::new("hashed");
    let kh = tmp.path().join("known_hosts");
    fs::copy(&srv.known_hosts, &kh).unwrap();
    sh("ssh-keygen", &["-q", "-H", "-f", kh.to_str().unwrap()]);
    let text = fs::read_to_string(&kh).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    Conn::connect(
        &target(srv, srv.port, &srv.user),
        &opts(&kh, HostKeyPolicy::Strict),
    )
    .unwrap();
}

#[test]
fn a_key_for_port_22_does_not_vouch_for_another_port() {
    let srv = need_server!();
    let tmp = TempDir::new("port22");
    let kh = tmp.path().join("known_hosts");
    fs::write(&kh, format!("127.0.0.1 {}\n", host_pub(srv, "ed25519"))).unwrap();
    let err = Conn::connect(
        &target(srv, srv.port, &srv.user),
        &opts(&kh, HostKeyPolicy::Strict),
    )
    .err()
    .unwrap();
    assert!(matches!(err, SshError::UnknownHostKey { .. }), "{err}");
}

/// Both of the server's host keys, so whichever it presents is covered.
fn both_host_keys(srv: &Server) -> [String; 2] {
    [host_pub(srv, "ed25519"), host_pub(srv, "ecdsa")]
}

#[test]
fn a_revoked_host_key_never_connects_even_with_accept_new() {
    let srv = need_server!();
    let tmp = TempDir::new("revoked");
    let kh = tmp.path().join("known_hosts");
    let name = format!("[127.0.0.1]:{}", srv.port);
    let [ed, ecdsa] = both_host_keys(srv);
    let revoked = format!("@revoked * {ed}\n@revoked [127.0.0.1]:* {ecdsa}\n");
    // Revoked and nothing else; and revoked although also recorded as
    // the host's key (the revocation wins, as in OpenSSH).
    for text in [
        revoked.clone(),
        format!("{name} {ed}\n{name} {ecdsa}\n{revoked}"),
    ] {
        fs::write(&kh, &text).unwrap();
        for policy in [HostKeyPolicy::AcceptNew, HostKeyPolicy::Strict] {
            let err = Conn::connect(&target(srv, srv.port, &srv.user), &opts(&kh, policy))
                .err()
                .unwrap_or_else(|| panic!("{policy:?} connected with a revoked key:\n{text}"));
            assert!(matches!(err, SshError::HostKeyRevoked { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("REVOKED HOST KEY DETECTED"), "{msg}");
            assert!(msg.contains(&name), "{msg}");
            assert_eq!(
                fs::read_to_string(&kh).unwrap(),
                text,
                "known_hosts changed"
            );
        }
    }
    // What the user sees, from the command line.
    fs::write(&kh, &revoked).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_whosent-deploy"))
        .args(["--host", &format!("{}@127.0.0.1:{}", srv.user, srv.port)])
        .arg("-i")
        .arg(&srv.key)
        .arg("--known-hosts")
        .arg(&kh)
        .args(["--accept-new-host-key", "--sig", "KILL", "--duration", "1"])
        .env("WHOSENT_PASSWORD", "")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("REVOKED HOST KEY DETECTED"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(fs::read_to_string(&kh).unwrap(), revoked);
}

#[test]
fn a_cert_authority_line_alone_is_refused_as_unsupported() {
    let srv = need_server!();
    let tmp = TempDir::new("ca");
    let ca = new_keypair(tmp.path(), "ca");
    let ca_pub = fs::read_to_string(ca.with_extension("pub")).unwrap();
    let kh = tmp.path().join("known_hosts");
    let text = format!("# a CA\n@cert-authority [127.0.0.1]:* {ca_pub}");
    fs::write(&kh, &text).unwrap();
    for policy in [HostKeyPolicy::AcceptNew, HostKeyPolicy::Strict] {
        let err = Conn::connect(&target(srv, srv.port, &srv.user), &opts(&kh, policy))
            .err()
            .unwrap_or_else(|| panic!("{policy:?} connected past a CA line"));
        assert!(
            matches!(err, SshError::HostCertificatesUnsupported { line: 2, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("does not support host certificates"),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&kh).unwrap(), text);
    }
    // With the host's plain key beside it, the plain key is used.
    let [ed, _] = both_host_keys(srv);
    fs::write(&kh, format!("{text}[127.0.0.1]:{} {ed}\n", srv.port)).unwrap();
    Conn::connect(
        &target(srv, srv.port, &srv.user),
        &opts(&kh, HostKeyPolicy::Strict),
    )
    .unwrap();
}

#[test]
fn wildcard_and_negated_host_patterns_match_as_in_openssh() {
    let srv = need_server!();
    let tmp = TempDir::new("patterns");
    let kh = tmp.path().join("known_hosts");
    let [ed, ecdsa] = both_host_keys(srv);
    let t = target(srv, srv.port, &srv.user);
    fs::write(
        &kh,
        format!("board,[127.0.0.?]:* {ed}\n[127.*]:* {ecdsa}\n"),
    )
    .unwrap();
    Conn::connect(&t, &opts(&kh, HostKeyPolicy::Strict)).unwrap();
    // A negated pattern takes the line away from the host, whatever
    // else on it matches.
    let text = format!("[127.0.0.?]:*,![127.0.0.1]:{} {ed}\n", srv.port);
    fs::write(&kh, &text).unwrap();
    let err = Conn::connect(&t, &opts(&kh, HostKeyPolicy::Strict))
        .err()
        .expect("a negated host must not match");
    assert!(matches!(err, SshError::UnknownHostKey { .. }), "{err}");
}

// ---------------------------------------------------------------------
// Authentication

#[test]
fn a_wrong_key_fails_with_what_was_tried() {
    let srv = need_server!();
    let tmp = TempDir::new("wrongkey");
    let key = new_keypair(tmp.path(), "id_wrong");
    let mut t = target(srv, srv.port, &srv.user);
    t.identity_files = vec![key.clone(), tmp.path().join("missing_key")];
    let err = Conn::connect(&t, &opts(&srv.known_hosts, HostKeyPolicy::Strict))
        .err()
        .expect("a wrong key must not log in");
    assert!(matches!(err, SshError::AuthFailed { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("key {}: rejected by the server", key.display())),
        "{msg}"
    );
    assert!(msg.contains("missing_key: no such file"), "{msg}");
    assert!(msg.contains("password: none given"), "{msg}");
    let help = err.help();
    assert!(
        help.contains("-i KEY") && help.contains("ssh-copy-id"),
        "{help}"
    );
    assert!(help.contains(&format!("-p {}", srv.port)), "{help}");
}

// ---------------------------------------------------------------------
// dropbear, as on a board

fn connect_dropbear(srv: &Server, known_hosts: &Path) -> Result<Conn, SshError> {
    Conn::connect(
        &target(srv, srv.dropbear_port, &srv.user),
        &opts(known_hosts, HostKeyPolicy::Strict),
    )
}

#[test]
fn dropbear_negotiates_the_recorded_key_type() {
    let srv = need_server!();
    let tmp = TempDir::new("dropbear-keytype");
    let kh = tmp.path().join("known_hosts");
    for (kind, alg) in [
        ("ed25519", "ssh-ed25519"),
        ("ecdsa", "ecdsa-sha2-nistp256"),
        ("rsa", "rsa-sha2-"),
    ] {
        let key =
            fs::read_to_string(srv.dir.join(format!("dropbear_{kind}_host_key.pub"))).unwrap();
        fs::write(&kh, format!("[127.0.0.1]:{} {}", srv.dropbear_port, key)).unwrap();
        let conn = connect_dropbear(srv, &kh).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let negotiated = conn.host_key_algorithm().unwrap();
        assert!(negotiated.starts_with(alg), "{kind}: {negotiated}");
    }
}

#[test]
fn dropbear_runs_streams_and_reports_signals() {
    let srv = need_server!();
    let conn = connect_dropbear(srv, &srv.known_hosts).unwrap();
    assert_eq!(conn.run("kill -TERM $$").unwrap().status, 128 + 15);
    let stop = AtomicBool::new(false);
    let mut ticks = 0;
    let mut stderr = Vec::new();
    let status = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(700));
            stop.store(true, Ordering::Relaxed);
        });
        conn.stream(
            TICKER,
            &mut |l| {
                ticks += usize::from(l.starts_with(b"tick"));
                Flow::Continue
            },
            &mut |e| stderr.extend_from_slice(e),
            &stop,
        )
    })
    .unwrap();
    assert_eq!((status, stderr.as_slice()), (0, &b"eof\n"[..]));
    assert!(ticks >= 2, "{ticks}");
}

#[test]
fn dropbear_without_scp_gets_the_file_through_exec() {
    let srv = need_server!();
    let conn = connect_dropbear(srv, &srv.known_hosts).unwrap();
    check_upload(&conn, false, UploadMethod::Exec);
    // Again on the same connection, which now goes straight to exec
    // (libssh2's SCP state may be stale after such a failure).
    check_upload(&conn, false, UploadMethod::Exec);
}

// ---------------------------------------------------------------------
// Destinations (no server needed)

#[test]
fn a_password_in_the_destination_is_refused_and_never_printed() {
    const SECRET: &str = "Sup3rS3cretPw";
    let tmp = TempDir::new("password");
    let kh = tmp.path().join("known_hosts");
    let runs: Vec<Vec<String>> = [
        vec![
            format!("--host=root:{SECRET}@127.0.0.1:2222"),
            "--sig=KILL".into(),
        ],
        vec!["--host".into(), format!("root:{SECRET}@[::1]:2222")],
        vec!["--host".into(), format!("ssh://pi:{SECRET}@board/")],
        vec![
            "--host".into(),
            "root@127.0.0.1:2222".into(),
            "-l".into(),
            format!("root:{SECRET}"),
        ],
        vec![
            "doctor".into(),
            "--host".into(),
            format!("root:{SECRET}@board"),
        ],
    ]
    .into();
    for args in runs {
        let out = Command::new(env!("CARGO_BIN_EXE_whosent-deploy"))
            .args(&args)
            .arg("--known-hosts")
            .arg(&kh)
            .args(["--connect-timeout", "1"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(
                "passwords are not taken on the command line (use WHOSENT_PASSWORD or a key)"
            ),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        for part in [SECRET, "S3cret", "3cretPw"] {
            assert!(
                !stdout.contains(part) && !stderr.contains(part),
                "{args:?} printed the password: {stdout}{stderr}"
            );
        }
        assert!(!kh.exists(), "{args:?}");
    }
}

// ---------------------------------------------------------------------
// Connection failures (no server needed)

fn loopback_target(port: u16) -> Target {
    Target {
        host: "127.0.0.1".into(),
        port,
        user: "nobody".into(),
        identity_files: vec![],
        alias: format!("127.0.0.1:{port}"),
        jump: None,
    }
}

/// A loopback port that refuses connections for as long as the returned
/// socket lives: bound, so nothing else gets it, but not listening.
fn closed_port() -> (libc::c_int, u16) {
    // SAFETY: plain socket calls on a socket this function owns, with
    // correctly sized addresses.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len),
            0
        );
        let mut len = len;
        assert_eq!(
            libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len),
            0
        );
        (fd, u16::from_be(addr.sin_port))
    }
}

#[test]
fn a_closed_port_fails_fast() {
    let (fd, port) = closed_port();
    let start = Instant::now();
    let err = Conn::connect(&loopback_target(port), &ConnectOpts::default())
        .err()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, SshError::ConnectRefused { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("cannot connect to 127.0.0.1:{port}: connection refused")
    );
    assert!(
        err.help().starts_with("check the host and port (-p)"),
        "{}",
        err.help()
    );
    // SAFETY: closing the socket closed_port opened.
    unsafe { libc::close(fd) };
}

#[test]
fn a_port_that_does_not_speak_ssh_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let opts = ConnectOpts {
        connect_timeout: Duration::from_secs(1),
        ..ConnectOpts::default()
    };
    let start = Instant::now();
    let err = std::thread::scope(|s| {
        // Accepts, then says nothing.
        s.spawn(|| {
            let (mut c, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(3));
            let _ = c.write_all(b"");
        });
        Conn::connect(&loopback_target(port), &opts).err().unwrap()
    });
    assert!(matches!(err, SshError::HandshakeTimeout { .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(4));
    assert!(err.help().contains("-p"));
}

/// A Ctrl-C flag for `ConnectOpts::stop`, set by a thread after `after`.
fn ctrl_c_after(after: Duration) -> &'static AtomicBool {
    let flag: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    std::thread::spawn(move || {
        std::thread::sleep(after);
        flag.store(true, Ordering::SeqCst);
    });
    flag
}

/// Issue 13 item 8: during the SSH handshake Ctrl-C waited for
/// --connect-timeout. A server that accepts and never speaks; the
/// connection is dropped at once, well within a second of the Ctrl-C.
#[test]
fn ctrl_c_during_an_ssh_handshake_that_never_comes_stops_within_a_second() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let opts = ConnectOpts {
        connect_timeout: Duration::from_secs(30),
        stop: Some(ctrl_c_after(Duration::from_millis(300))),
        ..ConnectOpts::default()
    };
    let held = std::thread::spawn(move || listener.accept().map(|(c, _)| c));
    let start = Instant::now();
    let err = Conn::connect(&loopback_target(port), &opts).err().unwrap();
    let took = start.elapsed();
    assert!(matches!(err, SshError::Interrupted), "{err}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1300),
        "{took:?}"
    );
    drop(held.join());
}

/// The same while the TCP connect itself hangs: a listener whose accept
/// queue is full drops further SYNs, as an unreachable board does.
#[test]
fn ctrl_c_during_a_tcp_connect_that_hangs_stops_within_a_second() {
    use std::os::fd::AsRawFd;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) on our own listening socket, to shrink its queue.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let addr = listener.local_addr().unwrap();
    let mut fill = Vec::new();
    // Fill the queue until a connect hangs, proving the condition.
    loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(c) => fill.push(c),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
                break;
            }
        }
        assert!(fill.len() < 16, "the accept queue never filled");
    }
    let opts = ConnectOpts {
        connect_timeout: Duration::from_secs(30),
        stop: Some(ctrl_c_after(Duration::from_millis(300))),
        ..ConnectOpts::default()
    };
    let start = Instant::now();
    let err = Conn::connect(&loopback_target(addr.port()), &opts)
        .err()
        .unwrap();
    let took = start.elapsed();
    assert!(matches!(err, SshError::Interrupted), "{err}");
    assert!(took < Duration::from_millis(1300), "{took:?}");
}

// ---------------------------------------------------------------------
// Destinations and ssh_config (no server needed)

fn config(text: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new("config");
    let path = dir.path().join("config");
    fs::write(&path, text).unwrap();
    (dir, path)
}

const CONFIG: &str = "\
# boards
Host pi pi.alias
    HostName 127.0.0.1
    User alice
    Port 2200
    IdentityFile ~/.ssh/pi_key
    IdentityFile /keys/%r@%h

Host board-*  !board-bad
    User bob
    Port=2201

Host pi
    User ignored-because-first-wins
    HostName ignored.example

Host jump-me
    ProxyJump gateway

Host cmd-me
    ProxyCommand ssh -W %h:%p gateway

Host direct
    ProxyJump none
    HostName 127.0.0.1

Host *
    User fallback
";

#[test]
fn an_alias_resolves_through_the_config() {
    let (_d, cfg) = config(CONFIG);
    let home = ssh::dest::home_dir();
    let t = ssh::resolve("pi", None, None, &[], Some(&cfg)).unwrap();
    assert_eq!(
        t,
        Target {
            host: "127.0.0.1".into(),
            port: 2200,
            user: "alice".into(),
            identity_files: vec![
                home.join(".ssh/pi_key"),
                PathBuf::from("/keys/alice@127.0.0.1")
            ],
            alias: "pi".into(),
            jump: None,
        }
    );
}

#[test]
fn flags_beat_the_destination_which_beats_the_config() {
    let (_d, cfg) = config(CONFIG);
    let t = ssh::resolve("carol@pi:2300", None, None, &[], Some(&cfg)).unwrap();
    assert_eq!((t.user.as_str(), t.port), ("carol", 2300));
    let key = PathBuf::from("/k/id");
    let t = ssh::resolve(
        "carol@pi:2300",
        Some(2400),
        Some("dave"),
        std::slice::from_ref(&key),
        Some(&cfg),
    )
    .unwrap();
    assert_eq!((t.user.as_str(), t.port), ("dave", 2400));
    assert_eq!(t.identity_files[0], key, "-i keys come first");
    assert_eq!(t.identity_files.len(), 3);
    assert_eq!(t.alias, "carol@pi:2300");
}

#[test]
fn patterns_and_negation_pick_the_block() {
    let (_d, cfg) = config(CONFIG);
    let t = ssh::resolve("board-7", None, None, &[], Some(&cfg)).unwrap();
    assert_eq!(
        (t.host.as_str(), t.user.as_str(), t.port),
        ("board-7", "bob", 2201)
    );
    let t = ssh::resolve("board-bad", None, None, &[], Some(&cfg)).unwrap();
    assert_eq!((t.user.as_str(), t.port), ("fallback", 22));
    let t = ssh::resolve("[::1]:2222", None, None, &[], Some(&cfg)).unwrap();
    assert_eq!((t.host.as_str(), t.port), ("::1", 2222));
}

#[test]
fn proxy_command_is_refused_clearly_and_proxy_jump_is_followed() {
    let (_d, cfg) = config(CONFIG);
    let err = ssh::resolve("cmd-me", None, None, &[], Some(&cfg)).unwrap_err();
    assert!(matches!(err, SshError::ConfigUnsupported { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("ProxyCommand") && msg.contains("not supported"),
        "{msg}"
    );
    assert!(msg.contains(&format!("{}:21", cfg.display())), "{msg}");
    assert!(err.help().contains("ProxyJump"), "{}", err.help());
    // ProxyJump: the board is reached through the jump host, which is
    // resolved through the config too (`Host *` gives its user).
    let t = ssh::resolve("jump-me", None, None, &[], Some(&cfg)).unwrap();
    let j = t.jump.as_deref().expect("a jump host");
    assert_eq!(
        (j.host.as_str(), j.port, j.user.as_str()),
        ("gateway", 22, "fallback")
    );
    assert_eq!(t.route(), "jump-me via gateway");
    // -J beats the config's ProxyJump and ProxyCommand, as in ssh.
    for alias in ["jump-me", "cmd-me"] {
        let t = ssh::resolve_via(alias, None, None, &[], Some(&cfg), Some("gw@lab:2022")).unwrap();
        let j = t.jump.as_deref().unwrap();
        assert_eq!(
            (j.host.as_str(), j.port, j.user.as_str()),
            ("lab", 2022, "gw")
        );
        assert!(j.jump.is_none());
    }
    // A list: the last hop is nearest the board.
    let t = ssh::resolve_via("direct", None, None, &[], Some(&cfg), Some("a,b:2")).unwrap();
    assert_eq!(t.route(), "direct via b:2 via a");
    // `none` switches them off.
    let t = ssh::resolve("direct", None, None, &[], Some(&cfg)).unwrap();
    assert_eq!(t.host, "127.0.0.1");
    assert!(t.jump.is_none());
}

#[test]
fn a_proxy_jump_loop_in_the_config_is_refused() {
    let (_d, cfg) = config("Host gw\n    ProxyJump gw\n");
    let err = ssh::resolve("board", None, None, &[], Some(&cfg))
        .map(|t| t.route())
        .unwrap_or_else(|e| e.to_string());
    assert_eq!(err, "board");
    let err = ssh::resolve_via("board", None, None, &[], Some(&cfg), Some("gw")).unwrap_err();
    assert!(err.to_string().contains("more than 8 jump hosts"), "{err}");
    for bad in ["a,,b", "root:pw@gw", "gw:0"] {
        assert!(
            ssh::resolve_via("b", None, None, &[], Some(&cfg), Some(bad)).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn include_reads_other_files() {
    let dir = TempDir::new("include");
    let inc = dir.path().join("boards.d");
    fs::create_dir_all(&inc).unwrap();
    fs::write(
        inc.join("a.conf"),
        "Host lab\n  HostName 127.0.0.1\n  Port 2022\n",
    )
    .unwrap();
    fs::write(
        inc.join("b.conf"),
        "Host lab\n  Port 9999\n  User lab-user\n",
    )
    .unwrap();
    let main = dir.path().join("config");
    fs::write(
        &main,
        format!("Include {}/*.conf\nHost lab\n  User late\n", inc.display()),
    )
    .unwrap();
    let t = ssh::resolve("lab", None, None, &[], Some(&main)).unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.user.as_str()),
        ("127.0.0.1", 2022, "lab-user")
    );
}

#[test]
fn config_errors_name_the_line() {
    let (_d, cfg) = config("Host x\n  Port many\n");
    let err = ssh::resolve("x", None, None, &[], Some(&cfg)).unwrap_err();
    assert!(
        matches!(err, SshError::ConfigInvalid { line: 2, .. }),
        "{err}"
    );
    let missing = Path::new("/nonexistent-whosent/config");
    let err = ssh::resolve("x", None, None, &[], Some(missing)).unwrap_err();
    assert!(matches!(err, SshError::ConfigRead { .. }), "{err}");
    let err = ssh::resolve("root@", None, None, &[], Some(&cfg)).unwrap_err();
    assert!(matches!(err, SshError::BadDestination { .. }), "{err}");
    assert!(err.help().contains("[USER@]HOST[:PORT]"));
}

#[test]
fn without_a_user_anywhere_the_local_one_is_used() {
    let (_d, cfg) = config("Host other\n  User someone\n");
    let t = ssh::resolve("plain", None, None, &[], Some(&cfg)).unwrap();
    assert_eq!(t.user, ssh::dest::local_user());
    assert_eq!(t.port, 22);
}
