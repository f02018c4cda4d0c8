//! The private directory on the board that a run's files go into.

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

/// Makes the private directory, mode 0700. With a `keep` key (`--keep`)
/// it has a fixed name per user and key, reused only if it is still a
/// real directory owned by us with mode 0700.
pub fn make<'a>(t: &'a dyn Transport, keep: Option<&str>) -> Result<RemoteDir<'a>, HostError> {
    let script = match keep {
        Some(hash) => format!(
            r#"d="${{TMPDIR:-/tmp}}/whosent-keep-$(id -u)-{h}"
if [ -d "$d" ] && [ ! -L "$d" ]; then
  set -- $(ls -ldn "$d")
  if [ "$1" = drwx------ ] && [ "$3" = "$(id -u)" ]; then echo "existing $d"; exit 0; fi
  echo "refusing $d: not a private directory of ours" >&2; exit 3
fi
mkdir -m 700 "$d" && echo "new $d""#,
            h = &hash[..16.min(hash.len())]
        ),
        None => r#"d=$(mktemp -d "${TMPDIR:-/tmp}/whosent.XXXXXX" 2>/dev/null) || { d="${TMPDIR:-/tmp}/whosent.$$"; mkdir -m 700 "$d" || exit 3; }
chmod 700 "$d" && echo "new $d""#
            .to_string(),
    };
    let out = t.run(&script)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (state, path) = text.trim().split_once(' ').unwrap_or(("", ""));
    if out.status != 0 || path.is_empty() {
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
