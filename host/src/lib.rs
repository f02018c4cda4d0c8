//! whosent-deploy as a library: the binary is glue over these modules.

pub mod agent;
pub mod app;
pub mod audit;
pub mod board;
pub mod build;
pub mod bundle;
pub mod cli;
pub mod completions;
pub mod deploy;
pub mod died;
pub mod doctor;
pub mod error;
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
