//! The command lines of `start`, `collect`, `stop` and `status`
//! (flattened into [`crate::cli::Cmd`]), with help that teaches.

use crate::cli::{QueryArgs, SshArgs};
use clap::Args;
use std::path::PathBuf;

pub const START_HELP: &str = "\
Deploys the agent as a live run does (the same connection, host key checks, build,
upload and sha256 check), then leaves it recording on the board, detached from the SSH
session: the capture goes on when the connection closes, whosent-deploy exits or the
workstation goes away. Prints the capture's id on stdout once it is live, and exits 0.

Its storage on the board never exceeds --max-size: when it fills, the oldest data is
deleted (a flight recorder) and counted as lost. It lives in <DIR>/whosent-cap-<ID>,
mode 0700: RAM-backed under /tmp by default, or persistent storage with --dir, which
keeps it across a reboot (the capture ends there, its data stays).

Examples:
  id=$(whosent-deploy start --host root@board --sig KILL)
  whosent-deploy start --host board --max-size 1M --dir /data --sig TERM --comm myapp
  whosent-deploy collect --host board --id \"$id\"      # what it recorded so far
  whosent-deploy status --host board                  # every capture on the board
  whosent-deploy stop --host board --id \"$id\"         # the rest, then nothing is left

docs/detached.md tells more.";

pub const COLLECT_HELP: &str = "\
Reads the capture's segments from the board (with cat: no scp or sftp needed) and
decodes them here, as a live run decodes its stream: the same lines, or with --json
the same records with the board's \"host\". Every collect prints all that the board
still holds, so running it again repeats what it printed and adds what is new; data
the capture deleted when its storage filled is reported as lost. --follow then prints
new records as they are recorded, until Ctrl-C or the capture's end (its --duration,
a stop). Each collect notes on the board where its records ended, for stop.

Exit status: 0 if a signal was reported, 1 if none was, 2 on errors (an unknown id,
an agent that died: its error record says so, and what it recorded is printed).";

pub const STOP_HELP: &str = "\
Stops the capture's agent (SIGTERM; it removes its ftrace instance and probe), prints
what no collect printed yet, then removes everything: what a dead agent left in the
kernel, the process and the capture's files. Exit status as collect's.";

pub const STATUS_HELP: &str = "\
One line per capture: its id, state (alive; starting; ended by --duration; died: its
agent was killed, e.g. kill -9 or the OOM killer, and its data can still be collected;
rebooted: the board restarted, which ended it), age, signal events recorded, events
lost to a full storage, storage used and query. --json: one `capture` record each
(docs/json-schema.md). A dead agent's leftovers in the kernel are removed. Exit
status 0 if there is a capture, 1 if there is none.";

/// Where the board's captures are.
#[derive(Debug, Args, Clone, Default)]
pub struct OnBoard {
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Run through sudo (for a sudo-capable, non-root login): the captures are root's
    #[arg(long, help_heading = "Board")]
    pub sudo: bool,
    /// The directory on the board that holds the captures (give the same to every command)
    #[arg(long, value_name = "DIR", default_value = super::DEFAULT_DIR, help_heading = "Capture")]
    pub dir: String,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub on: OnBoard,
    /// Board architecture: aarch64 (arm64), armv7 (arm, armhf), x86_64 [default: from `uname -m`]
    #[arg(long, value_name = "TARGET", help_heading = "Board")]
    pub target: Option<String>,
    /// Use this prebuilt agent instead of building one (its ELF header is checked)
    #[arg(long, value_name = "PATH", help_heading = "Board")]
    pub agent: Option<PathBuf>,
    #[command(flatten)]
    pub query: QueryArgs,
    /// The most the capture may store on the board: bytes, or K, M, G (binary: 1M is 1 MiB); at least 64K
    #[arg(
        long,
        value_name = "SIZE",
        default_value = "8M",
        help_heading = "Capture"
    )]
    pub max_size: String,
    /// Stop recording after SECS seconds (the data stays until `stop`)
    #[arg(long, value_name = "SECS", help_heading = "Capture")]
    pub duration: Option<f64>,
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub on: OnBoard,
    /// The capture, as `start` printed its id (may be left out when the board has one)
    #[arg(long, value_name = "ID", help_heading = "Capture")]
    pub id: Option<String>,
    /// Print JSON Lines records instead of one line per signal
    #[arg(long, help_heading = "Capture")]
    pub json: bool,
    /// Print every signal of a storm; by default a run of identical ones is printed once with its count
    #[arg(long, help_heading = "Capture")]
    pub every: bool,
    /// Then print new records as they are recorded, until Ctrl-C (or the capture ends)
    #[arg(long, short = 'f', help_heading = "Capture")]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub on: OnBoard,
    /// The capture, as `start` printed its id (may be left out when the board has one)
    #[arg(long, value_name = "ID", help_heading = "Capture")]
    pub id: Option<String>,
    /// Print JSON Lines records instead of one line per signal
    #[arg(long, help_heading = "Capture")]
    pub json: bool,
    /// Print every signal of a storm
    #[arg(long, help_heading = "Capture")]
    pub every: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub on: OnBoard,
    /// One JSON record per capture
    #[arg(long, help_heading = "Capture")]
    pub json: bool,
}
