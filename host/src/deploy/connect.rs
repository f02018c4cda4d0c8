//! Connecting to a board as ssh would: `~/.ssh/config`, known_hosts
//! checking, keys, then a password (`WHOSENT_PASSWORD`, or a prompt for
//! a person at a terminal).

use crate::cli::SshArgs;
use crate::error::HostError;
use crate::ssh::{self, Conn, ConnectOpts, HostKeyPolicy};
use std::io::{self, IsTerminal};
use std::time::Duration;

pub fn connect(a: &SshArgs) -> Result<(ssh::Target, Conn), HostError> {
    let host = a
        .host
        .as_deref()
        .ok_or_else(|| HostError::Usage("--host is required".into()))?;
    let target = ssh::resolve(
        host,
        a.port,
        a.user.as_deref(),
        &a.identity,
        a.ssh_config.as_deref(),
    )?;
    let mut opts = ConnectOpts {
        policy: if a.accept_new_host_key {
            HostKeyPolicy::AcceptNew
        } else {
            HostKeyPolicy::Strict
        },
        connect_timeout: Duration::from_secs(a.connect_timeout.max(1)),
        password: std::env::var("WHOSENT_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()),
        ..ConnectOpts::default()
    };
    if let Some(k) = &a.known_hosts {
        opts.known_hosts = k.clone();
    }
    match Conn::connect(&target, &opts) {
        Ok(c) => Ok((target, c)),
        // Keys failed and nobody gave a password: ask, but only a
        // person at a terminal; scripts get the error.
        Err(ssh::SshError::AuthFailed { .. })
            if opts.password.is_none() && io::stdin().is_terminal() =>
        {
            opts.password = Some(crate::password::prompt(&format!(
                "{}@{}'s password: ",
                target.user, target.host
            ))?);
            Ok((target.clone(), Conn::connect(&target, &opts)?))
        }
        Err(e) => Err(e.into()),
    }
}
