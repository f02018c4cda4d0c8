//! whosent-deploy's errors. Each has a help line telling the user what
//! to do; all of them exit with status 2.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HostError {
    #[error("{0}")]
    Usage(String),
    #[error("no local agent at {}", .0.display())]
    NoLocalAgent(PathBuf),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("cannot read {}: {source}", path.display())]
    Input {
        path: PathBuf,
        source: std::io::Error,
    },
    /// stdout failed, other than by its reader going away
    /// ([`crate::stdout`]).
    #[error("cannot write to stdout: {0}")]
    Output(#[source] std::io::Error),
    #[error("{0}")]
    Ssh(#[from] crate::ssh::SshError),
    #[error("{message}")]
    Other { message: String, help: String },
    /// Ctrl-C (or SIGTERM, SIGHUP) before tracing started.
    #[error("interrupted while {0}; nothing was traced")]
    Interrupted(&'static str),
}

/// The exit status of every error.
pub const EXIT_STATUS: i32 = 2;

impl HostError {
    pub fn other(message: impl Into<String>, help: impl Into<String>) -> HostError {
        HostError::Other {
            message: message.into(),
            help: help.into(),
        }
    }

    /// The one line main prints for this error on stderr.
    pub fn line(&self) -> String {
        format!("whosent-deploy: error: {self} (help: {})", self.help())
    }

    pub fn help(&self) -> String {
        match self {
            HostError::Usage(_) => "see `whosent-deploy --help`".into(),
            HostError::NoLocalAgent(p) => {
                let name = p
                    .file_name()
                    .map_or("whosent-agent".into(), |n| n.to_string_lossy());
                format!("build it with `cargo build -p {name}`, or pass --agent PATH")
            }
            HostError::Io(..) => "check the path and permissions".into(),
            HostError::Input { .. } => "give a readable file, or - for stdin".into(),
            HostError::Output(_) => {
                "send stdout where there is room (a file on a disk with space, a pipe)".into()
            }
            HostError::Ssh(e) => e.help().to_string(),
            HostError::Other { help, .. } => help.clone(),
            HostError::Interrupted(_) => {
                "nothing is left on the board (it removes what was uploaded by itself); run again to trace".into()
            }
        }
    }
}
