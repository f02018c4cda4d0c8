//! The pid namespaces the program looks the sender up in.
//!
//! `bpf_get_ns_current_pid_tgid(dev, ino)` gives the running task's pid
//! in the namespace (dev, ino) only when that is the task's own active
//! namespace (kernel/bpf/helpers.c), so the program tries each one the
//! agent knows of. Each comes with its depth below the agent's own, from
//! the `NStgid:` of a process in it, so that a pid there becomes the
//! record's `nspid` list ([`nspid`]).

use std::os::unix::fs::MetadataExt;

/// `PIDNS_MAX` in ebpf/event.h.
pub const MAX: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ns {
    pub dev: u64,
    pub ino: u64,
    /// Levels below the agent's namespace: 0 for its own.
    pub depth: usize,
}

/// The namespace of `/proc/<pid>`, with its depth.
pub fn of(root: &str, pid: i32) -> Option<Ns> {
    let m = std::fs::metadata(format!("{root}/{pid}/ns/pid")).ok()?;
    let t = whosent_agent::procfs::task(root, pid)?;
    Some(Ns {
        dev: m.dev(),
        ino: m.ino(),
        depth: t.nstgid.len().checked_sub(1)?,
    })
}

/// The agent's own namespace first, then others as /proc lists them, at
/// most [`MAX`]; `keep` (those already in the map) stay where they are,
/// so an index the program already returned keeps its meaning.
pub fn scan(root: &str, keep: &[Ns]) -> Vec<Ns> {
    let mut out: Vec<Ns> = keep.to_vec();
    let me = std::process::id() as i32;
    if out.is_empty() {
        if let Some(own) = of(root, me) {
            out.push(own);
        }
    }
    for p in whosent_agent::procfs::pids(root) {
        if out.len() >= MAX {
            break;
        }
        let Ok(m) = std::fs::metadata(format!("{root}/{p}/ns/pid")) else {
            continue;
        };
        if out.iter().any(|n| n.dev == m.dev() && n.ino == m.ino()) {
            continue;
        }
        if let Some(ns) = of(root, p) {
            out.push(ns);
        }
    }
    out
}

/// The `nspid` list (the agent's namespace first) of a task whose tgid
/// here is `tgid` and `inner` in namespace `ns`: exact for its own
/// namespace and one level below; deeper, the levels between are not
/// known to the kernel's helper, so `None`.
pub fn nspid(tgid: i32, ns: Option<&Ns>, inner: i32) -> Option<Vec<i32>> {
    match ns?.depth {
        0 => Some(vec![tgid]),
        1 => Some(vec![tgid, inner]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_namespace_comes_first_at_depth_zero() {
        let all = scan("/proc", &[]);
        assert!(!all.is_empty() && all.len() <= MAX);
        assert_eq!(all[0].depth, 0);
        let again = scan("/proc", &all[..1]);
        assert_eq!(again[0], all[0]);
    }

    #[test]
    fn nspid_is_only_what_is_known() {
        let ns = |depth| Ns {
            dev: 4,
            ino: 1,
            depth,
        };
        assert_eq!(nspid(900, Some(&ns(0)), 900), Some(vec![900]));
        assert_eq!(nspid(900, Some(&ns(1)), 3), Some(vec![900, 3]));
        assert_eq!(nspid(900, Some(&ns(2)), 3), None);
        assert_eq!(nspid(900, None, 0), None);
    }
}
