//! The private directory on the board that a run's files go into, and
//! how it is removed however the run ends.
//!
//! - Normally the remote command removes it after the agent exits
//!   (`flow`), or the [`RemoteDir`] drop does, over the connection.
//! - The connection may end first: Ctrl-C before tracing drops it
//!   (`ssh::watch`), `kill -9` of whosent-deploy closes it. So the
//!   shell that makes the directory stays, held ([`Transport::hold`]),
//!   waiting for EOF on its stdin, which the SSH server gives it when
//!   the connection ends; then it removes the directory, unless the
//!   remote command has started (it marks `started`) and removes it
//!   itself. A command of the run may still be writing there (tar
//!   unpacking the bundle): `rm -rf` then fails on a directory that
//!   filled up again, and is tried again; once it is gone, nothing can
//!   write into it.
//! - That shell names itself in `owner`: its pid and start time (field
//!   22 of `/proc/PID/stat`, so that a reused pid does not pass for it),
//!   as the agent's instances do. Should it be gone without cleaning up,
//!   the next run and `doctor` remove every `whosent.*` directory whose
//!   owner is dead ([`STALE`]).
//!
//! The scripts are POSIX sh with builtins and `cat` only (the bare board
//! has little else), and read /proc.

use crate::error::HostError;
use crate::ssh::upload::quote;
use crate::transport::{Hold, Transport};

/// A directory on the board that is removed when dropped, unless the
/// remote command has taken over its removal or `--keep` was given.
pub struct RemoteDir<'a> {
    t: &'a dyn Transport,
    pub path: String,
    pub remove_on_drop: bool,
    /// It was kept from an earlier run (`--keep`).
    pub existing: bool,
    /// The shell that removes it if the connection ends first (none with
    /// `--keep`); dropped after the directory.
    guard: Option<Box<dyn Hold + 'a>>,
}

/// What the remote command runs first, so that the guard leaves the
/// directory to it.
pub fn started_mark(dir: &str) -> String {
    format!(": >{}/started; ", quote(dir))
}

impl Drop for RemoteDir<'_> {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = self.t.run(&format!("rm -rf {}", quote(&self.path)));
        }
    }
}

/// `whosent_start PID`: the process's start time, or nothing (and
/// status 1) if it is gone. The comm may hold spaces and `)`, so the
/// fields are counted after the last `) `.
const START_FN: &str = r#"whosent_start() { { read -r l </proc/$1/stat; } 2>/dev/null || return 1; l=${l##*) }; set -- $l; echo "${20}"; }"#;

/// Removes the upload directories of whosent's (this user's) whose owner
/// is dead, printing `stale DIR` for each. Directories without an owner
/// file are left alone: they are a run's between `mktemp` and `owner`,
/// or not whosent's.
pub const STALE: &str = r#"for o in "${TMPDIR:-/tmp}"/whosent.*/owner; do
  [ -f "$o" ] && [ ! -L "${o%/owner}" ] || continue
  read -r p t <"$o" 2>/dev/null || continue
  [ -n "$p" ] && [ "$(whosent_start "$p")" = "$t" ] && continue
  rm -rf "${o%/owner}" 2>/dev/null && echo "stale ${o%/owner}"
done"#;

/// The script that makes a new directory: prints `new DIR` and `.`,
/// then waits for the connection to end (see the module docs). SIGPIPE
/// is ignored: a connection dropped before it printed (a Ctrl-C just
/// then) would otherwise kill it at the `echo`, before its clean-up.
fn new_dir_script() -> String {
    format!(
        r#"trap '' PIPE
{START_FN}
{STALE}
d=$(mktemp -d "${{TMPDIR:-/tmp}}/whosent.XXXXXX" 2>/dev/null) || {{ d="${{TMPDIR:-/tmp}}/whosent.$$"; mkdir -m 700 "$d" || exit 3; }}
chmod 700 "$d" || exit 3
echo "$$ $(whosent_start $$)" >"$d/owner" || exit 3
echo "new $d"
echo .
cat >/dev/null
[ -e "$d/started" ] && exit 0
n=0; while [ -e "$d" ] && [ $n -lt 10 ]; do rm -rf "$d" 2>/dev/null || sleep 1; n=$((n+1)); done"#
    )
}

/// Removes stale upload directories (see [`STALE`]); returns them.
pub fn remove_stale(t: &dyn Transport) -> Result<Vec<String>, HostError> {
    let out = t.run(&format!("{START_FN}\n{STALE}\ntrue"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("stale "))
        .map(str::to_string)
        .collect())
}

