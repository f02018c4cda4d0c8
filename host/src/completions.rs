//! Shell completions and the man page, generated from the same clap
//! definition as the parser, so they cannot drift from the flags.

use crate::cli::Cli;
use crate::error::HostError;
use clap::CommandFactory;
use clap_complete::Shell;

/// `whosent-deploy completions SHELL`: the script on stdout.
pub fn completions(shell: &str) -> Result<i32, HostError> {
    let sh: Shell = shell.parse().map_err(|_| {
        HostError::Usage(format!(
            "unknown shell '{shell}': use bash, zsh, fish, elvish or powershell"
        ))
    })?;
    let mut cmd = Cli::command();
    // Into a buffer, then out checked: clap_complete panics when its
    // writer fails (a full stdout).
    let mut buf = Vec::new();
    clap_complete::generate(sh, &mut cmd, "whosent-deploy", &mut buf);
    crate::stdout::print(&buf)?;
    Ok(0)
}

/// `whosent-deploy man`: roff on stdout (`whosent-deploy man | man -l -`).
pub fn man() -> Result<i32, HostError> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buf)
        .map_err(|e| HostError::Io("rendering the man page".into(), e))?;
    crate::stdout::print(&buf)?;
    Ok(0)
}
