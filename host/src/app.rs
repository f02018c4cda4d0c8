//! Dispatch from the parsed command line to the modules that do the
//! work; returns the process exit status.

use crate::agent::{Agent, Choice};
use crate::cli::{Backend, Cli, Cmd, RunArgs};
use crate::error::HostError;
use crate::stap::backend::Stap;
use crate::{deploy, interrupt, local, offline, query, stream};
use std::io::{self, BufReader};
use std::path::PathBuf;

pub fn run(cli: Cli) -> Result<i32, HostError> {
    match cli.cmd {
        Some(Cmd::Parse(p)) => {
            let q = query::from_args(&p.query)?;
            let mut out = io::stdout().lock();
            if p.file == "-" {
                offline::parse(io::stdin().lock(), "stdin", &q, &mut out, p.json, p.every)
            } else {
                let path = PathBuf::from(&p.file);
                let f = std::fs::File::open(&path)
                    .map_err(|source| HostError::Input { path, source })?;
                offline::parse(BufReader::new(f), &p.file, &q, &mut out, p.json, p.every)
            }
        }
        Some(Cmd::Build(b)) => crate::build::command(&b),
        Some(Cmd::Doctor(d)) => crate::doctor::command(&d),
        Some(Cmd::Completions { shell }) => crate::completions::completions(&shell),
        Some(Cmd::Man) => crate::completions::man(),
        Some(Cmd::StapScript(s)) => {
            let q = query::from_args(&s.query)?;
            print!("{}", crate::stap::script::generate(&q, s.count)?);
            Ok(0)
        }
        None => trace(&cli.run),
    }
}

fn trace(r: &RunArgs) -> Result<i32, HostError> {
    let Some(host) = r.ssh.host.as_deref() else {
        return Err(HostError::Usage(
            "--host is required: a board ([USER@]HOST[:PORT]) or `local` for this machine".into(),
        ));
    };
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
    // Exit records come from the ftrace agent only (docs/ebpf.md).
    let choice = match (choice, r.capture.until_exit) {
        (Choice::Ebpf, true) => {
            return Err(HostError::Usage(
                "--until-exit needs exit records, which --backend ebpf does not write yet: use --backend ftrace".into(),
            ))
        }
        (Choice::Auto, true) => Choice::Ftrace,
        (c, _) => c,
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
        let kind = crate::agent::resolve(choice, &local::facts())?;
        let agent = local::find_agent(kind, r.agent.as_deref())?;
        let mut args = args;
        if kind == crate::build::Agent::Ftrace {
            args.push("--stream".into());
        }
        return local::run(&agent, &args, r.capture.json, feed, stop);
    }
    let mut agent = Agent::choose(choice, args, r.agent.clone(), feed);
    deploy::run(r, host, &mut agent, stop)
}
