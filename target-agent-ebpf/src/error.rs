//! The eBPF agent's errors, as the ftrace agent's ([`AgentError`]: a
//! stable kind, a message, a help line), and the checks before loading.
//! Every one that means "this kernel cannot" names the ftrace backend.

use std::path::Path;
use whosent_agent::error::{AgentError, Result};

/// The help line of every kernel that cannot run the eBPF backend.
pub const FALLBACK: &str = "use `--backend ftrace` (needs only tracefs), or `--backend auto`, which picks it where eBPF does not work; `whosent-deploy doctor` shows what this kernel lacks";

/// A failure of the bpf or perf_event_open system calls, with the
/// chain of causes aya gives (the verifier's log included, shortened).
pub fn bpf_error(what: &str, e: &(dyn std::error::Error + 'static)) -> AgentError {
    let mut msg = format!("{what}: {e}");
    let mut errno = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            errno = errno.or(io.raw_os_error());
        }
        if let Some(next) = c.source() {
            msg.push_str(&format!(": {next}"));
        }
        cur = c.source();
    }
    if msg.len() > 800 {
        // The verifier's log can be thousands of lines; its end says why.
        eprintln!("whosent-ebpf-agent: {msg}");
        let cut = msg.len() - 600;
        let cut = (cut..msg.len())
            .find(|&i| msg.is_char_boundary(i))
            .unwrap_or(cut);
        msg = format!("{} … {}", &msg[..120.min(msg.len())], &msg[cut..]);
    }
    match errno {
        Some(libc::EPERM) | Some(libc::EACCES) => AgentError::new(
            "not_root",
            msg,
            "run the eBPF agent as root (it needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN before 5.8), or use `whosent-deploy --sudo`",
        ),
        _ => AgentError::new("no_bpf", msg, FALLBACK),
    }
}

/// Something the built object should have had.
pub fn missing(what: &str) -> AgentError {
    AgentError::new(
        "bad_object",
        format!("{what} is missing from the eBPF object"),
        "rebuild whosent-ebpf-agent; this is a build error",
    )
}

/// Before touching the bpf system call: root, and a kernel that has it
/// (`kernel.unprivileged_bpf_disabled` exists exactly with
/// CONFIG_BPF_SYSCALL, kernel/bpf/syscall.c).
pub fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(AgentError::new(
            "not_root",
            "the eBPF backend needs root (CAP_BPF and CAP_PERFMON)",
            "run it as root, or `whosent-deploy --sudo`; this kernel's kernel.unprivileged_bpf_disabled does not matter to root",
        ));
    }
    if !Path::new("/proc/sys/kernel/unprivileged_bpf_disabled").exists() {
        return Err(AgentError::new(
            "no_bpf",
            "this kernel has no bpf system call (CONFIG_BPF_SYSCALL is off)",
            FALLBACK,
        ));
    }
    Ok(())
}
