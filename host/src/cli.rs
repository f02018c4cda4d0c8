//! The command line of whosent-deploy (clap derive). Long help lives in
//! constants so that `--help` teaches; flags are grouped by heading.

use crate::error::HostError;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

/// The stap backend owns its flags; they are flattened into [`RunArgs`].
pub use crate::stap::flags::StapArgs;

/// The detached captures own their flags (`start`, `collect`, `stop`, `status`).
use crate::detach::args as detach;

const ABOUT: &str = "Who sent that signal? Cross-builds a small static agent, pushes it to a \
board over SSH, traces signal:signal_generate there and prints who sent which signal to whom.";

const AFTER_HELP: &str = "\
Examples:
  whosent-deploy --host root@board.local --sig KILL --pid 1234
  whosent-deploy --target aarch64 --host board -p 2222 -i ~/.ssh/lab --count 1 --json
  whosent-deploy --host local --sig TERM --duration 10      # this machine, no SSH
  whosent-deploy --host board-a --host root@10.0.0.7 --sig KILL   # two boards at once
  whosent-deploy --hosts lab.txt -J gw --sig KILL --json    # the boards in lab.txt, through gw
  whosent-deploy doctor --host board                        # what the board has and lacks
  whosent-deploy parse trace.dat                            # decode a trace-cmd trace.dat or ftrace text
  whosent-deploy parse /var/log/audit/audit.log             # the kill() calls auditd recorded
  whosent-deploy build --target armv7                       # just cross-build the agent
  whosent-deploy --backend stap --host board --kernel-build DIR --staprun-bundle FILE --sig KILL
  whosent-deploy --backend audit --host board --sig KILL     # the board's audit subsystem
  whosent-deploy stap-script --sig TERM --pid 1234          # the script, to run stap yourself
  whosent-deploy start --host board --sig KILL              # a detached capture: prints its id
  whosent-deploy collect --host board --id ID               # what it recorded; `stop` ends it

Output: one line per signal, e.g.
  SIGKILL: test_sender(6993) -> test_receiver(6985)  code=SI_USER  delivered
The sender is the task that was running when the kernel generated the signal; in
interrupt context no task is credited. --json prints the agent's JSON Lines records
(docs/json-schema.md).

--backend audit reads the board's audit records instead (kernels with CONFIG_AUDITSYSCALL
but no signal tracepoints): it adds its own rules over the audit netlink socket, reads
beside auditd (or as the audit daemon when none runs) and removes exactly its rules on
every way out. Audit sees only signals sent by system calls (kill, tkill, tgkill, sigqueue,
rt_tgsigqueueinfo, pidfd_send_signal): the kernel's own (OOM killer, faults, timers, tty
hangups, SIGPIPE) never reach it, so its records all have cause kill. A process started
while audit was disabled is never audited (a task gets its audit context at fork, only
while audit is enabled); when the backend has to enable audit it says so, and from then
until reboot new processes make slower system calls. Boot with audit=1 to see every process. The same logs, recorded by auditd: `parse audit.log`.

Several boards: repeat --host, or list them in a file (--hosts FILE, one destination
per line, `#` comments); they are traced in parallel, each over its own connection
(all through the same -J jump host if one is given). Each human line then starts with
the board's name as given (`root@10.0.0.5: SIGKILL: ...`), also on stderr; JSON records
carry it as `host`. A board that cannot be reached says so in one line with its name,
and the others go on; Ctrl-C stops every board. `--host local` runs alone, and --save
and --backend stap take one board. Progress while they start: `whosent: 2/3 boards tracing`.

Exit status: 0 if a signal was reported, 1 if none was, 2 on usage or environment errors.
With several boards: 0 if any board reported a signal, 2 if every board failed, else 1.";

