//! Deploying to a board and running the agent there: connect, probe,
//! pick or build the agent, upload it into a private directory, check
//! its sha256 on the board, run it, stream its records back, clean up.
//!
//! Clean-up does not depend on this process surviving: the remote
//! command removes the directory itself after the agent exits, and the
//! agent exits when its stdin closes, which is what happens when the
//! SSH connection drops or whosent-deploy is killed.

use crate::board::{Facts, PROBE};
use crate::build::{self, Target as Arch};
use crate::bundle;
use crate::cli::{RunArgs, SshArgs};
use crate::error::HostError;
use crate::report::Report;
use crate::ssh::upload::quote;
use crate::ssh::{self, Conn, ConnectOpts, HostKeyPolicy, UploadMethod, UploadOpts};
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

fn other(message: impl Into<String>, help: impl Into<String>) -> HostError {
    HostError::Other {
        message: message.into(),
        help: help.into(),
    }
}

/// Connects as ssh would, with known_hosts checking.
pub fn connect(a: &SshArgs) -> Result<(ssh::Target, Conn), HostError> {
    let host = a
        .host
        .as_deref()
        .ok_or_else(|| HostError::Usage("--host is required".into()))?;
    let target = ssh::resolve(
        host,
        a.port,
        a.user.as_deref(),
        &a.identity,
        a.ssh_config.as_deref(),
    )?;
    let mut opts = ConnectOpts {
        policy: if a.accept_new_host_key {
            HostKeyPolicy::AcceptNew
        } else {
            HostKeyPolicy::Strict
        },
        connect_timeout: Duration::from_secs(a.connect_timeout.max(1)),
        password: std::env::var("WHOSENT_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()),
        ..ConnectOpts::default()
    };
    if let Some(k) = &a.known_hosts {
        opts.known_hosts = k.clone();
    }
    match Conn::connect(&target, &opts) {
        Ok(c) => Ok((target, c)),
        // Keys failed and nobody gave a password: ask, but only a
        // person at a terminal; scripts get the error.
        Err(ssh::SshError::AuthFailed { .. })
            if opts.password.is_none() && io::stdin().is_terminal() =>
        {
            opts.password = Some(crate::password::prompt(&format!(
                "{}@{}'s password: ",
                target.user, target.host
            ))?);
            Ok((target.clone(), Conn::connect(&target, &opts)?))
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs the probe, through sudo when asked.
pub fn probe(conn: &Conn, sudo: bool) -> Result<Facts, HostError> {
    // With --sudo the facts are root's view (tracefs is usually 0700),
    // but the login uid decides whether the agent needs the sudo prefix.
    let cmd = if sudo {
        format!(
            "echo login_uid=$(id -u); sudo -n sh -c {} 2>/dev/null || sh -c {}",
            quote(PROBE),
            quote(PROBE)
        )
    } else {
        format!("echo login_uid=$(id -u); {PROBE}")
    };
    let out = conn.run(&cmd)?;
    Ok(Facts::parse(&String::from_utf8_lossy(&out.stdout)))
}

/// The board's architecture, checked against `--target`.
pub fn arch(given: Option<&str>, f: &Facts) -> Result<Arch, HostError> {
    let board = Arch::from_uname_m(&f.arch);
    match (given.map(Arch::parse).transpose()?, board) {
        (Some(g), Some(b)) if g != b => Err(other(
            format!("--target {} does not match the board, which is {} (uname -m: {})", given.unwrap_or_default(), b.name(), f.arch),
            "drop --target to use the board's own, or connect to the right board",
        )),
        (Some(g), _) => Ok(g),
        (None, Some(b)) => Ok(b),
        (None, None) => Err(other(
            format!("the board's architecture '{}' is not supported", f.arch),
            "whosent supports aarch64, armv7 and x86_64 boards; pass --target if uname -m is unusual",
        )),
    }
}

pub fn check_privileges(f: &Facts, sudo: bool) -> Result<(), HostError> {
    if f.is_root() {
        return Ok(());
    }
    if !sudo {
        return Err(other(
            format!("the login user (uid {}) is not root, and tracing needs root", f.uid.map_or("?".into(), |u| u.to_string())),
            "log in as root (-l root), or pass --sudo for a user who may run sudo without a password",
        ));
    }
    if !f.sudo_ok {
        return Err(other(
            "--sudo was given, but `sudo -n true` fails on the board (no sudo, or it wants a password)",
            "allow the user passwordless sudo (NOPASSWD in /etc/sudoers.d), or log in as root",
        ));
    }
    Ok(())
}

/// A directory on the board that is removed when dropped, unless the
/// remote command has taken over its removal or `--keep` was given.
pub struct RemoteDir<'a> {
    conn: &'a Conn,
    pub path: String,
    pub remove_on_drop: bool,
}

impl Drop for RemoteDir<'_> {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = self.conn.run(&format!("rm -rf {}", quote(&self.path)));
        }
    }
}

