//! From what the user typed to the host, port, user and keys to use.
//!
//! The destination is `[USER@]HOST[:PORT]`, with IPv6 addresses in
//! brackets when a port follows (`[::1]:2222`; a bare `::1` is a host
//! without port) and an optional `ssh://` prefix.
//!
//! Precedence, highest first, as ssh has it (the first value obtained
//! wins): the command-line flags `-p PORT` / `-l USER`, then the port and
//! user written in the destination, then `~/.ssh/config` (`Port`,
//! `User`, `HostName`, matched against the host as typed), then port 22
//! and the local user name. Keys: every `-i KEY` first, then the
//! config's `IdentityFile`s. See [`super::config`] for what is read.
//!
//! A jump host (`-J`, else the config's `ProxyJump`) is resolved the
//! same way, from its own config entry, into [`Target::jump`].

use std::ffi::CStr;
use std::path::{Path, PathBuf};

use super::{config, SshError};

/// Where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or address to connect to (after `HostName`), IPv6
    /// without brackets.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// `-i` keys, then `IdentityFile`s, `~` and `%` tokens expanded.
    /// The default keys (`~/.ssh/id_*`) are not listed; the connection
    /// tries them after these.
    pub identity_files: Vec<PathBuf>,
    /// The destination as the user typed it, for messages.
    pub alias: String,
    /// The jump host the board is reached through (`-J`, `ProxyJump`),
    /// itself possibly reached through another.
    pub jump: Option<Box<Target>>,
}

impl Target {
    /// `alias`, then ` via HOP` for each jump host, nearest first.
    pub fn route(&self) -> String {
        let mut s = self.alias.clone();
        let mut hop = self.jump.as_deref();
        while let Some(j) = hop {
            s.push_str(" via ");
            s.push_str(&j.alias);
            hop = j.jump.as_deref();
        }
        s
    }
}

