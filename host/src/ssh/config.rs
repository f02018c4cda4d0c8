//! The part of `ssh_config(5)` that decides where a destination leads.
//!
//! Read: `Host` (patterns with `*` and `?`, `!` negation, several per
//! line), `Match all` / `Match host` / `Match originalhost` (any other
//! criterion makes the block not apply), `HostName`, `User`, `Port`,
//! `IdentityFile` (all of them, in order), `ProxyJump`/`ProxyCommand`
//! (the first of them; `dest` follows a ProxyJump through
//! [`super::jump`] and refuses a ProxyCommand, unless `none`),
//! `ServerAliveInterval`, `ServerAliveCountMax` (see [`super::alive`]),
//! and `Include` (relative paths are under
//! `~/.ssh`, globs in the last path component). Every other keyword is
//! ignored. As in ssh, the first value obtained for a keyword wins, and
//! only the user's file is read, not `/etc/ssh/ssh_config`.

use std::fs;
use std::path::{Path, PathBuf};

use super::pattern::{match_list, wildmatch, ListMatch};
use super::SshError;

/// The values the config gives for one host.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Unexpanded, in the order found.
    pub identity_files: Vec<String>,
    /// The first ProxyJump/ProxyCommand found: file, line, keyword,
    /// value.
    pub proxy: Option<(PathBuf, usize, String, String)>,
    /// Seconds; 0 is refused (ssh would never send keepalives).
    pub alive_interval: Option<u32>,
    pub alive_count: Option<u32>,
}

/// Nested Includes deeper than this are refused, as ssh does (16).
const MAX_DEPTH: usize = 16;

/// Reads the config at `path` for the host as typed.
pub(crate) fn lookup(path: &Path, host: &str) -> Result<HostConfig, SshError> {
    let mut cfg = HostConfig::default();
    read_file(path, &host.to_ascii_lowercase(), &mut cfg, 0)?;
    Ok(cfg)
}

fn read_file(path: &Path, host: &str, cfg: &mut HostConfig, depth: usize) -> Result<(), SshError> {
    let text = fs::read_to_string(path).map_err(|source| SshError::ConfigRead {
        path: path.to_path_buf(),
        source,
    })?;
    // Lines before the first Host apply to every host.
    let mut active = true;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let invalid = |message: String| SshError::ConfigInvalid {
            path: path.to_path_buf(),
            line: lineno,
            message,
        };
        let Some((keyword, args)) = split_line(raw).map_err(invalid)? else {
            continue;
        };
        let first = args.first().cloned().unwrap_or_default();
        match keyword.as_str() {
            "host" => {
                active = host_matches(&args, host);
                continue;
            }
            "match" => {
                let current = cfg.hostname.as_deref().unwrap_or(host).to_ascii_lowercase();
                active = match_block(&args, host, &current);
                continue;
            }
            _ if !active => continue,
            _ if args.is_empty() => return Err(invalid(format!("{keyword} needs a value"))),
            "hostname" => {
                cfg.hostname.get_or_insert(first);
            }
            "user" => {
                cfg.user.get_or_insert(first);
            }
            "port" => {
                let port = first
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| invalid(format!("bad port '{first}'")))?;
                cfg.port.get_or_insert(port);
            }
            "identityfile" => cfg.identity_files.push(first),
            "serveraliveinterval" | "serveralivecountmax" => {
                let interval = keyword == "serveraliveinterval";
                let v = alive_value(interval, &first).map_err(invalid)?;
                let slot = if interval {
                    &mut cfg.alive_interval
                } else {
                    &mut cfg.alive_count
                };
                slot.get_or_insert(v);
            }
            "proxyjump" | "proxycommand" => {
                let name = if keyword == "proxyjump" {
                    "ProxyJump"
                } else {
                    "ProxyCommand"
                };
                cfg.proxy
                    .get_or_insert((path.to_path_buf(), lineno, name.into(), args.join(" ")));
            }
            "include" => {
                if depth >= MAX_DEPTH {
                    return Err(invalid("Include nested too deeply".into()));
                }
                for pattern in &args {
                    for file in expand_include(pattern) {
                        read_file(&file, host, cfg, depth + 1)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `ServerAliveInterval` (seconds, at least 1) or `ServerAliveCountMax`
/// value, as ssh_config and `-o` give it.
pub(crate) fn alive_value(interval: bool, v: &str) -> Result<u32, String> {
    let n: u32 = v.parse().map_err(|_| {
        format!(
            "{} '{v}' is not a whole number",
            if interval {
                "ServerAliveInterval"
            } else {
                "ServerAliveCountMax"
            }
        )
    })?;
    if interval && n == 0 {
        return Err(
            "ServerAliveInterval 0 would never notice a dead link; whosent-deploy needs at least 1"
                .into(),
        );
    }
    Ok(n)
}

/// `Keyword args...` or `Keyword=args...`, with double quotes; `None`
/// for blank and comment lines. The keyword comes back lowercase.
fn split_line(raw: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..end].to_ascii_lowercase();
    let mut rest = line[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break; // trailing comment
        }
        let mut arg = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(ch) => arg.push(ch),
                    None => return Err("unterminated quote".into()),
                }
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                arg.push(ch);
                chars.next();
            }
        }
        args.push(arg);
    }
    Ok(Some((keyword, args)))
}