/// Makes the private upload directory. With `--keep` it has a fixed
/// name per user and agent hash, reused only if it is still a real
/// directory owned by us with mode 0700.
pub fn make_dir<'a>(
    conn: &'a Conn,
    hash: &str,
    keep: bool,
) -> Result<(RemoteDir<'a>, bool), HostError> {
    let script = if keep {
        format!(
            r#"d="${{TMPDIR:-/tmp}}/whosent-keep-$(id -u)-{h}"
if [ -d "$d" ] && [ ! -L "$d" ]; then
  set -- $(ls -ldn "$d")
  if [ "$1" = drwx------ ] && [ "$3" = "$(id -u)" ]; then echo "existing $d"; exit 0; fi
  echo "refusing $d: not a private directory of ours" >&2; exit 3
fi
mkdir -m 700 "$d" && echo "new $d""#,
            h = &hash[..16]
        )
    } else {
        r#"d=$(mktemp -d "${TMPDIR:-/tmp}/whosent.XXXXXX" 2>/dev/null) || { d="${TMPDIR:-/tmp}/whosent.$$"; mkdir -m 700 "$d" || exit 3; }
chmod 700 "$d" && echo "new $d""#
            .to_string()
    };
    let out = conn.run(&script)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (state, path) = text.trim().split_once(' ').unwrap_or(("", ""));
    if out.status != 0 || path.is_empty() {
        return Err(other(
            format!(
                "cannot create a private directory on the board: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "check that /tmp (or $TMPDIR) on the board is writable and not full",
        ));
    }
    Ok((
        RemoteDir {
            conn,
            path: path.to_string(),
            remove_on_drop: !keep,
        },
        state == "existing",
    ))
}

/// The agent's sha256 as the board computes it (or, without sha256sum,
/// as the bytes read back hash on this side).
pub fn remote_sha256(conn: &Conn, f: &Facts, path: &str) -> Result<Option<String>, HostError> {
    if f.has("sha256sum") {
        let out = conn.run(&format!("sha256sum {} 2>/dev/null", quote(path)))?;
        let text = String::from_utf8_lossy(&out.stdout);
        return Ok(text
            .split_whitespace()
            .next()
            .filter(|h| h.len() == 64)
            .map(str::to_string));
    }
    let out = conn.run(&format!("cat {} 2>/dev/null", quote(path)))?;
    Ok((out.status == 0).then(|| bundle::sha256_hex(&out.stdout)))
}

pub fn progress_bar(label: &str) -> impl FnMut(u64, u64) {
    let tty = io::stderr().is_terminal();
    let label = label.to_string();
    move |sent, total| {
        if tty && total > 0 {
            eprint!("\rwhosent: {label} {:>3}%", sent * 100 / total);
            if sent >= total {
                eprintln!();
            }
            let _ = io::stderr().flush();
        }
    }
}

/// Puts the agent in `dir`, checked. Returns how it travelled.
fn upload(
    conn: &Conn,
    f: &Facts,
    dir: &str,
    agent: &[u8],
    hash: &str,
    arch: Arch,
) -> Result<String, HostError> {
    let dest = format!("{dir}/{}", bundle::AGENT_NAME);
    if let Some(kb) = f.tmp_free_kb {
        if kb * 1024 < agent.len() as u64 * 2 {
            return Err(other(
                format!(
                    "the board has {kb} KiB free in /tmp, too little for the {} KiB agent",
                    agent.len() / 1024
                ),
                "free space in /tmp on the board (or set TMPDIR for the login user)",
            ));
        }
    }
    let how = if f.has("tar") {
        let b = bundle::build(agent, arch.name())
            .map_err(|e| HostError::Io("building the bundle".into(), e))?;
        let path = format!("{dir}/bundle.tar.gz");
        let mut bar = progress_bar("uploading");
        let m = conn.upload_with(
            &b,
            &path,
            0o600,
            UploadOpts {
                progress: Some(&mut bar),
                ..Default::default()
            },
        )?;
        let out = conn.run(&format!(
            "cd {} && tar -xzf bundle.tar.gz && rm -f bundle.tar.gz",
            quote(dir)
        ))?;
        if out.status != 0 {
            return Err(other(
                format!(
                    "unpacking the bundle on the board failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "check free space in /tmp on the board (`whosent-deploy doctor`)",
            ));
        }
        format!("{} KiB bundle via {}", b.len() / 1024, method(m))
    } else {
        let mut bar = progress_bar("uploading");
        let m = conn.upload_with(
            agent,
            &dest,
            0o755,
            UploadOpts {
                progress: Some(&mut bar),
                ..Default::default()
            },
        )?;
        format!(
            "{} KiB agent via {} (no tar on the board)",
            agent.len() / 1024,
            method(m)
        )
    };
    verify(conn, f, &dest, hash)?;
    Ok(how)
}

pub fn verify(conn: &Conn, f: &Facts, dest: &str, hash: &str) -> Result<(), HostError> {
    match remote_sha256(conn, f, dest)? {
        Some(h) if h == hash => Ok(()),
        Some(h) => Err(other(
            format!("the agent on the board has sha256 {h}, expected {hash}; not running it"),
            "retry; if it persists, check the board's storage (a full or failing /tmp)",
        )),
        None => Err(other(
            "could not read back the uploaded agent to check its sha256",
            "check free space in /tmp on the board (`whosent-deploy doctor`)",
        )),
    }
}

fn method(m: UploadMethod) -> &'static str {
    match m {
        UploadMethod::Scp => "scp",
        UploadMethod::Exec => "the exec channel",
    }
}

pub fn run(
    r: &RunArgs,
    host: &str,
    args: &[String],
    (query, save): (
        whosent_proto::query::Query,
        Option<(std::path::PathBuf, std::fs::File)>,
    ),
    stop: &'static AtomicBool,
) -> Result<i32, HostError> {
    let (target, conn) = connect(&r.ssh)?;
    let facts = probe(&conn, r.sudo)?;
    let arch = arch(r.target.as_deref(), &facts)?;
    check_privileges(&facts, r.sudo)?;
    eprintln!(
        "whosent: connected to {}@{}:{} ({}, Linux {})",
        target.user, target.host, target.port, facts.arch, facts.release
    );
    let agent_path = match &r.agent {
        Some(p) => {
            build::check_elf(p, arch)?;
            p.clone()
        }
        None => build::agent_for(arch, "local", true)?,
    };
    let agent = std::fs::read(&agent_path)
        .map_err(|e| HostError::Io(format!("cannot read {}", agent_path.display()), e))?;
    let hash = bundle::sha256_hex(&agent);
    let (mut dir, existing) = make_dir(&conn, &hash, r.keep)?;
    let agent_remote = format!("{}/{}", dir.path, bundle::AGENT_NAME);
    if existing && verify(&conn, &facts, &agent_remote, &hash).is_ok() {
        eprintln!(
            "whosent: using the agent kept on the board in {} (sha256 verified)",
            dir.path
        );
    } else {
        let how = upload(&conn, &facts, &dir.path, &agent, &hash, arch)?;
        eprintln!(
            "whosent: uploaded {how} to {}; sha256 verified on the board",
            dir.path
        );
    }
    let sudo = if facts.login_uid == Some(0) {
        ""
    } else {
        "sudo -n "
    };
    let quoted: Vec<String> = args.iter().map(|a| quote(a)).collect();
    let cleanup = if r.keep {
        String::new()
    } else {
        format!("rm -rf {}; ", quote(&dir.path))
    };
    let cmd = format!(
        "{sudo}{} {}; st=$?; {cleanup}exit $st",
        quote(&agent_remote),
        quoted.join(" ")
    );
    // From here the remote command removes the directory itself.
    dir.remove_on_drop = false;

    let mut report = Report::new(io::stdout().lock(), r.capture.json, Some(host.to_string()));
    report.quiet = r.capture.json && !io::stderr().is_terminal();
    let fold = !r.capture.json && !r.capture.every;
    let mut feed = crate::stream::Feed::new(&mut report, query, r.capture.count, save, fold);
    let status = conn.stream_bytes(
        &cmd,
        &mut |chunk| {
            if !feed.bytes(chunk) {
                if feed.output_gone() {
                    return ssh::Flow::Stop;
                }
                // --count reached: stop the agent, take its last frames.
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            ssh::Flow::Continue
        },
        &mut |chunk| {
            let _ = io::stderr().write_all(chunk);
        },
        stop,
    )?;
    feed.finish(whosent_proto::record::EndReason::Hangup);
    Ok(report.status(status))
}
