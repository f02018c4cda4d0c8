//! whosent's private ftrace instance: `instances/whosent-<pid>-<start>`.
//!
//! The name carries the owner's pid and start time so that a later run
//! can tell a stale instance (owner gone, e.g. after `kill -9`) from a
//! live one, even across pid reuse. Nothing outside the instance is
//! ever written: the global buffer and other users' instances are left
//! alone.

use crate::error::{AgentError, Result};
use crate::procfs;
use std::fs;
use std::path::{Path, PathBuf};

pub const PREFIX: &str = "whosent-";

pub struct Instance {
    pub name: String,
    pub dir: PathBuf,
    removed: bool,
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value)
        .map_err(|e| AgentError::io("cannot write", &path.display().to_string(), e))
}

/// `events/EVENT/FILE`: one function for every such path, since each
/// `format!` is its own code in the agent (docs/agent-size.md).
pub fn event_file(event: &str, file: &str) -> String {
    format!("events/{event}/{file}")
}

impl Instance {
    /// Creates the instance for this process.
    pub fn create(tracefs: &str) -> Result<Self> {
        let pid = std::process::id() as i32;
        let start = procfs::start_time("/proc", pid).unwrap_or(0);
        let name = format!("{PREFIX}{pid}-{start}");
        let dir = Path::new(tracefs).join("instances").join(&name);
        if let Err(e) = fs::create_dir(&dir) {
            let shown = dir.display().to_string();
            return Err(match e.raw_os_error() {
                Some(libc::ENOENT) => AgentError::new(
                    "no_instances",
                    format!("{shown}: this kernel has no ftrace instances (Linux 3.10+)"),
                    "use a kernel with ftrace instance support; whosent never writes the global buffer",
                ),
                _ => AgentError::io("cannot create instance", &shown, e),
            });
        }
        Ok(Instance {
            name,
            dir,
            removed: false,
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn set(&self, rel: &str, value: &str) -> Result<()> {
        write(&self.path(rel), value)
    }

    /// Sets an event filter; the kernel refuses bad ones with EINVAL.
    pub fn set_filter(&self, event: &str, filter: &str) -> Result<()> {
        if filter.is_empty() {
            return Ok(());
        }
        let p = self.path(&event_file(event, "filter"));
        fs::write(&p, filter).map_err(|e| {
            AgentError::new(
                "bad_filter",
                format!("the kernel refused the filter '{filter}': {e}"),
                "report this with the kernel release; meanwhile drop --comm or --pid to filter fewer fields",
            )
        })
    }

    /// Disables everything and removes the instance. Readers must be
    /// closed first: the kernel refuses `rmdir` (EBUSY) while a
    /// trace_pipe_raw is open.
    pub fn remove(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let _ = fs::write(self.path("tracing_on"), "0");
        let _ = fs::write(self.path("events/enable"), "0");
        fs::remove_dir(&self.dir).map_err(|e| {
            AgentError::io("cannot remove instance", &self.dir.display().to_string(), e)
        })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// The owner (pid, start time) encoded in an instance name.
fn owner(name: &str) -> Option<(i32, u64)> {
    let (pid, start) = name.strip_prefix(PREFIX)?.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Whether the agent named in `name` still runs. A name that names no
/// owner counts as alive: it is not whosent's to remove.
pub fn owner_alive(name: &str) -> bool {
    owner(name).is_none_or(|(pid, start)| procfs::start_time("/proc", pid) == Some(start))
}

/// Removes `whosent-*` instances whose owner is gone; returns their
/// names. Live owners' instances are left alone.
pub fn remove_stale(tracefs: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(dir) = fs::read_dir(Path::new(tracefs).join("instances")) else {
        return removed;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if owner_alive(&name) {
            continue;
        }
        if fs::remove_dir(e.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::{owner, owner_alive};

    #[test]
    fn owner_from_name() {
        assert_eq!(owner("whosent-123-4567"), Some((123, 4567)));
        assert_eq!(owner("whosent-x-1"), None);
        assert_eq!(owner("other-1-2"), None);
        assert!(owner_alive("whosent-x-1"), "not ours");
        assert!(!owner_alive("whosent-2147483000-1"));
    }
}