/// A `Host` line applies when a pattern matches and no negated one does.
pub(crate) fn host_matches(patterns: &[String], host: &str) -> bool {
    let mut hit = false;
    for list in patterns {
        match match_list(host, list) {
            ListMatch::Negative => return false,
            ListMatch::Positive => hit = true,
            ListMatch::None => {}
        }
    }
    hit
}

/// `Match all`, `Match host P`, `Match originalhost P` (combined with
/// and); anything else does not apply.
fn match_block(args: &[String], original: &str, current: &str) -> bool {
    let mut it = args.iter();
    let mut ok = true;
    while let Some(criterion) = it.next() {
        match criterion.to_ascii_lowercase().as_str() {
            "all" => {}
            "host" | "originalhost" => {
                let Some(list) = it.next() else { return false };
                let subject = if criterion.eq_ignore_ascii_case("host") {
                    current
                } else {
                    original
                };
                ok &= host_matches(std::slice::from_ref(list), subject);
            }
            _ => return false,
        }
    }
    ok
}

/// The files an `Include` argument names, sorted; none if nothing
/// matches, as in ssh.
fn expand_include(pattern: &str) -> Vec<PathBuf> {
    let home = super::dest::home_dir();
    let path = if let Some(rest) = pattern.strip_prefix("~/") {
        home.join(rest)
    } else if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        home.join(".ssh").join(pattern)
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains(['*', '?']) {
        return if path.is_file() {
            vec![path]
        } else {
            Vec::new()
        };
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| wildmatch(name.as_bytes(), e.file_name().as_encoded_bytes()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn server_alive_settings_are_read_per_host_first_value_winning() {
        let dir = std::env::temp_dir().join(format!("whosent-alive-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("config");
        std::fs::write(
            &f,
            "Host board\n  ServerAliveInterval 3\nHost *\n  ServerAliveInterval=60\n  ServerAliveCountMax 5\n",
        )
        .unwrap();
        let c = lookup(&f, "board").unwrap();
        assert_eq!((c.alive_interval, c.alive_count), (Some(3), Some(5)));
        let c = lookup(&f, "other").unwrap();
        assert_eq!((c.alive_interval, c.alive_count), (Some(60), Some(5)));
        std::fs::write(&f, "ServerAliveInterval 0\n").unwrap();
        let e = lookup(&f, "board").unwrap_err().to_string();
        assert!(e.contains(":1: ServerAliveInterval 0"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn negation_beats_a_positive_match() {
        assert!(host_matches(&v(&["*.lan", "!bad.lan"]), "good.lan"));
        assert!(!host_matches(&v(&["*.lan", "!bad.lan"]), "bad.lan"));
        assert!(!host_matches(&v(&["!bad.lan"]), "good.lan"));
        assert!(host_matches(&v(&["a,b"]), "b"));
        assert!(host_matches(&v(&["Board"]), "board"));
    }

    #[test]
    fn lines_split_like_ssh() {
        assert_eq!(
            split_line("  HostName=pi.lan").unwrap(),
            Some(("hostname".into(), v(&["pi.lan"])))
        );
        assert_eq!(
            split_line("IdentityFile \"~/my keys/id\" # c").unwrap(),
            Some(("identityfile".into(), v(&["~/my keys/id"])))
        );
        assert_eq!(
            split_line("Port = 2222").unwrap(),
            Some(("port".into(), v(&["2222"])))
        );
        assert_eq!(split_line("# comment").unwrap(), None);
        assert!(split_line("User \"x").is_err());
    }

    #[test]
    fn match_criteria() {
        assert!(match_block(&v(&["all"]), "a", "a"));
        assert!(match_block(&v(&["host", "pi*"]), "alias", "pi.lan"));
        assert!(!match_block(
            &v(&["originalhost", "pi*"]),
            "alias",
            "pi.lan"
        ));
        assert!(!match_block(&v(&["exec", "true"]), "a", "a"));
    }
}
