//! Finding (or mounting) tracefs and checking the kernel has the events.

use crate::error::{AgentError, Result};
use std::ffi::CStr;
use std::path::Path;

/// Where tracefs lives, in the order the kernel docs give them: the
/// tracefs mount point (4.1+), then the debugfs compatibility path.
const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

fn has_events(root: &str) -> bool {
    Path::new(root).join("events").is_dir()
}

/// Takes C string literals: a `CString::new(..).expect(..)` here linked
/// `NulError`'s `Debug` printing into the agent (docs/agent-size.md).
fn mount(source: &CStr, target: &CStr, fstype: &CStr) -> bool {
    // SAFETY: all three are valid NUL-terminated strings; no data arg.
    unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        ) == 0
    }
}

/// Finds tracefs, mounting it when nothing is mounted (and saying so
/// on stderr). `forced` (from `--tracefs` or `WHOSENT_TRACEFS`) is used
/// as it is, never mounted.
pub fn locate(forced: Option<&str>) -> Result<String> {
    if let Some(root) = forced {
        return check(root).map(|_| root.to_string());
    }
    for c in CANDIDATES {
        if has_events(c) {
            return check(c).map(|_| c.to_string());
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(AgentError::not_root(CANDIDATES[0]));
    }
    if Path::new(CANDIDATES[0]).is_dir() && mount(c"nodev", c"/sys/kernel/tracing", c"tracefs") {
        crate::note!("whosent-agent: mounted tracefs on {}", CANDIDATES[0]);
        return check(CANDIDATES[0]).map(|_| CANDIDATES[0].to_string());
    }
    if Path::new("/sys/kernel/debug").is_dir()
        && mount(c"nodev", c"/sys/kernel/debug", c"debugfs")
        && has_events(CANDIDATES[1])
    {
        crate::note!("whosent-agent: mounted debugfs on /sys/kernel/debug");
        return check(CANDIDATES[1]).map(|_| CANDIDATES[1].to_string());
    }
    Err(AgentError::new(
        "no_tracefs",
        "tracefs is not mounted and could not be mounted",
        "mount it with `mount -t tracefs nodev /sys/kernel/tracing`; the kernel needs CONFIG_FTRACE and CONFIG_EVENT_TRACING",
    ))
}

/// The events whosent needs must exist in this tracefs.
fn check(root: &str) -> Result<()> {
    let ev = Path::new(root).join("events/signal/signal_generate/format");
    match std::fs::metadata(&ev) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(AgentError::not_root(&ev.display().to_string()))
        }
        Err(_) if !has_events(root) => Err(AgentError::new(
            "no_tracefs",
            format!("{root} is not a tracefs (no events/ directory)"),
            "point --tracefs at a mounted tracefs, or mount one with `mount -t tracefs nodev /sys/kernel/tracing`",
        )),
        Err(_) => Err(AgentError::new(
            "no_signal_events",
            format!("this kernel has no signal:signal_generate event ({} is missing)", ev.display()),
            "rebuild the kernel with CONFIG_FTRACE=y and CONFIG_EVENT_TRACING=y (any tracer, e.g. CONFIG_FUNCTION_TRACER, selects it)",
        )),
    }
}
