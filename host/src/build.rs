//! Cross-building the agent (issue #3).

use crate::cli::BuildArgs;
use crate::error::HostError;

pub fn command(_b: &BuildArgs) -> Result<i32, HostError> {
    Err(HostError::Usage("build is not implemented yet".into()))
}
