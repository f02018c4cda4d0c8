//! Connecting to a board as ssh would: `~/.ssh/config`, known_hosts
//! checking, keys, then a password (`WHOSENT_PASSWORD`, or a prompt for
//! a person at a terminal).

use crate::cli::SshArgs;
use crate::error::HostError;
use crate::ssh::{self, Alive, Conn, ConnectOpts, HostKeyPolicy};
use std::io::{self, IsTerminal};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Connects as `a` says; `stop` (Ctrl-C) drops the connection at once
/// until a stream starts.
pub fn connect(
    a: &SshArgs,
    stop: Option<&'static AtomicBool>,
) -> Result<(ssh::Target, Conn), HostError> {
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
    let alive = alive(
        &a.options,
        ssh::dest::alive_config(host, a.ssh_config.as_deref())?,
    )?;
    let mut opts = ConnectOpts {
        alive,
        stop,
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
        // Several boards would ask at once: then only WHOSENT_PASSWORD.
        Err(e)
            if ask_password(
                &e,
                opts.password.is_some(),
                io::stdin().is_terminal() && !crate::fleet::tag::in_fleet(),
            ) =>
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

/// The keepalive settings: `-o` beats ssh_config, as in ssh.
fn alive(options: &[String], config: (Option<u32>, Option<u32>)) -> Result<Alive, HostError> {
    let (mut interval, mut count) = (None, None);
    for o in options {
        let (k, v) = o
            .split_once('=')
            .or_else(|| o.trim().split_once(char::is_whitespace))
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| HostError::Usage(format!("-o '{o}': write -o KEY=VALUE")))?;
        let is_interval = k.eq_ignore_ascii_case("ServerAliveInterval");
        if !is_interval && !k.eq_ignore_ascii_case("ServerAliveCountMax") {
            return Err(HostError::Usage(format!(
                "-o {k}: whosent-deploy takes only ServerAliveInterval and ServerAliveCountMax \
                 with -o; use -p, -l, -i and --connect-timeout, or ~/.ssh/config"
            )));
        }
        let n = crate::ssh::config_alive_value(is_interval, v).map_err(HostError::Usage)?;
        let slot = if is_interval {
            &mut interval
        } else {
            &mut count
        };
        // The first value wins, as in ssh.
        slot.get_or_insert(n);
    }
    Ok(Alive::new(interval.or(config.0), count.or(config.1)))
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
    fn dash_o_sets_the_keepalives_over_ssh_config() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = alive(
            &o(&["ServerAliveInterval=2", "serveralivecountmax 4"]),
            (Some(9), Some(9)),
        );
        assert_eq!(a.unwrap().dead_after(), Duration::from_secs(10));
        let a = alive(&[], (Some(5), None)).unwrap();
        assert_eq!(a.dead_after(), Duration::from_secs(15));
        assert_eq!(alive(&[], (None, None)).unwrap(), Alive::default());
        for (bad, want) in [
            ("Port=22", "takes only ServerAliveInterval"),
            ("ServerAliveInterval=0", "at least 1"),
            ("ServerAliveCountMax=x", "not a whole number"),
            ("ServerAliveInterval", "-o KEY=VALUE"),
        ] {
            let e = alive(&o(&[bad]), (None, None)).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
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
