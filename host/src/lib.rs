//! whosent-deploy as a library: the binary is glue over these modules.

/// `eprintln!` as whosent-deploy writes stderr: marked with the board
/// when it is one of several ([`fleet::tag`]), and without a panic when
/// stderr is gone.
macro_rules! say {
    ($($t:tt)*) => {
        $crate::fleet::tag::line(format_args!($($t)*))
    };
}

pub mod agent;
pub mod app;
pub mod audit;
pub mod board;
pub mod bpf;
pub mod build;
pub mod bundle;
pub mod cli;
pub mod completions;
pub mod deploy;
pub mod detach;
pub mod died;
pub mod doctor;
pub mod error;
pub mod fleet;
pub mod fold;
pub mod interrupt;
pub mod local;
pub mod offline;
pub mod password;
pub mod progress;
pub mod query;
pub mod report;
pub mod session;
pub mod ssh;
pub mod stap;
pub mod stdout;
pub mod stream;
pub mod transport;