/// The parts written in a destination string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Parses `[USER@]HOST[:PORT]`, `[USER@][V6ADDR]:PORT` and the same
/// with an `ssh://` prefix.
pub fn parse(dest: &str) -> Result<Destination, SshError> {
    let bad = |reason: &str| SshError::BadDestination {
        dest: dest.to_string(),
        reason: reason.to_string(),
    };
    let mut s = dest.trim();
    if let Some(rest) = s.strip_prefix("ssh://") {
        s = rest.strip_suffix('/').unwrap_or(rest);
    }
    // The last '@': user names may contain one, host names may not.
    let (user, hostport) = match s.rfind('@') {
        Some(at) => (Some(&s[..at]), &s[at + 1..]),
        None => (None, s),
    };
    // `user:password@host` (RFC 3986 userinfo). User names cannot hold
    // a ':' (it separates passwd(5) fields), so this is a password: it
    // is refused without being echoed, as it would be on screen, in
    // logs and in the shell's history.
    if user.is_some_and(|u| u.contains(':')) {
        return Err(SshError::PasswordInDestination);
    }
    if user == Some("") {
        return Err(bad("the user before '@' is empty"));
    }
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let close = rest.find(']').ok_or_else(|| bad("'[' without ']'"))?;
        let after = &rest[close + 1..];
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("expected ':PORT' after ']'"))?,
            ),
        };
        (&rest[..close], port)
    } else {
        match hostport.matches(':').count() {
            0 => (hostport, None),
            1 => {
                let (h, p) = hostport.split_once(':').expect("one colon");
                (h, Some(p))
            }
            // A bare IPv6 address: no port, as in ssh.
            _ => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    if host.starts_with('-') || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(bad("the host contains characters a host name cannot have"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or_else(|| bad(&format!("bad port '{p}'")))?),
    };
    Ok(Destination {
        user: user.map(str::to_string),
        host: host.to_string(),
        port,
    })
}

fn parse_port(p: &str) -> Option<u16> {
    p.parse::<u16>().ok().filter(|p| *p != 0)
}

/// Resolves a destination the way ssh would (see the module docs for
/// precedence). `config` replaces `~/.ssh/config`; a given file must
/// exist, the default one may not. No name lookup happens here.
pub fn resolve(
    dest: &str,
    port: Option<u16>,
    user: Option<&str>,
    identities: &[PathBuf],
    config: Option<&Path>,
) -> Result<Target, SshError> {
    resolve_via(dest, port, user, identities, config, None)
}

/// [`resolve`], reaching the board through `jump` (`-J
/// [USER@]HOST[:PORT][,HOST...]`) if given, else through the config's
/// `ProxyJump`, as ssh does: the command line beats the config.
pub fn resolve_via(
    dest: &str,
    port: Option<u16>,
    user: Option<&str>,
    identities: &[PathBuf],
    config: Option<&Path>,
    jump: Option<&str>,
) -> Result<Target, SshError> {
    resolve_at(dest, port, user, identities, config, jump, 0)
}

/// How many jump hops a route may have. ssh sets no limit, but a
/// `ProxyJump` loop in the config (gw's own entry naming gw) would
/// otherwise never end.
pub const MAX_HOPS: usize = 8;

fn resolve_at(
    dest: &str,
    port: Option<u16>,
    user: Option<&str>,
    identities: &[PathBuf],
    config: Option<&Path>,
    jump: Option<&str>,
    depth: usize,
) -> Result<Target, SshError> {
    let d = parse(dest)?;
    // `-l user:password` is the same mistake.
    if user.is_some_and(|u| u.contains(':')) {
        return Err(SshError::PasswordInDestination);
    }
    let default_config = home_dir().join(".ssh").join("config");
    let cfg = match config {
        Some(path) => config::lookup(path, &d.host)?,
        None if default_config.is_file() => config::lookup(&default_config, &d.host)?,
        None => config::HostConfig::default(),
    };
    // The first of ProxyJump and ProxyCommand wins, as in ssh; only
    // ProxyJump can be done without running a command.
    let jump_spec = match (jump, &cfg.proxy) {
        (Some(j), _) => Some(j.to_string()),
        (None, Some((_, _, _, value))) if value.eq_ignore_ascii_case("none") => None,
        (None, Some((path, line, keyword, _))) if keyword == "ProxyCommand" => {
            return Err(SshError::ConfigUnsupported {
                path: path.clone(),
                line: *line,
                keyword: keyword.clone(),
                alias: dest.to_string(),
            });
        }
        (None, Some((_, _, _, value))) => Some(value.clone()),
        (None, None) => None,
    };
    let jump = jump_spec
        .map(|spec| hops(&spec, config, depth).map(Box::new))
        .transpose()?;
    let host = match &cfg.hostname {
        Some(h) => expand_tokens(h, &[('h', &d.host)]),
        None => d.host.clone(),
    };
    let user = user
        .map(str::to_string)
        .or(d.user)
        .or(cfg.user)
        .unwrap_or_else(local_user);
    let port = port.or(d.port).or(cfg.port).unwrap_or(22);
    let home = home_dir();
    let home_s = home.to_string_lossy().into_owned();
    let local = local_user();
    let port_s = port.to_string();
    let tokens = [
        ('d', home_s.as_str()),
        ('h', host.as_str()),
        ('l', "localhost"),
        ('n', d.host.as_str()),
        ('p', port_s.as_str()),
        ('r', user.as_str()),
        ('u', local.as_str()),
    ];
    let mut identity_files: Vec<PathBuf> =
        identities.iter().map(|p| expand_tilde(p, &home)).collect();
    for f in &cfg.identity_files {
        if f.eq_ignore_ascii_case("none") {
            continue;
        }
        let p = expand_tilde(Path::new(&expand_tokens(f, &tokens)), &home);
        if !identity_files.contains(&p) {
            identity_files.push(p);
        }
    }
    Ok(Target {
        host,
        port,
        user,
        identity_files,
        alias: dest.to_string(),
        jump,
    })
}

/// The `ServerAliveInterval` and `ServerAliveCountMax` ssh_config gives
/// `dest` (the same file [`resolve`] reads), if it gives them.
pub fn alive_config(
    dest: &str,
    config: Option<&Path>,
) -> Result<(Option<u32>, Option<u32>), SshError> {
    let d = parse(dest)?;
    let default_config = home_dir().join(".ssh").join("config");
    let cfg = match config {
        Some(path) => config::lookup(path, &d.host)?,
        None if default_config.is_file() => config::lookup(&default_config, &d.host)?,
        None => config::HostConfig::default(),
    };
    Ok((cfg.alive_interval, cfg.alive_count))
}

/// A jump list, `[USER@]HOST[:PORT][,...]`, to the hop nearest the
/// board. Each hop is reached through the ones before it and resolved
/// through the config like any destination (its `User`, `Port`,
/// `HostName`, `IdentityFile`); the config's `ProxyJump` of a hop is
/// used only for the first one, as ssh turns `-J a,b` into `-J a` for
/// b. `-p`, `-l` and `-i` are the board's, not the hops'.
fn hops(spec: &str, config: Option<&Path>, depth: usize) -> Result<Target, SshError> {
    let bad = |reason: &str| SshError::BadDestination {
        dest: spec.to_string(),
        reason: reason.to_string(),
    };
    let list: Vec<&str> = spec.split(',').map(str::trim).collect();
    if list.iter().any(|h| h.is_empty()) {
        return Err(bad("an empty hop in the jump host list"));
    }
    let depth = depth + list.len();
    if depth > MAX_HOPS {
        return Err(bad(&format!(
            "more than {MAX_HOPS} jump hosts (a ProxyJump loop in the ssh config?)"
        )));
    }
    let (last, before) = list.split_last().expect("split gives one item");
    let via = (!before.is_empty()).then(|| before.join(","));
    resolve_at(last, None, None, &[], config, via.as_deref(), depth)
}

/// `%x` tokens of ssh_config; `%%` is a percent sign, unknown tokens
/// stay as written.
fn expand_tokens(s: &str, tokens: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(t) => match tokens.iter().find(|(k, _)| *k == t) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push('%');
                    out.push(t);
                }
            },
            None => out.push('%'),
        }
    }
    out
}

