//! The boards a command acts on: every `--host`, then the lines of
//! `--hosts FILE`, in that order. A line is one destination as `--host`
//! takes it (`[USER@]HOST[:PORT]` or a `~/.ssh/config` alias); `#`
//! starts a comment, blank lines are skipped. Reading is I/O-free
//! ([`parse`]); only [`boards`] opens the file.

use crate::cli::SshArgs;
use crate::error::HostError;
use std::path::Path;

/// What the user must do with a bad line or a bad mix.
const FIX: &str =
    "one destination per line, [USER@]HOST[:PORT] or a ~/.ssh/config alias; `#` starts a comment";

/// The destinations of a hosts file's text, `name` naming the file in
/// errors (`FILE:LINE: ...`).
pub fn parse(name: &str, text: &str) -> Result<Vec<String>, HostError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let dest = line.split('#').next().unwrap_or("").trim();
        if dest.is_empty() {
            continue;
        }
        let at = || format!("{name}:{}", i + 1);
        // The syntax only: an alias is resolved when its board is
        // connected to, as for --host. First, as it never echoes a
        // password (`user:pw@host`).
        if let Err(e) = crate::ssh::dest::parse(dest) {
            return Err(HostError::other(format!("{}: {e}", at()), FIX));
        }
        if dest == "local" {
            return Err(HostError::other(
                format!("{}: `local` is this machine, not a board", at()),
                "trace this machine on its own with --host local, or over SSH as a board (e.g. root@localhost)",
            ));
        }
        if dest.contains(char::is_whitespace) {
            return Err(HostError::other(
                format!("{}: '{dest}' is more than one word", at()),
                FIX,
            ));
        }
        out.push(dest.to_string());
    }
    Ok(out)
}

/// Every board `a` names: `--host`s first, then `--hosts FILE`. At
/// least one; no board twice (its lines would be told apart by
/// nothing); `local` only alone (see [`check_local`]).
pub fn boards(a: &SshArgs) -> Result<Vec<String>, HostError> {
    let mut all = a.boards.clone();
    if let Some(file) = &a.hosts_file {
        all.extend(read(file)?);
    }
    if all.is_empty() {
        return Err(HostError::Usage(match &a.hosts_file {
            Some(f) => format!("{} names no board", f.display()),
            None => "--host is required: a board ([USER@]HOST[:PORT]) or `local` for this machine"
                .into(),
        }));
    }
    for (i, b) in all.iter().enumerate() {
        if all[..i].contains(b) {
            return Err(HostError::Usage(format!(
                "board {b} is given twice: give each board once"
            )));
        }
    }
    check_local(&all, a.hosts_file.is_some())?;
    Ok(all)
}

fn read(file: &Path) -> Result<Vec<String>, HostError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        HostError::other(
            format!("--hosts {}: {e}", file.display()),
            "give a readable file with one board per line",
        )
    })?;
    parse(&file.display().to_string(), &text)
}

/// `--host local` traces this machine without SSH, as root here, and
/// refuses the connection flags the boards need: it runs alone. (This
/// machine can still be one board of many, over SSH:
/// `--host root@localhost`.)
/// `file`: a `--hosts` file was given, even if it names no board.
pub fn check_local(all: &[String], file: bool) -> Result<(), HostError> {
    if (all.len() > 1 || file) && all.iter().any(|b| b == "local") {
        return Err(HostError::other(
            "--host local traces this machine alone, not as one board of several",
            "run it on its own, or give this machine over SSH (e.g. --host root@localhost)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_blanks() {
        let text = "# the lab\nroot@10.0.0.5:2222\n\n  board-a   # an alias\nuser@[::1]:22\n";
        assert_eq!(
            parse("lab.txt", text).unwrap(),
            ["root@10.0.0.5:2222", "board-a", "user@[::1]:22"]
        );
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_line() {
        for (text, want) in [
            (
                "a\nroot b@c\n",
                "lab.txt:2: 'root b@c' is more than one word",
            ),
            ("a\nroot@b c\n", "lab.txt:2: bad destination 'root@b c'"),
            ("a\n\nb:99999\n", "lab.txt:3: bad destination 'b:99999'"),
            ("@b\n", "lab.txt:1: bad destination '@b'"),
        ] {
            let e = parse("lab.txt", text).unwrap_err();
            assert!(e.line().contains(want), "{text:?}: {}", e.line());
            assert!(
                e.line().contains("(help: one destination per line"),
                "{}",
                e.line()
            );
        }
    }

    fn args(boards: &[&str]) -> SshArgs {
        SshArgs {
            boards: boards.iter().map(|b| b.to_string()).collect(),
            ..SshArgs::default()
        }
    }

    #[test]
    fn twice_local_in_a_fleet_and_none_are_refused() {
        let e = boards(&args(&["a", "b", "a"])).unwrap_err();
        assert_eq!(
            e.line(),
            "whosent-deploy: error: board a is given twice: give each board once (help: see `whosent-deploy --help`)"
        );
        let e = boards(&args(&["a", "local"])).unwrap_err();
        assert!(
            e.line().contains("--host local traces this machine alone"),
            "{}",
            e.line()
        );
        assert!(boards(&args(&[]))
            .unwrap_err()
            .line()
            .contains("--host is required"));
        assert_eq!(boards(&args(&["local"])).unwrap(), ["local"]);
    }
}
