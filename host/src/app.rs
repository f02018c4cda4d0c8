//! Dispatch from the parsed command line to the modules that do the
//! work; returns the process exit status.

use crate::agent::{Agent, Choice};
use crate::cli::{Backend, Cli, Cmd, RunArgs, SshArgs};
use crate::error::HostError;
use crate::stap::backend::Stap;
use crate::{deploy, interrupt, local, offline, query, stream};
use std::io::{self, BufReader, IsTerminal};
use std::path::PathBuf;

pub fn run(cli: Cli) -> Result<i32, HostError> {
    match cli.cmd {
        Some(Cmd::Parse(p)) => {
            let q = query::from_args(&p.query)?;
            let mut out = crate::stdout::Raw;
            if p.file == "-" {
                offline::parse(io::stdin().lock(), "stdin", &q, &mut out, p.json, p.every)
            } else {
                let path = PathBuf::from(&p.file);
                // open(2) takes a directory and read(2) then fails
                // with EISDIR: say what to give instead.
                if path.is_dir() {
                    return Err(HostError::other(
                        format!("{} is a directory, not a trace file", path.display()),
                        format!(
                            "give a file in it, e.g. {}",
                            path.join("trace.dat").display()
                        ),
                    ));
                }
                let f = std::fs::File::open(&path)
                    .map_err(|source| HostError::Input { path, source })?;
                offline::parse(BufReader::new(f), &p.file, &q, &mut out, p.json, p.every)
            }
        }
        Some(Cmd::Build(b)) => crate::build::command(&b),
        Some(Cmd::Doctor(d)) => {
            let boards = crate::fleet::boards(&d.ssh)?;
            identities(&d.ssh)?;
            let opts = crate::fleet::Opts {
                human: true,
                progress: None,
            };
            // The worst board's status: 0 only when every board can work.
            let outcome = crate::fleet::each(&boards, opts, |host, out| {
                let d = crate::cli::DoctorArgs {
                    ssh: d.ssh.for_board(host),
                    sudo: d.sudo,
                };
                crate::doctor::command_to(&d, out)
            })?;
            Ok(outcome.worst())
        }
        Some(Cmd::Completions { shell }) => crate::completions::completions(&shell),
        Some(Cmd::Man) => crate::completions::man(),
        Some(Cmd::Start(a)) => crate::detach::command::start(&a),
        Some(Cmd::Collect(a)) => crate::detach::command::collect(&a),
        Some(Cmd::Stop(a)) => crate::detach::command::stop(&a),
        Some(Cmd::Status(a)) => crate::detach::command::status(&a),
        Some(Cmd::StapScript(s)) => {
            let q = query::from_args(&s.query)?;
            crate::stdout::print(crate::stap::script::generate(&q, s.count)?.as_bytes())?;
            Ok(0)
        }
        None => trace(&cli.run),
    }
}

/// Each `-i KEY` must be a file, checked before connecting: the board
/// cannot be blamed for a typo here, and a directory is not "no such
/// file".
pub(crate) fn identities(ssh: &SshArgs) -> Result<(), HostError> {
    for key in &ssh.identity {
        let help = || {
            format!(
                "give the private key file, e.g. {}",
                if key.is_dir() {
                    key.join("id_ed25519")
                } else {
                    PathBuf::from("~/.ssh/id_ed25519")
                }
                .display()
            )
        };
        match std::fs::metadata(key) {
            Ok(m) if m.is_dir() => {
                return Err(HostError::other(
                    format!("-i {}: a directory, not a key file", key.display()),
                    help(),
                ))
            }
            Ok(_) => {}
            Err(e) => {
                return Err(HostError::other(
                    format!("-i {}: {e}", key.display()),
                    help(),
                ))
            }
        }
    }
    Ok(())
}

