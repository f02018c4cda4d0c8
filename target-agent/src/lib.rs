//! whosent-agent as a library: the binary only parses arguments, calls
//! [`run::run`] and maps the outcome to an exit status.

// eprintln! and println! panic when the write fails, and the agent's
// panic aborts past the drops that clean up: see error::note.
#![deny(clippy::print_stderr, clippy::print_stdout)]

pub mod args;
pub mod audit;
pub mod capture;
pub mod drain;
pub mod elf;
pub mod error;
pub mod instance;
pub mod pidns;
pub mod proc_frames;
pub mod procfs;
pub mod reader;
pub mod record;
pub mod run;
pub mod segments;
pub mod spool;
pub mod stop;
pub mod tracefs;
pub mod uprobe;
