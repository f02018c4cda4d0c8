//! `whosent-deploy doctor`: a table of what the board has and lacks for
//! tracing, each gap with its fix. Exit 0 when an ftrace deploy can
//! work, 1 when something blocks it, 2 when the board cannot be reached.

use crate::board::Facts;
use crate::build::Target as Arch;
use crate::cli::DoctorArgs;
use crate::deploy;
use crate::error::HostError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, with a caveat.
    Note,
    /// Blocks an ftrace deploy.
    Missing,
}

pub struct Row {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
}

fn row(check: &'static str, status: Status, detail: impl Into<String>) -> Row {
    Row {
        check,
        status,
        detail: detail.into(),
    }
}

/// The findings for a board, in the order they matter.
pub fn findings(f: &Facts, sudo: bool) -> Vec<Row> {
    use Status::*;
    let mut rows = Vec::new();
    rows.push(match Arch::from_uname_m(&f.arch) {
        Some(a) => row(
            "architecture",
            Ok,
            format!("{} (agent: {})", f.arch, a.name()),
        ),
        None => row(
            "architecture",
            Missing,
            format!(
                "{}: not supported; whosent builds agents for aarch64, armv7 and x86_64",
                f.arch
            ),
        ),
    });
    rows.push(row("kernel", Ok, f.release.clone()));
    // Under --sudo the probe itself ran as root.
    let privileged = f.is_root();
    let login_root = f.login_uid.map_or(f.is_root(), |u| u == 0);
    rows.push(if login_root {
        row("root", Ok, "logged in as root")
    } else if privileged {
        row("root", Ok, "through sudo -n")
    } else if f.sudo_ok && !sudo {
        row(
            "root",
            Missing,
            "not root; passwordless sudo works: add --sudo",
        )
    } else {
        row(
            "root",
            Missing,
            "not root and no passwordless sudo: log in as root (-l root) or allow NOPASSWD sudo",
        )
    });
    rows.push(match (&f.tracefs, f.tracefs_supported, privileged) {
        (Some(t), _, _) => row("tracefs", Ok, format!("mounted at {t}")),
        (None, true, _) => row("tracefs", Note, "not mounted; the agent mounts it at /sys/kernel/tracing (or: mount -t tracefs nodev /sys/kernel/tracing)"),
        (None, false, _) if f.debugfs_supported => row("tracefs", Note, "no tracefs; the agent mounts debugfs and uses /sys/kernel/debug/tracing"),
        (None, false, _) => row("tracefs", Missing, "the kernel has no tracefs or debugfs: enable CONFIG_FTRACE and CONFIG_EVENT_TRACING"),
    });
    rows.push(if f.signal_events {
        row("signal events", Ok, "signal:signal_generate")
    } else if f.tracefs.is_some() && privileged {
        row("signal events", Missing, "no signal:signal_generate: enable CONFIG_EVENT_TRACING (selected by any tracer, e.g. CONFIG_FUNCTION_TRACER)")
    } else {
        row("signal events", Note, "unknown until tracefs is mounted and readable (needs root)")
    });
    if f.tracefs.is_some() && privileged && !f.instances {
        rows.push(row(
            "ftrace instances",
            Missing,
            "no instances/ directory (Linux 3.10+ needed); whosent never uses the global buffer",
        ));
    }
    rows.push(match f.tmp_free_kb {
        Some(kb) if kb >= 2048 => row("space in /tmp", Ok, format!("{kb} KiB free")),
        Some(kb) => row(
            "space in /tmp",
            Missing,
            format!("{kb} KiB free; the agent needs about 1 MiB: free space in /tmp or set TMPDIR"),
        ),
        None => row(
            "space in /tmp",
            Note,
            "unknown (no df); the upload fails clearly if it is full",
        ),
    });
    let tool = |name: &'static str, ok: &str, fix: &str| {
        if f.has(name) {
            row(name, Ok, ok)
        } else {
            row(name, Note, fix)
        }
    };
    rows.push(tool(
        "tar",
        "unpacks the upload bundle",
        "missing: the raw agent is uploaded instead (install busybox tar to use bundles)",
    ));
    rows.push(tool(
        "sha256sum",
        "checks the agent before it runs",
        "missing: the agent's sha256 is checked by reading it back over SSH instead",
    ));
    rows.push(if f.has("scp") || f.sftp {
        row(
            "scp/sftp",
            Ok,
            format!(
                "{}{}",
                if f.has("scp") { "scp " } else { "" },
                if f.sftp { "sftp" } else { "" }
            ),
        )
    } else {
        row(
            "scp/sftp",
            Note,
            "neither: uploads go through the SSH exec channel (works, as with Debian's dropbear)",
        )
    });
    rows.push(tool(
        "staprun",
        "for --backend stap",
        "missing: needed only for --backend stap; pass --staprun-bundle",
    ));
    rows.push(audit_row(f));
    rows.extend(crate::bpf::rows(f));
    rows
}

/// What --backend audit needs: CONFIG_AUDIT and CONFIG_AUDITSYSCALL,
/// and how it will read (beside auditd, or as the audit daemon). Only a
/// note either way: the ftrace agent does not need audit.
fn audit_row(f: &Facts) -> Row {
    use Status::*;
    let daemon = match f.auditd {
        Some(pid) => format!("auditd runs (pid {pid}): the backend reads beside it"),
        None => "auditd does not run: the backend reads as the audit daemon".to_string(),
    };
    let audit = f.kconfig_audit.unwrap_or(f.loginuid);
    match (audit, f.kconfig_auditsyscall) {
        (false, _) => row(
            "audit",
            Note,
            "no CONFIG_AUDIT: needed only for --backend audit",
        ),
        (true, Some(false)) => row(
            "audit",
            Note,
            "CONFIG_AUDIT but no CONFIG_AUDITSYSCALL: --backend audit needs both",
        ),
        (true, Some(true)) => row(
            "audit",
            Ok,
            format!("CONFIG_AUDIT, CONFIG_AUDITSYSCALL (for --backend audit); {daemon}"),
        ),
        (true, None) => row(
            "audit",
            Note,
            format!("CONFIG_AUDIT (/proc/self/loginuid); CONFIG_AUDITSYSCALL unknown (no kernel config to read); {daemon}"),
        ),
    }
}