#[derive(Debug, Parser)]
#[command(name = "whosent-deploy", version, about = ABOUT, after_help = AFTER_HELP)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Cross-compile the agent for a target and print its path
    Build(BuildArgs),
    /// Decode a recorded trace (ftrace text, trace-cmd's trace.dat v6/v7, or an audit log) into whosent records
    Parse(ParseArgs),
    /// Check what a board has and lacks for tracing, with the fix for each gap
    Doctor(DoctorArgs),
    /// Print the SystemTap script for a query (the query is in its globals' initial values)
    StapScript(StapScriptArgs),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell
    Completions {
        #[arg(value_name = "SHELL")]
        shell: String,
    },
    /// Print the man page (roff): `whosent-deploy man | man -l -`
    Man,
    /// Start a detached capture: the agent records on the board with no SSH session open; prints its id
    #[command(after_help = detach::START_HELP)]
    Start(Box<detach::StartArgs>),
    /// Print what a detached capture recorded so far, as a live run prints it
    #[command(after_help = detach::COLLECT_HELP)]
    Collect(detach::CollectArgs),
    /// End a detached capture: print what was not collected, remove everything it left
    #[command(after_help = detach::STOP_HELP)]
    Stop(detach::StopArgs),
    /// List the board's detached captures: id, state, age, events, lost, storage
    #[command(after_help = detach::STATUS_HELP)]
    Status(detach::StatusArgs),
}

/// What to watch. Repeat a flag to match any of its values; different
/// flags must all match.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Query")]
pub struct QueryArgs {
    /// Signal, as `kill -l` names it: KILL, SIGKILL, kill, 9, RTMIN+3
    #[arg(short = 's', long = "sig", value_name = "SIG")]
    pub sig: Vec<String>,
    /// Target process id (as seen on the board)
    #[arg(long, value_name = "PID")]
    pub pid: Vec<String>,
    /// Target command name, as in /proc/PID/comm
    #[arg(long, value_name = "NAME")]
    pub comm: Option<String>,
    /// Sending process id
    #[arg(long, value_name = "PID")]
    pub sender_pid: Vec<String>,
    /// Sending command name
    #[arg(long, value_name = "NAME")]
    pub sender_comm: Option<String>,
    /// --pid and --sender-pid are pids inside the pid namespace of process PID (as seen on the board)
    #[arg(long, value_name = "PID")]
    pub pid_ns: Option<String>,
    /// What generated it: kill, oom, cpu_limit, file_size_limit, timer, fault, pipe, child_exit, parent_exit, tty_hangup, pidns_exit, kernel (e.g. `--cause oom` for OOM kills only)
    #[arg(long, value_name = "CAUSE")]
    pub cause: Vec<String>,
}

#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Capture")]
pub struct CaptureArgs {
    /// Stop after N signals
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after SECS seconds
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Print the agent's JSON Lines records instead of one line per signal
    #[arg(long)]
    pub json: bool,
    /// Also write the capture stream to FILE as it is recorded (read it back with `parse FILE`)
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Print every signal of a storm; by default a run of identical ones is printed once with its count
    #[arg(long)]
    pub every: bool,
    /// Stop when every --pid target has ended (its `exit` record says how)
    #[arg(long)]
    pub until_exit: bool,
}

#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Connection (ssh-like)")]
pub struct SshArgs {
    /// The board: [USER@]HOST[:PORT], a ~/.ssh/config alias, or `local` for this machine;
    /// repeat it for several boards, traced in parallel (see "Several boards" below)
    #[arg(long = "host", short = 'H', value_name = "HOST")]
    pub boards: Vec<String>,
    /// More boards, one destination per line as --host takes it (`#` comments, blank lines
    /// skipped); with any --host
    #[arg(long = "hosts", value_name = "FILE")]
    pub hosts_file: Option<PathBuf>,
    /// The one board being acted on: the `--host` when there is one,
    /// else set for each board by [`crate::fleet`].
    #[arg(skip)]
    pub host: Option<String>,
    /// SSH port (beats :PORT and ~/.ssh/config)
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Option<u16>,
    /// Reach the board through this jump host, as `ssh -J` does (beats ProxyJump in
    /// ~/.ssh/config); several, nearest first, separated by commas
    #[arg(short = 'J', long = "jump", value_name = "[USER@]HOST[:PORT]")]
    pub jump: Option<String>,
    /// SSH user (beats USER@ and ~/.ssh/config)
    #[arg(short = 'l', long = "login", value_name = "USER")]
    pub user: Option<String>,
    /// Private key to try (repeatable); the ssh-agent and ~/.ssh/id_* are tried too
    #[arg(short = 'i', long = "identity", value_name = "KEY")]
    pub identity: Vec<PathBuf>,
    /// known_hosts file to verify the board's host key against [default: ~/.ssh/known_hosts]
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Record the host key of a board seen for the first time (a changed key is always refused)
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// ssh_config file to read [default: ~/.ssh/config]
    #[arg(short = 'F', long = "ssh-config", value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Seconds to wait for the connection
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub connect_timeout: u64,
    /// An ssh_config option, as ssh takes it; ServerAliveInterval=SECS and ServerAliveCountMax=N (how soon a dead link is given up: SECS × (N+1), default 10 × 3) are the ones read
    #[arg(short = 'o', value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

impl SshArgs {
    /// A single `--host` (no `--hosts`) is the board acted on.
    pub fn settle(&mut self) {
        if let ([one], None) = (&self.boards[..], &self.hosts_file) {
            self.host = Some(one.clone());
        }
    }

