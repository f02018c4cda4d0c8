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
    let target = ssh::resolve_via(
        host,
        a.port,
        a.user.as_deref(),
        &a.identity,
        a.ssh_config.as_deref(),
        a.jump.as_deref(),
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
        Err(e) if ask_password(&e, opts.password.is_some(), io::stdin().is_terminal()) => {
            opts.password = Some(crate::password::prompt(&format!(
                "{}@{}'s password: ",
                target.user, target.host
            ))?);
            Ok((target.clone(), Conn::connect(&target, &opts)?))
        }
        Err(e) => Err(e.into()),
    }
}

/// Keys failed and nobody gave a password: ask, but only a person at a
/// terminal; scripts get the error.
fn ask_password(e: &ssh::SshError, password_given: bool, tty: bool) -> bool {
    matches!(e, ssh::SshError::AuthFailed { .. }) && !password_given && tty
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HostError;

    fn auth_failed() -> ssh::SshError {
        ssh::SshError::AuthFailed {
            user: "user".into(),
            host: "board".into(),
            port: 2222,
            tried: vec![
                "agent: no identities".into(),
                "key ~/.ssh/id_ed25519: refused".into(),
            ],
        }
    }

    #[test]
    fn a_failed_login_asks_a_person_for_a_password_once() {
        assert!(ask_password(&auth_failed(), false, true));
        // A script gets the error; so does a wrong WHOSENT_PASSWORD.
        assert!(!ask_password(&auth_failed(), false, false));
        assert!(!ask_password(&auth_failed(), true, true));
        let refused = ssh::SshError::ConnectRefused {
            addr: "127.0.0.1:2222".parse().unwrap(),
        };
        assert!(!ask_password(&refused, false, true));
    }

    #[test]
    fn a_failed_login_is_one_line_with_what_was_tried_and_what_to_do() {
        let e = HostError::from(auth_failed());
        assert_eq!(
            e.line(),
            "whosent-deploy: error: authentication as 'user' on board:2222 failed; tried: \
             agent: no identities; key ~/.ssh/id_ed25519: refused (help: pass the right key \
             with -i KEY, install yours on the board with `ssh-copy-id -p 2222 user@board`, \
             or set WHOSENT_PASSWORD to log in with a password)"
        );
    }
}