pub fn can_deploy(rows: &[Row]) -> bool {
    rows.iter().all(|r| r.status != Status::Missing)
}

pub fn command(d: &DoctorArgs) -> Result<i32, HostError> {
    command_to(d, &mut crate::stdout::Raw)
}

/// As [`command`], the table to `out` (one board of several:
/// [`crate::fleet`]).
pub fn command_to(d: &DoctorArgs, out: &mut dyn std::io::Write) -> Result<i32, HostError> {
    let (target, conn) = deploy::connect(&d.ssh, None)?;
    let facts = deploy::probe::probe(&conn, d.sudo)?;
    let rows = findings(&facts, d.sudo);
    // Written out at the end, checked (println! panics on a full stdout).
    let mut text = format!(
        "whosent doctor: {}@{}:{}\n",
        target.user, target.host, target.port
    );
    for r in &rows {
        let s = match r.status {
            Status::Ok => "ok",
            Status::Note => "note",
            Status::Missing => "MISSING",
        };
        // The details quote the board's own answers.
        let detail = whosent_proto::escape::escape(&r.detail);
        text += &format!("  {:<17} {:<8} {detail}\n", r.check, s);
    }
    // Upload directories a killed run left behind (deploy::dir).
    let stale = deploy::dir::remove_stale(&conn)?;
    let detail = if stale.is_empty() {
        "none left by earlier runs".to_string()
    } else {
        format!(
            "removed {}",
            whosent_proto::escape::escape(&stale.join(", "))
        )
    };
    text += &format!("  {:<17} {:<8} {detail}\n", "stale uploads", "ok");
    let ok = can_deploy(&rows);
    text += if ok {
        "an ftrace deploy can work on this board\n"
    } else {
        "an ftrace deploy cannot work until the MISSING items are fixed\n"
    };
    text += &match crate::bpf::verdict(&facts) {
        Ok(()) if ok => "--backend ebpf can work on this board (auto picks it)\n".to_string(),
        Ok(()) => "--backend ebpf can work once the MISSING items are fixed\n".to_string(),
        Err(why) => format!(
            "--backend ebpf cannot work: {}; --backend auto uses ftrace\n",
            whosent_proto::escape::escape(&why)
        ),
    };
    crate::stdout::write_to(out, text.as_bytes())?;
    Ok(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_board_is_reported_but_can_work() {
        let f = Facts::parse("arch=aarch64\nrelease=6.1\nuid=0\nhas_tar=0\nhas_sha256sum=0\ntracefs_supported=1\ntmp_df=tmpfs 1000 0 250000 0% /tmp\n");
        let rows = findings(&f, false);
        let get = |c: &str| rows.iter().find(|r| r.check == c).unwrap();
        assert_eq!(get("tracefs").status, Status::Note);
        assert!(get("tracefs").detail.contains("not mounted"));
        assert_eq!(get("tar").status, Status::Note);
        assert!(get("sha256sum").detail.contains("missing"));
        assert!(can_deploy(&rows));
    }

    #[test]
    fn audit_is_reported_for_the_audit_backend_and_never_blocks() {
        let rows = |probe: &str| findings(&Facts::parse(probe), false);
        let get = |rows: &[Row]| {
            rows.iter()
                .find(|r| r.check == "audit")
                .map(|r| (r.status, r.detail.clone()))
                .unwrap()
        };
        let (st, d) = get(&rows(
            "kconfig_AUDIT=y\nkconfig_AUDITSYSCALL=y\nauditd=612\n",
        ));
        assert_eq!(st, Status::Ok);
        assert!(
            d.contains("CONFIG_AUDITSYSCALL") && d.contains("auditd runs (pid 612)"),
            "{d}"
        );
        let (st, d) = get(&rows("loginuid=1\n"));
        assert_eq!(st, Status::Note);
        assert!(
            d.contains("CONFIG_AUDITSYSCALL unknown") && d.contains("as the audit daemon"),
            "{d}"
        );
        let r = rows("arch=aarch64\nuid=0\ntracefs=/t\nsignal_events=1\ninstances=1\ntmp_df=x 1 1 9999 1% /tmp\n");
        assert_eq!(get(&r).0, Status::Note);
        assert!(can_deploy(&r));
    }

    #[test]
    fn non_root_without_sudo_blocks() {
        let f = Facts::parse(
            "login_uid=1000\narch=x86_64\nuid=1000\ntracefs=/sys/kernel/tracing\nsudo_ok=1\n",
        );
        let rows = findings(&f, false);
        assert!(!can_deploy(&rows));
        assert!(rows.iter().any(|r| r.detail.contains("add --sudo")));
        // With --sudo the probe runs as root and sees the events.
        let f = Facts::parse("login_uid=1000\narch=x86_64\nuid=0\ntracefs=/sys/kernel/tracing\nsignal_events=1\ninstances=1\n");
        let rows = findings(&f, true);
        assert!(can_deploy(&rows));
        assert!(rows.iter().any(|r| r.detail == "through sudo -n"));
    }
}