    /// These flags for one board of several.
    pub fn for_board(&self, board: &str) -> SshArgs {
        SshArgs {
            host: Some(board.to_string()),
            ..self.clone()
        }
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Board architecture: aarch64 (arm64), armv7 (arm, armhf), x86_64 [default: from `uname -m`]
    #[arg(long, value_name = "TARGET", help_heading = "Board")]
    pub target: Option<String>,
    /// Run the agent through sudo (for a sudo-capable, non-root login)
    #[arg(long, help_heading = "Board")]
    pub sudo: bool,
    /// Use this prebuilt agent instead of building one (its ELF header is checked)
    #[arg(long, value_name = "PATH", help_heading = "Board")]
    pub agent: Option<PathBuf>,
    /// Keep the uploaded agent (or stap module and staprun) on the board; a later run with the same payload skips the upload
    #[arg(long, help_heading = "Board")]
    pub keep: bool,
    #[command(flatten)]
    pub query: QueryArgs,
    #[command(flatten)]
    pub capture: CaptureArgs,
    #[command(flatten)]
    pub stap: StapArgs,
}

/// How the board traces signals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The static whosent agent on the board's tracefs
    #[default]
    Ftrace,
    /// A SystemTap module cross-compiled here and loaded with staprun on the board
    Stap,
    /// The static whosent eBPF agent: the sender's ids read in the kernel (Linux 5.2+, CONFIG_BPF_SYSCALL, CONFIG_BPF_EVENTS)
    Ebpf,
    /// ebpf where the board's kernel can run it, else ftrace
    Auto,
    /// The board's audit subsystem: kill system calls only (see the notes at the end of --help)
    Audit,
}

#[derive(Debug, Args)]
pub struct StapScriptArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// Stop after N signals (the script's max_events)
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// aarch64 (arm64), armv7 (arm, armhf, armv7l) or x86_64
    #[arg(long, value_name = "TARGET")]
    pub target: String,
    /// How to build: the local Rust toolchain (default) or `cross` (containers)
    #[arg(long, value_name = "BUILDER", default_value = "local")]
    pub builder: String,
    /// Build the eBPF agent (whosent-ebpf-agent, for --backend ebpf) instead of the ftrace agent
    #[arg(long)]
    pub ebpf: bool,
}

#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The recorded trace (ftrace text, trace.dat, a saved stream or an audit log/ausearch output, told apart by content), or - for stdin
    #[arg(value_name = "FILE")]
    pub file: String,
    #[command(flatten)]
    pub query: QueryArgs,
    /// Print JSON Lines records instead of one line per signal
    #[arg(long)]
    pub json: bool,
    /// Print every signal of a storm (saved streams); by default a run of identical ones is printed once with its count
    #[arg(long)]
    pub every: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Check through sudo
    #[arg(long)]
    pub sudo: bool,
}

/// The command line, with the checks clap cannot express: a signal
/// written `--sig -9`, and connection flags given with `--host local`.
/// Help, version and clap's own errors exit as clap makes them (status
/// 2 for errors).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, HostError> {
    let args: Vec<OsString> = args.into_iter().collect();
    negative_sig(&args)?;
    let m = match Cli::command().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => match clap_exit(e)? {},
    };
    let mut cli = Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
    cli.run.ssh.settle();
    if let Some(Cmd::Doctor(d)) = &mut cli.cmd {
        d.ssh.settle();
    }
    if cli.cmd.is_none() && cli.run.ssh.host.as_deref() == Some("local") {
        not_for_local(&m)?;
    }
    Ok(cli)
}

