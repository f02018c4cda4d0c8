//! `start`: the live run's first steps (connect, probe, build, upload
//! and check the agent: [`crate::deploy::flow::prepare`] and the agent
//! backend's push), into a capture directory that stays, then the agent
//! launched detached with `--out` as docs/detached.md says, and its
//! `ready` waited for. The id goes to stdout once the capture is live.
//!
//! Until then the directory is this command's: any failure, Ctrl-C
//! included, stops the agent (it removes its instance and probe itself)
//! and removes the directory.

use super::{Board, DEFAULT_DIR};
use crate::agent::Agent;
use crate::deploy::flow::{self, Plan};
use crate::deploy::push::Pusher;
use crate::deploy::{probe, Backend};
use crate::error::HostError;
use crate::ssh::upload::quote;
use crate::stream::Feed;
use crate::transport::Transport;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use whosent_stream::decode::Decoder;
use whosent_stream::frame::Frame;

/// How long the agent may take to be live: its start on an emulated
/// board (the /proc snapshot, the argv uprobe) takes a few seconds.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Where the agent comes from.
pub enum Source {
    /// Built for the board, or `--agent PATH`.
    Build(Option<PathBuf>),
    /// At hand (this machine's, for `--host local`).
    Bytes(Vec<u8>),
}

pub struct StartOpts {
    /// The live run's plan: `login`, `host`, `target`, `sudo`, `quiet`
    /// (a detached capture has no `alive_timeout`, no `keep`).
    pub plan: Plan,
    /// The query as the user gave it, flag and value (for `meta`).
    pub query: Vec<(String, String)>,
    /// The agent's query and `--duration` flags.
    pub args: Vec<String>,
    pub max_size: u64,
    /// `--dir`, checked ([`super::check_dir`]).
    pub dir: String,
    pub agent: Source,
    /// The capture's id; `None`: a new one. A fleet gives every board
    /// the same, so that one `--id` names the capture on all of them.
    pub id: Option<String>,
}

impl Default for StartOpts {
    fn default() -> Self {
        StartOpts {
            plan: Plan::default(),
            query: Vec::new(),
            args: Vec::new(),
            max_size: super::size::DEFAULT,
            dir: DEFAULT_DIR.into(),
            agent: Source::Build(None),
            id: None,
        }
    }
}

/// Removes the capture directory (stopping its agent first) unless
/// disarmed: the capture is live.
struct Guard<'b> {
    b: &'b Board<'b>,
    path: String,
    pid: Option<u32>,
    armed: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Asked to stop, the agent removes its instance and probe; its
        // directory goes once it is gone (a few seconds at most).
        if let Some(p) = self.pid {
            let _ = self.b.run(&format!(
                "kill -TERM {p} 2>/dev/null; n=0; while [ -d /proc/{p} ] && [ $n -lt 50 ]; do sleep 0.1 2>/dev/null || sleep 1; n=$((n+1)); done"
            ));
        }
        let _ = self.b.run(&format!("rm -rf {}", quote(&self.path)));
    }
}

/// Starts a capture on the board behind `t`; prints its id to `out`.
/// Returns the exit status (0).
pub fn start(
    t: &dyn Transport,
    mut o: StartOpts,
    out: &mut dyn Write,
    stop: &AtomicBool,
) -> Result<i32, HostError> {
    let id = match o.id.take() {
        Some(id) => {
            super::check_id(&id)?;
            id
        }
        None => super::new_id()?,
    };
    let base = o.dir.clone();
    let path = format!("{base}/whosent-cap-{id}");
    let mut args = o.args.clone();
    args.extend([
        "--out".to_string(),
        path.clone(),
        "--max-size".to_string(),
        o.max_size.to_string(),
    ]);
    // The feed is a live run's; a detached capture is decoded by collect.
    let feed = Feed::new(Default::default(), None, None, false);
    let mut agent = match std::mem::replace(&mut o.agent, Source::Build(None)) {
        Source::Build(given) => Agent::new(args, given, feed),
        Source::Bytes(bytes) => Agent::with_bytes(args, bytes, feed),
    };
    let facts = flow::prepare(t, &o.plan, &mut agent, stop)?;
    let sudo = !probe::sudo_prefix(&facts).is_empty();
    let b = Board {
        t,
        host: o.plan.host.clone(),
        dir: base.clone(),
        sudo,
    };
    let qd = quote(&path);
    let made = t.run(&format!(
        "umask 077; [ -d {} ] || {{ echo 'no such directory' >&2; exit 3; }}; mkdir -m 700 {qd}",
        quote(&base)
    ))?;
    if made.status != 0 {
        return Err(HostError::other(
            format!(
                "cannot create the capture directory {path} on {}: {}",
                b.host,
                String::from_utf8_lossy(&made.stderr).trim()
            ),
            "give --dir an existing directory on the board that the login can write to (RAM-backed /tmp, or persistent storage to survive a reboot)",
        ));
    }
    let mut guard = Guard {
        b: &b,
        path: path.clone(),
        pid: None,
        armed: true,
    };
    let interrupted = |during: &'static str| {
        move |e: HostError| {
            if stop.load(Ordering::SeqCst) {
                HostError::Interrupted(during)
            } else {
                e
            }
        }
    };
    let pusher = Pusher {
        t,
        facts: &facts,
        dir: &path,
        alive_timeout: None,
    };
    let cmd = agent
        .push(&pusher, false)
        .map_err(interrupted("uploading"))?;
    if stop.load(Ordering::SeqCst) {
        return Err(HostError::Interrupted("uploading"));
    }
    write_meta(&b, &id, &path, &o)?;
    let pid = launch(&b, &path, &cmd)?;
    guard.pid = Some(pid);
    wait_ready(&b, &path, pid, stop)?;
    // Live: one more board up, for a fleet's progress line.
    crate::fleet::tag::up();
    guard.armed = false;
    drop(guard);
    if !o.plan.quiet {
        say!(
            "whosent: capture {id} is recording on {} in {path} (at most {}); collect it with `whosent-deploy collect --host {} --id {id}`",
            b.host,
            super::size::human(o.max_size),
            b.host
        );
    }
    writeln!(out, "{id}")
        .and_then(|()| out.flush())
        .or_else(|e| {
            if crate::stdout::reader_gone(&e) {
                Ok(())
            } else {
                Err(crate::stdout::error(e))
            }
        })?;
    Ok(0)
}

