//! Whether a board can run the eBPF backend, from the probe's facts
//! ([`crate::board`]): what `--backend auto` decides with, what
//! `--backend ebpf` refuses with, and the rows `doctor` shows.
//!
//! The eBPF agent needs the bpf system call (CONFIG_BPF_SYSCALL), BPF
//! programs on tracepoints (CONFIG_BPF_EVENTS), global data (5.2), and
//! for the ring buffer and the sender's namespace pid 5.8 (else it uses a
//! perf event array). No BTF. Root does not care about
//! `kernel.unprivileged_bpf_disabled`.

use crate::board::Facts;
use crate::doctor::{Row, Status};

/// `major.minor` of a `uname -r`, e.g. (6, 1) for `6.1.0-56-arm64`.
pub fn version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn kconfig<'a>(f: &'a Facts, opt: &str) -> Option<&'a str> {
    f.kconfig.get(opt).map(String::as_str)
}

/// `Err` with why the eBPF agent cannot work on this board; `Ok` when
/// nothing known stands in its way.
pub fn verdict(f: &Facts) -> Result<(), String> {
    let v = version(&f.release);
    if v.is_some_and(|v| v < (5, 2)) {
        return Err(format!(
            "Linux {} is older than 5.2, which the eBPF program needs (global data)",
            f.release
        ));
    }
    if f.unprivileged_bpf_disabled.is_none() || kconfig(f, "CONFIG_BPF_SYSCALL") == Some("n") {
        return Err("the kernel has no bpf system call (CONFIG_BPF_SYSCALL)".into());
    }
    if kconfig(f, "CONFIG_BPF_EVENTS") == Some("n") {
        return Err(
            "the kernel cannot attach BPF programs to tracepoints (CONFIG_BPF_EVENTS)".into(),
        );
    }
    if !f.signal_events && f.tracefs.is_some() {
        return Err("the kernel has no signal:signal_generate event".into());
    }
    Ok(())
}

/// The help line when `--backend ebpf` cannot run.
pub const FALLBACK_HELP: &str = "use --backend ftrace (the static agent needs only tracefs), or --backend auto to pick whichever works; `whosent-deploy doctor` lists what the kernel lacks";

/// doctor's rows for the eBPF backend. Its gaps are notes: the ftrace
/// backend, which doctor's verdict is about, does not need any of it.
pub fn rows(f: &Facts) -> Vec<Row> {
    use Status::*;
    let row = |check, status, detail: String| Row {
        check,
        status,
        detail,
    };
    let mut rows = Vec::new();
    let opt = |o: &str| kconfig(f, o).unwrap_or("unknown (no /proc/config.gz or /boot/config)");
    rows.push(match f.unprivileged_bpf_disabled {
        Some(_) => row("bpf syscall", Ok, "CONFIG_BPF_SYSCALL".into()),
        None => row(
            "bpf syscall",
            Note,
            "none (CONFIG_BPF_SYSCALL off): no eBPF backend; ftrace works".into(),
        ),
    });
    rows.push(match kconfig(f, "CONFIG_BPF_EVENTS") {
        Some("y") => row("bpf on tracepoints", Ok, "CONFIG_BPF_EVENTS=y".into()),
        Some(v) => row(
            "bpf on tracepoints",
            Note,
            format!("CONFIG_BPF_EVENTS={v}: no eBPF backend; ftrace works"),
        ),
        None => row(
            "bpf on tracepoints",
            Note,
            format!(
                "CONFIG_BPF_EVENTS {}; the eBPF agent says at attach time",
                opt("CONFIG_BPF_EVENTS")
            ),
        ),
    });
    rows.push(
        match (f.bpf_jit_enable, kconfig(f, "CONFIG_BPF_JIT_ALWAYS_ON")) {
            (Some(0), _) => row(
                "bpf jit",
                Note,
                "off (net.core.bpf_jit_enable=0): programs run interpreted, slower".into(),
            ),
            (Some(n), Some("y")) => {
                row("bpf jit", Ok, format!("on (bpf_jit_enable={n}, always on)"))
            }
            (Some(n), _) => row("bpf jit", Ok, format!("on (bpf_jit_enable={n})")),
            (None, _) => row(
                "bpf jit",
                Note,
                "none: programs run interpreted (arm32 has a JIT since 4.14)".into(),
            ),
        },
    );
    rows.push(match version(&f.release) {
        Some(v) if v >= (5, 8) => row("bpf ring buffer", Ok, format!("Linux {}.{} (5.8+); sender namespace pids too", v.0, v.1)),
        Some(v) if v >= (5, 2) => row("bpf ring buffer", Note, format!("Linux {}.{}: before 5.8, events go through a perf event array, without the sender's namespace pid", v.0, v.1)),
        Some(v) => row("bpf ring buffer", Note, format!("Linux {}.{}: the eBPF program needs 5.2+; ftrace works", v.0, v.1)),
        None => row("bpf ring buffer", Note, format!("unknown for release '{}'", f.release)),
    });
    rows.push(match f.unprivileged_bpf_disabled {
        Some(n) => row(
            "unprivileged bpf",
            Ok,
            format!(
                "kernel.unprivileged_bpf_disabled={n}: does not matter, the agent runs as root"
            ),
        ),
        None => row("unprivileged bpf", Ok, "n/a".into()),
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(extra: &str) -> Facts {
        Facts::parse(&format!(
            "arch=aarch64\nrelease=6.1.0-56-arm64\nuid=0\ntracefs=/sys/kernel/tracing\nsignal_events=1\n{extra}"
        ))
    }

    #[test]
    fn releases_parse_to_major_minor() {
        assert_eq!(version("6.1.0-56-arm64"), Some((6, 1)));
        assert_eq!(version("5.10.120-yocto-standard"), Some((5, 10)));
        assert_eq!(version("4.19"), Some((4, 19)));
        assert_eq!(version("weird"), None);
    }

    #[test]
    fn a_debian_board_can_run_it() {
        let f = board("unprivileged_bpf_disabled=2\nbpf_jit_enable=1\n");
        assert_eq!(verdict(&f), Ok(()));
        let rows = rows(&f);
        let get = |c: &str| rows.iter().find(|r| r.check == c).unwrap();
        assert_eq!(get("bpf ring buffer").status, Status::Ok);
        assert!(get("unprivileged bpf").detail.contains("does not matter"));
        assert_eq!(get("bpf on tracepoints").status, Status::Note);
    }

    #[test]
    fn what_stands_in_the_way_is_named() {
        let no_syscall = board("");
        assert!(verdict(&no_syscall)
            .unwrap_err()
            .contains("CONFIG_BPF_SYSCALL"));
        let no_events = board("unprivileged_bpf_disabled=0\nkconfig_CONFIG_BPF_EVENTS=n\n");
        assert!(verdict(&no_events)
            .unwrap_err()
            .contains("CONFIG_BPF_EVENTS"));
        let old = Facts {
            release: "4.19.0".into(),
            ..board("unprivileged_bpf_disabled=0\n")
        };
        assert!(verdict(&old).unwrap_err().contains("5.2"));
        let perf = Facts {
            release: "5.4.0".into(),
            ..board("unprivileged_bpf_disabled=0\n")
        };
        assert_eq!(verdict(&perf), Ok(()));
        assert!(rows(&perf)
            .iter()
            .any(|r| r.check == "bpf ring buffer" && r.detail.contains("perf event array")));
    }
}