/// clap's own exit, but --help and --version, which go to stdout, are
/// written checked, as every print path is: clap's exit ignores a
/// failed write (a full stdout exited 0). The error is that failure.
fn clap_exit(e: clap::Error) -> Result<std::convert::Infallible, HostError> {
    if e.use_stderr() {
        e.exit()
    }
    let text = e.render();
    let out = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        text.ansi().to_string()
    } else {
        text.to_string()
    };
    crate::stdout::print(out.as_bytes())?;
    std::process::exit(0)
}

/// `--sig -9` (a space, as `kill -9` has none): clap takes `-9` for a
/// flag and answers with its six-line usage. Say how to write it.
fn negative_sig(args: &[OsString]) -> Result<(), HostError> {
    for w in args.windows(2) {
        let (Some(flag), Some(v)) = (w[0].to_str(), w[1].to_str()) else {
            continue;
        };
        if !matches!(flag, "-s" | "--sig") {
            continue;
        }
        if let Some(sig) = v.strip_prefix('-') {
            if whosent_proto::signal::parse(sig).is_ok() {
                return Err(HostError::Usage(format!(
                    "{flag} {v}: a value that starts with '-' is read as a flag; \
                     write {flag}={v} or {flag} {sig}"
                )));
            }
        }
    }
    Ok(())
}

/// Flags that only mean something for a board over SSH, by clap id, as
/// the user writes them.
const SSH_ONLY: &[(&str, &str)] = &[
    ("target", "--target"),
    ("port", "-p/--port"),
    ("user", "-l/--login"),
    ("identity", "-i/--identity"),
    ("known_hosts", "--known-hosts"),
    ("accept_new_host_key", "--accept-new-host-key"),
    ("ssh_config", "-F/--ssh-config"),
    ("connect_timeout", "--connect-timeout"),
    ("jump", "-J/--jump"),
    ("keep", "--keep"),
];

/// `--host local` runs the agent here, without SSH and without an
/// upload: a connection flag given with it is a mistake (the user meant
/// a board), not something to ignore.
fn not_for_local(m: &ArgMatches) -> Result<(), HostError> {
    let given: Vec<&str> = SSH_ONLY
        .iter()
        .filter(|(id, _)| m.value_source(id) == Some(ValueSource::CommandLine))
        .map(|(_, flag)| *flag)
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(HostError::other(
        format!(
            "{} {} nothing with --host local (this machine, no SSH, no upload)",
            given.join(", "),
            if given.len() == 1 { "means" } else { "mean" }
        ),
        "leave it out, or give a board with --host [USER@]HOST",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(a: &[&str]) -> Result<Cli, HostError> {
        parse(
            std::iter::once("whosent-deploy")
                .chain(a.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn sig_minus_9_with_a_space_says_how_to_write_it() {
        for (a, want) in [
            (["--sig", "-9"], "write --sig=-9 or --sig 9"),
            (["-s", "-KILL"], "write -s=-KILL or -s KILL"),
        ] {
            let e = parse_str(&a).unwrap_err();
            assert!(matches!(e, HostError::Usage(_)), "{e:?}");
            assert!(e.line().contains(want), "{}", e.line());
        }
        let ok = parse_str(&["--host", "b", "--sig=-9"]).unwrap();
        assert_eq!(ok.run.query.sig, ["-9"]);
    }

    #[test]
    fn ssh_flags_with_host_local_are_refused_by_name() {
        for (a, want) in [
            (
                &["--target", "aarch64"][..],
                "--target means nothing with --host local",
            ),
            (&["-p", "22"], "-p/--port means"),
            (&["-i", "/k"], "-i/--identity means"),
            (&["--keep", "-l", "u"], "-l/--login, --keep mean nothing"),
            (&["--connect-timeout", "10"], "--connect-timeout means"),
            (&["--accept-new-host-key"], "--accept-new-host-key means"),
        ] {
            let args: Vec<&str> = ["--host", "local"].iter().chain(a).copied().collect();
            let e = parse_str(&args).unwrap_err();
            assert!(e.line().contains(want), "{a:?}: {}", e.line());
        }
        // The same flags are fine for a board, and --host local alone is.
        assert!(parse_str(&["--host", "b", "-p", "22", "--keep", "--target", "x86_64"]).is_ok());
        assert!(parse_str(&["--host", "local", "--sig", "KILL", "--sudo"]).is_ok());
    }
}