fn expand_tilde(p: &Path, home: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => p.to_path_buf(),
    }
}

/// `$HOME`, else the password database's home of the current uid.
pub fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    passwd_field(|pw| pw.pw_dir)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// `$USER`, else the current uid's name, else `root`.
pub fn local_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| passwd_field(|pw| pw.pw_name))
        .unwrap_or_else(|| "root".to_string())
}

/// A string field of the current uid's passwd entry.
fn passwd_field(field: fn(&libc::passwd) -> *mut libc::c_char) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value to be overwritten.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is
    // passed; on success `result` points at `pw`, whose strings point
    // into `buf`, both alive until the end of this function.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::getuid(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    let p = field(&pw);
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated, inside `buf`.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(user: Option<&str>, host: &str, port: Option<u16>) -> Destination {
        Destination {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn destinations_parse_like_ssh() {
        assert_eq!(parse("board").unwrap(), d(None, "board", None));
        assert_eq!(parse("root@board").unwrap(), d(Some("root"), "board", None));
        assert_eq!(parse("board:2222").unwrap(), d(None, "board", Some(2222)));
        assert_eq!(
            parse("root@127.0.0.1:2222").unwrap(),
            d(Some("root"), "127.0.0.1", Some(2222))
        );
        assert_eq!(parse("[::1]:2222").unwrap(), d(None, "::1", Some(2222)));
        assert_eq!(parse("u@[::1]").unwrap(), d(Some("u"), "::1", None));
        assert_eq!(parse("::1").unwrap(), d(None, "::1", None));
        assert_eq!(parse("a@b@host").unwrap(), d(Some("a@b"), "host", None));
        assert_eq!(
            parse("ssh://pi@board:22/").unwrap(),
            d(Some("pi"), "board", Some(22))
        );
    }

    #[test]
    fn bad_destinations_are_refused() {
        for bad in [
            "",
            "@host",
            "root@",
            "host:",
            "host:0",
            "host:99999",
            "host:x",
            "[::1",
            "[::1]x",
            "-oProxyCommand=x",
            "a b",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, SshError::BadDestination { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn a_password_in_the_destination_is_refused_and_never_echoed() {
        for dest in [
            "root:hunter2@board",
            "ssh://root:hunter2@board:22/",
            "root:hunter2@[::1]:2222",
            "root:hun@ter2@board",
            ":hunter2@board",
        ] {
            let e = parse(dest).unwrap_err();
            assert!(matches!(e, SshError::PasswordInDestination), "{dest}: {e}");
            let shown = format!("{e} {}", e.help());
            assert!(
                !shown.contains("hunter2") && !shown.contains("ter2"),
                "{shown}"
            );
            assert!(
                e.to_string().contains(
                    "passwords are not taken on the command line (use WHOSENT_PASSWORD or a key)"
                ),
                "{e}"
            );
        }
        // Colons elsewhere are ports and IPv6 addresses, as before.
        assert_eq!(parse("[::1]:22").unwrap(), d(None, "::1", Some(22)));
        assert_eq!(
            parse("user@[::1]:2222").unwrap(),
            d(Some("user"), "::1", Some(2222))
        );
        assert_eq!(parse("host:2222").unwrap(), d(None, "host", Some(2222)));
        assert_eq!(parse("u@fe80::1").unwrap(), d(Some("u"), "fe80::1", None));
    }

    #[test]
    fn tokens_expand() {
        let t = [('h', "pi.lan"), ('r', "root")];
        assert_eq!(expand_tokens("~/.ssh/%r@%h", &t), "~/.ssh/root@pi.lan");
        assert_eq!(expand_tokens("100%%", &t), "100%");
        assert_eq!(expand_tokens("%z", &t), "%z");
    }
}
