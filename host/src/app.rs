//! Dispatch from the parsed command line to the modules that do the
//! work; returns the process exit status.

use crate::cli::{Backend, Cli, Cmd, RunArgs};
use crate::error::HostError;
use crate::report::Report;
use crate::{interrupt, local, offline, query, stream};
use std::io::{self, BufReader, IsTerminal};
use std::path::PathBuf;

pub fn run(cli: Cli) -> Result<i32, HostError> {
    match cli.cmd {
        Some(Cmd::Parse(p)) => {
            let q = query::from_args(&p.query)?;
            let mut report = Report::new(io::stdout().lock(), p.json, None);
            report.quiet = true;
            let mut input: Box<dyn io::BufRead> = if p.file == "-" {
                Box::new(io::stdin().lock())
            } else {
                let path = PathBuf::from(&p.file);
                let f = std::fs::File::open(&path)
                    .map_err(|source| HostError::Input { path, source })?;
                Box::new(BufReader::new(f))
            };
            // A saved capture stream (`--save`) is told by its magic.
            if stream::detect(&mut input)? {
                stream::parse(input, &q, &mut report, !p.json && !p.every)?;
            } else {
                offline::parse(input, &q, &mut report)?;
            }
            Ok(report.status(0))
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
        return crate::stap::run::run(r, host, stop);
    }
    stap_flags_need_stap(r)?;
    let q = query::from_args(&r.query)?;
    let mut args = query::agent_args(&q, &r.capture)?;
    // The agent records; this side decodes (crate::stream).
    args.push("--stream".into());
    let save = r
        .capture
        .save
        .as_deref()
        .map(stream::create_save)
        .transpose()?;
    let stop = interrupt::install();
    interrupt::stop_when_stdout_closes();
    if host == "local" {
        let agent = local::find_agent(r.agent.as_deref())?;
        let mut report = Report::new(io::stdout().lock(), r.capture.json, None);
        report.quiet = !io::stderr().is_terminal() && r.capture.json;
        let fold = !r.capture.json && !r.capture.every;
        let feed = stream::Feed::new(&mut report, q, r.capture.count, save, fold);
        let status = local::run(&agent, &args, feed, stop)?;
        return Ok(report.status(status));
    }
    crate::remote::run(r, host, &args, (q, save), stop)
}

/// The SystemTap flags mean nothing to the ftrace agent: say so rather
/// than ignore them.
fn stap_flags_need_stap(r: &RunArgs) -> Result<(), HostError> {
    let s = &r.stap;
    let given = [
        ("--kernel-build", s.kernel_build.is_some()),
        ("--sysroot", s.sysroot.is_some()),
        ("--staprun-bundle", s.staprun_bundle.is_some()),
        ("-R/--stap-runtime", s.stap_runtime.is_some()),
        ("-D", !s.define.is_empty()),
    ];
    match given.iter().find(|(_, g)| *g) {
        Some((flag, _)) => Err(HostError::Usage(format!(
            "{flag} is for --backend stap; add --backend stap, or drop it for the ftrace agent"
        ))),
        None => Ok(()),
    }
}