/// Makes the private directory, mode 0700, removing stale ones first.
/// With a `keep` key (`--keep`) it has a fixed name per user and key,
/// reused only if it is still a real directory owned by us with mode
/// 0700.
pub fn make<'a>(t: &'a dyn Transport, keep: Option<&str>) -> Result<RemoteDir<'a>, HostError> {
    let script = match keep {
        Some(hash) => format!(
            r#"{START_FN}
{STALE}
d="${{TMPDIR:-/tmp}}/whosent-keep-$(id -u)-{h}"
if [ -d "$d" ] && [ ! -L "$d" ]; then
  set -- $(ls -ldn "$d")
  if [ "$1" = drwx------ ] && [ "$3" = "$(id -u)" ]; then echo "existing $d"; exit 0; fi
  echo "refusing $d: not a private directory of ours" >&2; exit 3
fi
mkdir -m 700 "$d" && echo "new $d""#,
            h = &hash[..16.min(hash.len())]
        ),
        None => new_dir_script(),
    };
    let (out, guard) = match keep {
        Some(_) => (t.run(&script)?, None),
        None => {
            let (out, held) = t.hold(&script)?;
            (out, Some(held))
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    let (state, path) = last.trim().split_once(' ').unwrap_or(("", ""));
    if out.status != 0 || path.is_empty() || !matches!(state, "new" | "existing") {
        return Err(HostError::other(
            format!(
                "cannot create a private directory on the board: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "check that /tmp (or $TMPDIR) on the board is writable and not full",
        ));
    }
    Ok(RemoteDir {
        t,
        path: path.to_string(),
        remove_on_drop: keep.is_none(),
        existing: state == "existing",
        guard,
    })
}

impl RemoteDir<'_> {
    /// Whether a guard removes the directory if the connection ends
    /// before the remote command starts (see [`started_mark`]).
    pub fn guarded(&self) -> bool {
        self.guard.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(script: &str, tmp: &std::path::Path) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("TMPDIR", tmp)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Issue 13 item 9: a `kill -9` during the upload left
    /// `whosent.XXXXXX/*.whosent-part` behind for good. The rule, run by
    /// this machine's sh: a dead owner's directory goes, a live owner's
    /// (or one naming no owner) stays.
    #[test]
    fn stale_upload_dirs_of_dead_owners_are_removed_and_live_ones_kept() {
        let tmp = std::env::temp_dir().join(format!("whosent-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        let me = std::process::id();
        let start = sh(&format!("{START_FN}\nwhosent_start {me}"), &tmp);
        let (dead, reused, live, none) = (
            tmp.join("whosent.dead01"),
            tmp.join("whosent.reuse1"),
            tmp.join("whosent.live01"),
            tmp.join("whosent.noown1"),
        );
        for d in [&dead, &reused, &live, &none] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("bundle.tar.gz.whosent-part"), b"half").unwrap();
        }
        std::fs::write(dead.join("owner"), "2147483000 5\n").unwrap();
        // Our pid, but another start time: the pid was reused.
        std::fs::write(reused.join("owner"), format!("{me} 1\n")).unwrap();
        std::fs::write(live.join("owner"), format!("{me} {start}")).unwrap();
        let out = sh(&format!("{START_FN}\n{STALE}\ntrue"), &tmp);
        assert!(!dead.exists() && !reused.exists(), "{out}");
        assert!(live.exists() && none.exists(), "{out}");
        let mut said: Vec<&str> = out.lines().collect();
        said.sort();
        assert_eq!(
            said,
            [
                format!("stale {}", dead.display()),
                format!("stale {}", reused.display())
            ]
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }

    /// The directory goes by itself once the connection ends (its
    /// shell's stdin closes) before the remote command started; after
    /// that it is the command's to remove.
    #[test]
    fn a_new_dir_is_removed_when_the_connection_ends_before_the_agent_starts() {
        use std::io::BufRead;
        let tmp = std::env::temp_dir().join(format!("whosent-guard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        for started in [false, true] {
            let mut guard = Command::new("sh")
                .arg("-c")
                .arg(new_dir_script())
                .env("TMPDIR", &tmp)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut lines = std::io::BufReader::new(guard.stdout.take().unwrap()).lines();
            let first = lines.next().unwrap().unwrap();
            assert_eq!(lines.next().unwrap().unwrap(), ".");
            let dir = std::path::PathBuf::from(first.strip_prefix("new ").unwrap());
            let owner = std::fs::read_to_string(dir.join("owner")).unwrap();
            assert!(owner.starts_with(&format!("{} ", guard.id())), "{owner}");
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert!(dir.exists(), "removed while the connection lasts");
            if started {
                let mark = started_mark(&dir.display().to_string());
                assert!(Command::new("sh")
                    .arg("-c")
                    .arg(format!("{mark}true"))
                    .status()
                    .unwrap()
                    .success());
            }
            drop(guard.stdin.take());
            assert!(guard.wait().unwrap().success());
            assert_eq!(dir.exists(), started, "started: {started}");
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
