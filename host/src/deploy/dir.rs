//! The private directory on the board that a run's files go into, and
//! how it is removed however the run ends.
//!
//! - Normally the remote command removes it after the agent exits
//!   (`flow`), or the [`RemoteDir`] drop does, over the connection.
//! - The connection may end first: Ctrl-C before tracing drops it
//!   (`ssh::watch`), `kill -9` of whosent-deploy closes it. So the
//!   directory names its owner in `owner`, the SSH server process that
//!   serves this connection (the creating shell's parent), as the
//!   agent's instances do: its pid and its start time (field 22 of
//!   `/proc/PID/stat`), so a reused pid does not pass for it. A watcher
//!   started with the directory removes it within a second of that
//!   process exiting, which it does when the connection ends.
//! - Should the watcher itself be gone (a reboot keeps no /tmp, but a
//!   `kill` may hit it), the next run and `doctor` remove every
//!   `whosent.*` directory whose owner is dead ([`STALE`]).
//!
//! All of it is POSIX sh with builtins only (the bare board has no
//! `sed` or `cut` to rely on), and reads /proc.

use crate::error::HostError;
use crate::ssh::upload::quote;
use crate::transport::Transport;

/// A directory on the board that is removed when dropped, unless the
/// remote command has taken over its removal or `--keep` was given.
pub struct RemoteDir<'a> {
    t: &'a dyn Transport,
    pub path: String,
    pub remove_on_drop: bool,
    /// It was kept from an earlier run (`--keep`).
    pub existing: bool,
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

/// The script that makes a new directory; prints `new DIR` last.
fn new_dir_script() -> String {
    format!(
        r#"{START_FN}
{STALE}
d=$(mktemp -d "${{TMPDIR:-/tmp}}/whosent.XXXXXX" 2>/dev/null) || {{ d="${{TMPDIR:-/tmp}}/whosent.$$"; mkdir -m 700 "$d" || exit 3; }}
chmod 700 "$d" || exit 3
p=$PPID; t=$(whosent_start "$p")
echo "$p $t" >"$d/owner" || exit 3
(while [ -d "$d" ] && [ "$(whosent_start "$p")" = "$t" ]; do sleep 1; done; rm -rf "$d") </dev/null >/dev/null 2>&1 &
echo "new $d""#
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
    let out = t.run(&script)?;
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
    })
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

    /// The directory goes by itself once its owner (the creating
    /// shell's parent: the SSH server's process for the connection)
    /// exits, as it does when the connection is dropped or whosent-deploy
    /// is killed.
    #[test]
    fn a_new_dir_is_removed_when_its_owner_exits() {
        let tmp = std::env::temp_dir().join(format!("whosent-owner-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        // sh (the owner) runs the script in a child sh, then lingers.
        let mut owner = Command::new("sh")
            .arg("-c")
            .arg(format!("sh -c {}; sleep 30", quote(&new_dir_script())))
            .env("TMPDIR", &tmp)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(owner.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let dir = std::path::PathBuf::from(line.trim().strip_prefix("new ").unwrap());
        let recorded = std::fs::read_to_string(dir.join("owner")).unwrap();
        assert!(
            recorded.starts_with(&format!("{} ", owner.id())),
            "{recorded}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert!(dir.exists(), "removed while its owner runs");
        owner.kill().unwrap();
        owner.wait().unwrap();
        let t0 = std::time::Instant::now();
        while dir.exists() && t0.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            !dir.exists(),
            "still there {:?} after its owner died",
            t0.elapsed()
        );
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
