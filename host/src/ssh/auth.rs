//! User authentication, in ssh's order: the agent, the keys given
//! (`-i`, `IdentityFile`), the default keys, then a password.
//!
//! Every attempt is recorded so that a failure can say what was tried.
//! Servers cut the connection after a few failed attempts (OpenSSH's
//! `MaxAuthTries`, 6 by default); when that happens the list says so.

use std::path::{Path, PathBuf};

use ssh2::{ErrorCode, KeyboardInteractivePrompt, Prompt, Session};

use super::dest::{home_dir, Target};
use super::SshError;

// libssh2's error codes (include/libssh2.h).
const ERROR_FILE: i32 = -16;
const ERROR_KEYFILE_AUTH_FAILED: i32 = -48;
const ERROR_AUTHENTICATION_FAILED: i32 = -18;
const ERROR_PUBLICKEY_UNVERIFIED: i32 = -19;
/// The codes that mean the connection is gone, not that one attempt
/// failed: SOCKET_SEND, TIMEOUT, SOCKET_DISCONNECT, SOCKET_TIMEOUT,
/// SOCKET_RECV, BAD_SOCKET.
const CONNECTION_LOST: [i32; 6] = [-7, -9, -13, -30, -43, -45];

/// The keys ssh tries when none is configured, in its order (DSA is
/// gone from OpenSSH).
const DEFAULT_KEYS: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

pub(crate) fn authenticate(
    session: &Session,
    target: &Target,
    password: Option<&str>,
) -> Result<(), SshError> {
    let user = target.user.as_str();
    let mut tried = Vec::new();
    let fail = |tried: Vec<String>| SshError::AuthFailed {
        user: user.to_string(),
        host: target.host.clone(),
        port: target.port,
        tried,
    };
    // The "none" method: asks which methods the server accepts, and is
    // enough on boards with empty root passwords.
    let methods = match session.auth_methods(user) {
        Ok(m) => m.to_string(),
        Err(_) if session.authenticated() => return Ok(()),
        Err(e) => {
            tried.push(format!("asking for methods: {}", e.message()));
            return Err(fail(tried));
        }
    };
    let offers = |m: &str| methods.split(',').any(|x| x == m);

    if offers("publickey") {
        if try_agent(session, user, &mut tried) || try_keys(session, target, &mut tried) {
            return Ok(());
        }
        if broken(&tried) {
            return Err(fail(tried));
        }
    } else {
        tried.push(format!(
            "public keys: the server does not accept them (it offers {methods})"
        ));
    }

    match password {
        None => tried.push("password: none given (set WHOSENT_PASSWORD)".into()),
        Some(pw) if offers("password") => match session.userauth_password(user, pw) {
            Ok(()) => return Ok(()),
            Err(e) => tried.push(format!("password: {}", outcome(&e))),
        },
        Some(pw) if offers("keyboard-interactive") => {
            let mut answer = AnswerWith(pw);
            match session.userauth_keyboard_interactive(user, &mut answer) {
                Ok(()) => return Ok(()),
                Err(e) => tried.push(format!("password (keyboard-interactive): {}", outcome(&e))),
            }
        }
        Some(_) => tried.push(format!(
            "password: the server does not accept passwords (it offers {methods})"
        )),
    }
    Err(fail(tried))
}

/// Tries each key the agent holds. A missing or broken agent is noted
/// and skipped.
fn try_agent(session: &Session, user: &str, tried: &mut Vec<String>) -> bool {
    if !matches!(std::env::var_os("SSH_AUTH_SOCK"), Some(s) if !s.is_empty()) {
        return false;
    }
    let mut agent = match session.agent() {
        Ok(a) => a,
        Err(e) => {
            tried.push(format!("ssh-agent: {}", e.message()));
            return false;
        }
    };
    let ids = agent
        .connect()
        .and_then(|()| agent.list_identities())
        .and_then(|()| agent.identities());
    let ids = match ids {
        Ok(ids) => ids,
        Err(e) => {
            tried.push(format!("ssh-agent: unavailable ({})", e.message()));
            return false;
        }
    };
    let mut ok = false;
    let mut rejected = 0;
    for id in &ids {
        match agent.userauth(user, id) {
            Ok(()) => {
                ok = true;
                break;
            }
            Err(e) if !connection_lost(&e) => rejected += 1,
            Err(e) => {
                tried.push(format!("ssh-agent key {}: {}", id.comment(), outcome(&e)));
                break;
            }
        }
    }
    let _ = agent.disconnect();
    if !ok {
        tried.push(match ids.len() {
            0 => "ssh-agent: holds no keys".to_string(),
            n => format!("ssh-agent: {rejected} of {n} keys rejected"),
        });
    }
    ok
}

/// Tries the configured keys, then the default ones that exist.
fn try_keys(session: &Session, target: &Target, tried: &mut Vec<String>) -> bool {
    let ssh_dir = home_dir().join(".ssh");
    let defaults = DEFAULT_KEYS
        .iter()
        .map(|k| ssh_dir.join(k))
        .filter(|p| p.is_file() && !target.identity_files.contains(p));
    let explicit = target.identity_files.iter().cloned();
    let keys: Vec<(PathBuf, bool)> = explicit
        .map(|p| (p, true))
        .chain(defaults.map(|p| (p, false)))
        .collect();
    for (key, is_explicit) in keys {
        if broken(tried) {
            return false;
        }
        if !key.is_file() {
            if is_explicit {
                tried.push(format!("key {}: no such file", key.display()));
            }
            continue;
        }
        let public = public_half(&key);
        match session.userauth_pubkey_file(&target.user, public.as_deref(), &key, None) {
            Ok(()) => return true,
            Err(e) => tried.push(format!("key {}: {}", key.display(), outcome(&e))),
        }
    }
    false
}

fn public_half(key: &Path) -> Option<PathBuf> {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    let p = PathBuf::from(p);
    p.is_file().then_some(p)
}

/// The server said no to this key or password.
fn refused(e: &ssh2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::Session(ERROR_AUTHENTICATION_FAILED | ERROR_PUBLICKEY_UNVERIFIED)
    )
}

fn connection_lost(e: &ssh2::Error) -> bool {
    matches!(e.code(), ErrorCode::Session(c) if CONNECTION_LOST.contains(&c))
}

const CUT_OFF: &str = "the server closed the connection";

fn outcome(e: &ssh2::Error) -> String {
    match e.code() {
        _ if refused(e) => "rejected by the server".into(),
        ErrorCode::Session(ERROR_FILE | ERROR_KEYFILE_AUTH_FAILED) => format!(
            "cannot load it ({}; passphrase-protected keys need ssh-agent: `ssh-add KEY`)",
            e.message()
        ),
        _ if connection_lost(e) => format!(
            "{CUT_OFF} ({}; too many failed attempts? pass only the right key with -i)",
            e.message()
        ),
        _ => e.message().to_string(),
    }
}

/// Whether an earlier attempt lost the connection; nothing after it can
/// work.
fn broken(tried: &[String]) -> bool {
    tried.iter().any(|t| t.contains(CUT_OFF))
}

/// Answers every keyboard-interactive prompt with the password.
struct AnswerWith<'a>(&'a str);

impl KeyboardInteractivePrompt for AnswerWith<'_> {
    fn prompt<'b>(
        &mut self,
        _user: &str,
        _instructions: &str,
        prompts: &[Prompt<'b>],
    ) -> Vec<String> {
        prompts.iter().map(|_| self.0.to_string()).collect()
    }
}
