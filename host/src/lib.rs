//! whosent-deploy as a library: the binary is glue over these modules.

pub mod ssh;
