//! The agent's errors: each has a stable kind (for the JSON `error`
//! record), a message, and a help line telling the user what to do.
//! All of them exit with status 2: they are environment or usage errors.

use std::fmt;
use std::io;

/// Boxed, so that a `Result` carrying it is two words: every `?` and
/// every return moves the error, and moving seven words at each of them
/// was ~3.3 KB of the agent (docs/agent-size.md).
#[derive(Debug)]
pub struct AgentError(Box<Details>);

#[derive(Debug)]
pub struct Details {
    pub kind: &'static str,
    pub message: String,
    pub help: String,
}

impl std::ops::Deref for AgentError {
    type Target = Details;
    fn deref(&self) -> &Details {
        &self.0
    }
}

impl AgentError {
    pub fn new(kind: &'static str, message: impl Into<String>, help: impl Into<String>) -> Self {
        AgentError(Box::new(Details {
            kind,
            message: message.into(),
            help: help.into(),
        }))
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new("usage", message, "see `whosent-agent --help`")
    }

    /// An I/O failure on a tracefs path; permission problems become the
    /// `not_root` error because that is what the user has to fix.
    pub fn io(what: &str, path: &str, e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::PermissionDenied => Self::not_root(path),
            _ if e.raw_os_error() == Some(libc::ENOSPC) => Self::new(
                "no_space",
                format!("{what} {path}: no space left on device"),
                "free memory or disk space on the board, or pass a smaller --buffer-kb",
            ),
            _ => Self::new(
                "io",
                format!("{what} {path}: {e}"),
                "check that tracefs is mounted and not in use by a tool that locks it",
            ),
        }
    }

    /// stdout failed for a reason other than its reader going away
    /// (which ends a capture as `output_closed`): a full disk, an I/O
    /// error. Records would be lost without a word, so it is an error.
    pub fn output(e: io::Error) -> Self {
        Self::new(
            "output",
            format!("cannot write to stdout: {e}"),
            "send stdout where there is room (a file on a disk with space, a pipe)",
        )
    }

    /// The error line on stderr (see [`note`]).
    pub fn say(&self) {
        note(format_args!(
            "whosent-agent: error: {} (help: {})",
            self.message, self.help
        ));
    }

    pub fn not_root(path: &str) -> Self {
        Self::new(
            "not_root",
            format!("permission denied on {path}: tracing needs root"),
            "run the agent as root (e.g. `sudo whosent-agent ...`), or use `whosent-deploy --sudo`",
        )
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AgentError {}

pub type Result<T> = std::result::Result<T, AgentError>;

/// A line on stderr, for a person at the board; one that stderr cannot
/// take is dropped. Never `eprintln!` (the crate denies it): it panics
/// when the write fails, and it does fail when the SSH connection
/// dropped while the agent starts (Ctrl-C on the host just then): the
/// server's end of the stderr pipe closes with it, and std ignores
/// SIGPIPE, so the write returns EPIPE. The agent is built with
/// `panic = "abort"`, so that panic skipped the drop that removes the
/// instance, and left it on the board (the board test
/// `ctrl_c_or_sigterm_at_every_stage...`; target-agent/tests/stderr_gone.rs).
pub fn note(args: fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(io::stderr(), "{args}");
}

/// `note!(...)`: [`note`] with `format!` arguments.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::error::note(format_args!($($arg)*))
    };
}
