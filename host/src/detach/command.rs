//! The four commands from the command line: for each board (one, or
//! several in parallel through [`crate::fleet::each`], each line and
//! record saying which board), connect as a live run does (host keys
//! checked) or use this machine, then the per-board function with that
//! board's stdout as its writer.

use super::args::{CollectArgs, OnBoard, StartArgs, StatusArgs, StopArgs};
use super::segments::Print;
use super::start::{Source, StartOpts};
use super::Board;
use crate::deploy::flow::Plan;
use crate::error::HostError;
use crate::transport::Transport;
use crate::{deploy, interrupt, local, query};
use std::io::Write;
use std::sync::atomic::AtomicBool;

/// The board's transport: `local`, or an SSH connection; and its login.
fn reach(
    on: &OnBoard,
    stop: Option<&'static AtomicBool>,
) -> Result<(Box<dyn Transport>, String, String), HostError> {
    let Some(host) = on.ssh.host.clone() else {
        return Err(HostError::Usage(
            "--host is required: a board ([USER@]HOST[:PORT]) or `local` for this machine".into(),
        ));
    };
    super::check_dir(&on.dir)?;
    if host == "local" {
        let s = &on.ssh;
        let given = [
            (s.port.is_some(), "-p/--port"),
            (s.jump.is_some(), "-J/--jump"),
            (s.user.is_some(), "-l/--login"),
            (!s.identity.is_empty(), "-i/--identity"),
            (s.known_hosts.is_some(), "--known-hosts"),
            (s.accept_new_host_key, "--accept-new-host-key"),
            (s.ssh_config.is_some(), "-F/--ssh-config"),
            (!s.options.is_empty(), "-o"),
        ];
        if let Some((_, flag)) = given.iter().find(|(g, _)| *g) {
            return Err(HostError::other(
                format!("{flag} means nothing with --host local (this machine, no SSH)"),
                "leave it out, or give a board with --host [USER@]HOST",
            ));
        }
        let t: Box<dyn Transport> = Box::new(crate::transport::local::Local);
        return Ok((t, "local".into(), host));
    }
    crate::app::identities(&on.ssh)?;
    let (target, conn) = deploy::connect(&on.ssh, stop)?;
    Ok((Box::new(conn), deploy::login(&target), host))
}

fn board<'a>(t: &'a dyn Transport, host: String, on: &OnBoard) -> Result<Board<'a>, HostError> {
    Ok(Board {
        t,
        host,
        dir: super::check_dir(&on.dir)?,
        sudo: on.sudo,
    })
}

/// The flags for one board of several.
fn for_board(on: &OnBoard, host: &str) -> OnBoard {
    OnBoard {
        ssh: on.ssh.for_board(host),
        ..on.clone()
    }
}

/// Runs `f` for every board given; the combined status: 0 if any board
/// gave 0, 2 if every board failed, else 1 (one board: its own).
fn each(
    on: &OnBoard,
    human: bool,
    progress: Option<&'static str>,
    f: impl Fn(&OnBoard, &mut dyn Write) -> Result<i32, HostError> + Sync,
) -> Result<i32, HostError> {
    let boards = crate::fleet::boards(&on.ssh)?;
    if boards.len() > 1 && boards.iter().any(|b| b == "local") {
        return Err(HostError::Usage(
            "--host local runs alone: give it without other boards".into(),
        ));
    }
    let opts = crate::fleet::Opts { human, progress };
    let outcome = crate::fleet::each(&boards, opts, |host, out| f(&for_board(on, host), out))?;
    Ok(outcome.any_signal())
}

pub fn start(a: &StartArgs) -> Result<i32, HostError> {
    // The flags are checked before connecting: a typo is not the board's.
    start_opts(a, String::new(), String::new())?;
    let stop = interrupt::install();
    // One id on every board: one `--id` then names the capture on all.
    let id = super::new_id()?;
    each(&a.on, true, Some("recording"), |on, out| {
        let (t, login, host) = reach(on, Some(stop))?;
        let mut opts = start_opts(a, host, login)?;
        opts.id = Some(id.clone());
        super::start::start(&*t, opts, out, stop)
    })
}

/// `start`'s options for the board `host` (as given to --host; `login`
/// for the "connected" line), checked: what a fleet passes per board.
pub fn start_opts(a: &StartArgs, host: String, login: String) -> Result<StartOpts, HostError> {
    let max_size = super::size::parse(&a.max_size)?;
    let q = query::from_args(&a.query)?;
    let capture = crate::cli::CaptureArgs {
        duration: a.duration,
        ..Default::default()
    };
    let args = query::agent_args(&q, &capture)?;
    let flags: Vec<(String, String)> = query::flags(&a.query)
        .into_iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    if flags.iter().any(|(_, v)| v.contains('\n')) {
        return Err(HostError::Usage(
            "a query value with a newline cannot be kept with the capture".into(),
        ));
    }
    let dir = super::check_dir(&a.on.dir)?;
    let agent = if host == "local" {
        if a.target.is_some() {
            return Err(HostError::other(
                "--target means nothing with --host local (this machine, no SSH, no upload)",
                "leave it out, or give a board with --host [USER@]HOST",
            ));
        }
        let path = local::find_agent(crate::build::Agent::Ftrace, a.agent.as_deref())?;
        Source::Bytes(
            std::fs::read(&path)
                .map_err(|e| HostError::Io(format!("cannot read {}", path.display()), e))?,
        )
    } else {
        Source::Build(a.agent.clone())
    };
    Ok(StartOpts {
        plan: Plan {
            login,
            host,
            target: a.target.clone(),
            sudo: a.on.sudo,
            ..Plan::default()
        },
        query: flags,
        args,
        max_size,
        dir,
        agent,
        id: None,
    })
}

pub fn collect(a: &CollectArgs) -> Result<i32, HostError> {
    let stop = interrupt::install();
    if a.follow {
        interrupt::stop_when_stdout_closes();
    }
    if let Some(id) = &a.id {
        super::check_id(id)?;
    }
    each(&a.on, !a.json, None, |on, out| {
        let (t, _, host) = reach(on, None)?;
        let b = board(&*t, host, on)?;
        let o = super::collect::CollectOpts {
            id: a.id.clone(),
            print: Print {
                json: a.json,
                every: a.every,
                stopped: None,
            },
            follow: a.follow,
        };
        super::collect::collect(&b, &o, out, stop)
    })
}

pub fn stop(a: &StopArgs) -> Result<i32, HostError> {
    if let Some(id) = &a.id {
        super::check_id(id)?;
    }
    each(&a.on, !a.json, None, |on, out| {
        let (t, _, host) = reach(on, None)?;
        let b = board(&*t, host, on)?;
        let o = super::stop::StopOpts {
            id: a.id.clone(),
            print: Print {
                json: a.json,
                every: a.every,
                stopped: None,
            },
        };
        super::stop::stop(&b, &o, out)
    })
}

pub fn status(a: &StatusArgs) -> Result<i32, HostError> {
    each(&a.on, !a.json, None, |on, out| {
        let (t, _, host) = reach(on, None)?;
        let b = board(&*t, host, on)?;
        let o = super::status::StatusOpts { json: a.json };
        super::status::status(&b, &o, out)
    })
}
