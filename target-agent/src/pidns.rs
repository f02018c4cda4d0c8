//! `--pid-ns PID`: the query's `--pid` and `--sender-pid` are pids as
//! seen inside the pid namespace of process PID (a host pid, as
//! `nsenter --target` takes it), e.g. a container's `1`. They are turned
//! into host pids once, at the start, like `--pid` itself they must name
//! running processes; the rest of the agent only knows host pids.

use crate::error::{AgentError, Result};
use crate::procfs;
use whosent_proto::query::Query;

/// The query with namespace pids replaced by host pids.
/// Takes the query by value and changes it in place: no copy of it
/// (docs/agent-size.md).
pub fn resolve(mut q: Query, root: &str) -> Result<Query> {
    let Some(reference) = q.pid_ns else {
        return Ok(q);
    };
    let link = procfs::path(root, reference, "ns/pid");
    let ns = std::fs::read_link(&link).map_err(|e| reference_error(reference, &link, e))?;
    // Processes living in that namespace, as (pid there, pid here).
    // Those in namespaces nested inside it are not looked at.
    // A loop, not an iterator chain: smaller in the agent
    // (docs/agent-size.md).
    let mut members: Vec<(i32, i32)> = Vec::new();
    for p in procfs::pids(root) {
        if procfs::pid_ns(root, p).as_ref() != Some(&ns) {
            continue;
        }
        if let Some(&there) = procfs::task(root, p).as_ref().and_then(|t| t.nstgid.last()) {
            members.push((there, p));
        }
    }
    // A loop, not a collect into Result<Vec>: smaller in the agent
    // (docs/agent-size.md).
    let host = |flag: &str, pids: &[i32]| -> Result<Vec<i32>> {
        let mut out = Vec::with_capacity(pids.len());
        for n in pids {
            let Some(m) = members.iter().find(|m| m.0 == *n) else {
                return Err(AgentError::new(
                    "no_such_process",
                    format!("{flag} {n}: no such process in the pid namespace of process {reference}"),
                    format!("list its processes with `nsenter --target {reference} --pid --mount ps -e`"),
                ));
            };
            out.push(m.1);
        }
        Ok(out)
    };
    q.pids = host("--pid", &q.pids)?;
    q.sender_pids = host("--sender-pid", &q.sender_pids)?;
    q.pid_ns = None;
    Ok(q)
}

/// Why the namespace of process `reference` cannot be read. The link
/// is there for every process, but reading it needs ptrace read access
/// to the process (proc_ns_get_link() checks
/// ptrace_may_access(PTRACE_MODE_READ_FSCREDS), fs/proc/namespaces.c):
/// another user's process, or one in another user namespace, is
/// "permission denied", not "no such process".
fn reference_error(reference: i32, link: &str, e: std::io::Error) -> AgentError {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        return AgentError::new(
            "io",
            format!("--pid-ns {reference}: permission denied reading {link}"),
            "the agent may not inspect that process (another user's, or in another user namespace): \
             run it as root, or give a process of the namespace that it may inspect",
        );
    }
    AgentError::new(
        "no_such_process",
        format!("--pid-ns {reference}: no such process"),
        "give the pid (as seen here) of any process in the namespace, e.g. a container's main process",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_namespace_maps_pids_to_themselves() {
        let me = std::process::id() as i32;
        let q = Query {
            pids: vec![me],
            pid_ns: Some(me),
            ..Default::default()
        };
        let r = resolve(q.clone(), "/proc").unwrap();
        assert_eq!((r.pids, r.pid_ns), (vec![me], None));
        let bad = Query {
            sender_pids: vec![i32::MAX],
            ..q.clone()
        };
        let e = resolve(bad, "/proc").unwrap_err();
        assert!(e.message.contains("--sender-pid"), "{}", e.message);
        let gone = Query {
            pid_ns: Some(i32::MAX),
            ..q
        };
        assert_eq!(resolve(gone, "/proc").unwrap_err().kind, "no_such_process");
    }

    /// Issue #13: `--pid-ns 1` said "no such process" when reading the
    /// namespace link was denied.
    #[test]
    fn pid_ns_permission_denied_is_not_no_such_process() {
        let denied = std::io::Error::from_raw_os_error(libc::EACCES);
        let e = reference_error(1, "/proc/1/ns/pid", denied);
        assert_eq!(e.kind, "io");
        assert!(e.message.contains("permission denied"), "{}", e.message);
        assert!(!e.message.contains("no such process"), "{}", e.message);
        let gone = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            reference_error(1, "/proc/1/ns/pid", gone).kind,
            "no_such_process"
        );
    }
}