fn trace(r: &RunArgs) -> Result<i32, HostError> {
    let boards = crate::fleet::boards(&r.ssh)?;
    identities(&r.ssh)?;
    if boards.len() > 1 {
        one_board_only(r)?;
    }
    let opts = crate::fleet::Opts {
        human: !r.capture.json,
        progress: (!r.capture.json || io::stderr().is_terminal()).then_some("tracing"),
    };
    if r.stap.backend == Backend::Audit {
        r.stap.only_for_stap()?;
        // Its usage errors once, not once per board.
        crate::audit::Audit::new(r)?;
        let stop = interrupt::install();
        interrupt::stop_when_stdout_closes();
        let outcome = crate::fleet::each(&boards, opts, |host, out| {
            let r = &for_board(r, host);
            let mut audit = crate::audit::Audit::new(r)?;
            if host == "local" {
                return deploy::run_local(r, &mut audit, stop);
            }
            deploy::run_to(r, host, &mut audit, stop, out)
        })?;
        return Ok(outcome.any_signal());
    }
    if r.stap.backend == Backend::Stap {
        let host = &boards[0];
        let r = &for_board(r, host);
        let stop = interrupt::install();
        interrupt::stop_when_stdout_closes();
        let mut stap = Stap::new(r, host)?;
        return deploy::run(r, host, &mut stap, stop);
    }
    r.stap.only_for_stap()?;
    let q = query::from_args(&r.query)?;
    // The agent records (it gets --stream), this side decodes
    // (crate::stream).
    let args = query::agent_args(&q, &r.capture)?;
    let choice = match r.stap.backend {
        Backend::Ebpf => Choice::Ebpf,
        Backend::Auto => Choice::Auto,
        _ => Choice::Ftrace,
    };
    if choice == Choice::Auto && r.agent.is_some() {
        return Err(HostError::Usage(
            "--agent names one agent, and --backend auto may pick the other: give --backend ftrace or --backend ebpf with it".into(),
        ));
    }
    // Created up front, so that a bad path fails before any board runs;
    // one board only (one_board_only).
    let save = std::sync::Mutex::new(
        r.capture
            .save
            .as_deref()
            .map(stream::create_save)
            .transpose()?,
    );
    let fold = !r.capture.json && !r.capture.every;
    // Storms folded in the kernel by the eBPF agent: not with --count,
    // which counts the agent's records.
    let kernel_fold = fold && r.capture.count.is_none();
    let stop = interrupt::install();
    interrupt::stop_when_stdout_closes();
    let outcome = crate::fleet::each(&boards, opts, |host, out| {
        let r = &for_board(r, host);
        let save = save.lock().unwrap_or_else(|p| p.into_inner()).take();
        let feed = stream::Feed::new(q.clone(), r.capture.count, save, fold)
            .until_exit(r.capture.until_exit);
        if host == "local" {
            // The probe only when there is a choice to make: it reads every
            // process's comm, a delay (0.5 s on a loaded machine) neither
            // agent's start need pay. The eBPF agent says itself, naming
            // the ftrace backend, when this kernel cannot run it.
            let kind = match choice {
                Choice::Ftrace => crate::build::Agent::Ftrace,
                Choice::Ebpf => crate::build::Agent::Ebpf,
                Choice::Auto => crate::agent::resolve(choice, &local::facts())?,
            };
            let agent = local::find_agent(kind, r.agent.as_deref())?;
            let mut args = args.clone();
            // Either agent records; the feed explains, counts, and ends
            // the capture at `--until-exit`.
            args.push("--stream".into());
            if kind == crate::build::Agent::Ebpf && kernel_fold {
                args.push("--fold".into());
            }
            return local::run(&agent, &args, r.sudo, r.capture.json, feed, stop);
        }
        let mut agent =
            Agent::choose(choice, args.clone(), r.agent.clone(), feed).fold(kernel_fold);
        deploy::run_to(r, host, &mut agent, stop, out)
    })?;
    Ok(outcome.any_signal())
}

/// The run's flags for one board: `--host` is that board.
fn for_board(r: &RunArgs, host: &str) -> RunArgs {
    RunArgs {
        ssh: r.ssh.for_board(host),
        ..r.clone()
    }
}

/// What takes one board: `--save` is one capture's stream, and a stap
/// module is built for one kernel (`--kernel-build`).
fn one_board_only(r: &RunArgs) -> Result<(), HostError> {
    let flag = if r.capture.save.is_some() {
        "--save FILE keeps one capture's stream"
    } else if r.stap.backend == Backend::Stap {
        "--backend stap builds its module for one kernel (--kernel-build)"
    } else {
        return Ok(());
    };
    Err(HostError::other(
        format!("{flag}, and several boards were given"),
        "give one --host for it, or leave it out",
    ))
}
