//! Dispatch from the parsed command line to the modules that do the
//! work; returns the process exit status.

use crate::agent::{Agent, Choice};
use crate::cli::{Backend, Cli, Cmd, RunArgs, SshArgs};
use crate::error::HostError;
use crate::stap::backend::Stap;
use crate::{deploy, interrupt, local, offline, query, stream};
use std::io::{self, BufReader};
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
            identities(&d.ssh)?;
            crate::doctor::command(&d)
        }
        Some(Cmd::Completions { shell }) => crate::completions::completions(&shell),
        Some(Cmd::Man) => crate::completions::man(),
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
fn identities(ssh: &SshArgs) -> Result<(), HostError> {
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
    let Some(host) = r.ssh.host.as_deref() else {
        return Err(HostError::Usage(
            "--host is required: a board ([USER@]HOST[:PORT]) or `local` for this machine".into(),
        ));
    };
    identities(&r.ssh)?;
    if r.stap.backend == Backend::Audit {
        r.stap.only_for_stap()?;
        let stop = interrupt::install();
        interrupt::stop_when_stdout_closes();
        let mut audit = crate::audit::Audit::new(r)?;
        if host == "local" {
            return deploy::run_local(r, &mut audit, stop);
        }
        return deploy::run(r, host, &mut audit, stop);
    }
    if r.stap.backend == Backend::Stap {
        let stop = interrupt::install();
        interrupt::stop_when_stdout_closes();
        let mut stap = Stap::new(r, host)?;
        return deploy::run(r, host, &mut stap, stop);
    }
    r.stap.only_for_stap()?;
    let q = query::from_args(&r.query)?;
    // The ftrace agent records (it gets --stream), this side decodes
    // (crate::stream); the eBPF agent writes records.
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
    let save = r
        .capture
        .save
        .as_deref()
        .map(stream::create_save)
        .transpose()?;
    let fold = !r.capture.json && !r.capture.every;
    let feed = stream::Feed::new(q, r.capture.count, save, fold).until_exit(r.capture.until_exit);
    let stop = interrupt::install();
    interrupt::stop_when_stdout_closes();
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
        let mut args = args;
        if kind == crate::build::Agent::Ftrace {
            args.push("--stream".into());
        } else if r.capture.until_exit {
            // The eBPF agent writes the records, and ends the capture.
            args.push("--until-exit".into());
        }
        return local::run(&agent, &args, r.sudo, r.capture.json, feed, stop);
    }
    let mut agent =
        Agent::choose(choice, args, r.agent.clone(), feed).until_exit(r.capture.until_exit);
    deploy::run(r, host, &mut agent, stop)
}