/// `meta` (docs/detached.md): one `key=value` a line.
fn write_meta(b: &Board<'_>, id: &str, path: &str, o: &StartOpts) -> Result<(), HostError> {
    let words: Vec<String> = o
        .query
        .iter()
        .flat_map(|(f, v)| [quote(f), quote(v)])
        .collect();
    let fixed = [
        format!("id={id}"),
        format!("query={}", words.join(" ")),
        format!("max_size={}", o.max_size),
        format!("host={}", o.plan.host),
    ];
    let fixed: Vec<String> = fixed.iter().map(|l| quote(l)).collect();
    let out = b.t.run(&format!(
        "{{ printf '%s\\n' {}; echo \"started=$(date +%s)\"; echo \"boot_id=$(cat /proc/sys/kernel/random/boot_id)\"; }} >{}/meta",
        fixed.join(" "),
        quote(path)
    ))?;
    if out.status != 0 {
        return Err(HostError::other(
            format!(
                "cannot write {path}/meta on {}: {}",
                b.host,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "check free space in --dir on the board",
        ));
    }
    Ok(())
}

/// Starts the agent in the background, its stdin, stdout and stderr
/// off the SSH session (so the session can end), stderr into
/// `agent.err`; the agent calls setsid() itself. Returns its pid (with
/// sudo, sudo's). Under sudo the directory becomes root's first.
fn launch(b: &Board<'_>, path: &str, cmd: &str) -> Result<u32, HostError> {
    let d = quote(path);
    let script = if b.sudo {
        let inner = format!("chown -R 0:0 {d} && cd {d} && exec {cmd} 2>agent.err");
        format!(
            "sudo -n sh -c {} </dev/null >/dev/null 2>&1 & echo $!",
            quote(&inner)
        )
    } else {
        format!("cd {d} || exit 3; {cmd} </dev/null >/dev/null 2>agent.err & echo $!")
    };
    let out = b.t.run(&script)?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .ok()
        .filter(|_| out.status == 0)
        .ok_or_else(|| {
            HostError::other(
                format!(
                    "cannot start the agent on {}: {}",
                    b.host,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "check the board with `whosent-deploy doctor`",
            )
        })
}

/// Polls every 100 ms until `ready` exists, the agent is gone (its
/// error, from its first segment's ERROR frame or its last line on
/// stderr), Ctrl-C, or [`READY_WITHIN`].
fn wait_ready(b: &Board<'_>, path: &str, pid: u32, stop: &AtomicBool) -> Result<(), HostError> {
    let d = quote(path);
    // Without sudo the pid is the agent's: alive only while its
    // executable is this one (not a zombie, not a reused pid).
    let alive = if b.sudo {
        format!("[ -d /proc/{pid} ]")
    } else {
        format!("[ /proc/{pid}/exe -ef {d}/whosent-agent ]")
    };
    let poll = format!(
        "if [ -e {d}/ready ]; then echo ready; elif {alive}; then echo running; else echo gone; fi"
    );
    let t0 = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(HostError::Interrupted("starting the capture"));
        }
        let out = b.run(&poll)?;
        match String::from_utf8_lossy(&out.stdout).trim() {
            "ready" => return Ok(()),
            "gone" => return Err(failure(b, path)),
            _ => {}
        }
        if t0.elapsed() > READY_WITHIN {
            return Err(HostError::other(
                format!(
                    "the agent on {} was not live within {} s",
                    b.host,
                    READY_WITHIN.as_secs()
                ),
                "the board may be overloaded; try again, or run a live capture to see what it says",
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Why the agent ended before `ready`: its ERROR frame, else its last
/// line on stderr.
fn failure(b: &Board<'_>, path: &str) -> HostError {
    let read = |name: &str| {
        b.run(&format!("cat {}/{name} 2>/dev/null", quote(path)))
            .map(|o| o.stdout)
            .unwrap_or_default()
    };
    let mut dec = Decoder::new();
    dec.push(&read("seg.00000000"));
    while let Ok(Some(f)) = dec.next_frame() {
        if let Frame::Error { message, help, .. } = f {
            return HostError::other(
                format!(
                    "the agent on {} failed: {}",
                    b.host,
                    whosent_proto::escape::escape(&message)
                ),
                whosent_proto::escape::escape(&help),
            );
        }
    }
    let err = read("agent.err");
    let text = String::from_utf8_lossy(&err);
    let last = text.lines().rev().find(|l| !l.trim().is_empty());
    HostError::other(
        format!(
            "the agent on {} ended before the capture was live: {}",
            b.host,
            last.map_or("it said nothing".into(), whosent_proto::escape::escape)
        ),
        "check the board with `whosent-deploy doctor`, or run a live capture with the same query to see what it says",
    )
}
