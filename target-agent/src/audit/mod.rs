//! `whosent-audit-reader`: the board side of `--backend audit`. It adds
//! whosent's audit rules over NETLINK_AUDIT (no auditctl needed), reads
//! the kernel's records and writes each as one line of text
//! (`type=1300 msg=audit(...): ...`, which whosent-audit parses on the
//! host), and on every way out deletes exactly its rules and undoes what
//! it changed.
//!
//! How it reads:
//! - when auditd runs, from the read-log multicast group, beside auditd,
//!   which keeps its records and its rules;
//! - otherwise as the audit daemon itself (AUDIT_SET pid), for as long
//!   as it runs; the kernel then sends the records to it alone.
//!
//! When audit is disabled it enables it (and disables it again at the
//! end), and says on stderr what that cannot show: processes started
//! before are never audited, because the kernel gives a task its audit
//! context at fork, and only while audit is enabled (`audit_alloc` in
//! kernel/auditsc.c).
//!
//! A separate binary from the ftrace agent: the agent's size budget
//! stays untouched (docs/agent-size.md).

pub mod netlink;
pub mod rules;

use crate::stop::Stop;
use netlink::{Socket, Status, AUDIT_STATUS_ENABLED, AUDIT_STATUS_PID};
use std::io::Write;

const PROG: &str = "whosent-audit-reader";

fn fail(what: &str, e: std::io::Error, help: &str) -> i32 {
    crate::note!("{PROG}: error: {what}: {e} (help: {help})");
    2
}

/// What was changed, to undo on the way out.
struct Undo {
    rules: Vec<Vec<u8>>,
    daemon: bool,
    enabled_by_us: bool,
}

impl Undo {
    fn run(&self, ctl: &mut Socket, rec: &mut Socket) {
        for r in &self.rules {
            if let Err(e) = ctl.del_rule(r) {
                crate::note!("{PROG}: warning: cannot delete its audit rule: {e}");
            }
        }
        if self.daemon {
            let _ = rec.set(AUDIT_STATUS_PID, 0, 0);
        }
        if self.enabled_by_us {
            let _ = ctl.set(AUDIT_STATUS_ENABLED, 0, 0);
        }
    }
}

/// `--list-rules`: the status (enabled, auditd's pid) and every rule the
/// kernel has, one hex line each, so that a test can compare them before
/// and after a run.
pub fn list_rules() -> i32 {
    let mut ctl = match Socket::open() {
        Ok(s) => s,
        Err(e) => {
            return fail(
                "cannot open the audit socket",
                e,
                "the kernel needs CONFIG_AUDIT",
            )
        }
    };
    let st = match ctl.status() {
        Ok(s) => s,
        Err(e) => return fail("cannot read the audit status", e, "run as root"),
    };
    match ctl.list_rules() {
        Ok(rules) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "status enabled={} pid={}", st.enabled, st.pid);
            for r in rules {
                let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
                let _ = writeln!(out, "rule {hex}");
            }
            let _ = writeln!(out, "end");
            0
        }
        Err(e) => fail("cannot list the audit rules", e, "run as root"),
    }
}

/// Deletes the rules of an earlier run that could not clean up (killed
/// with SIGKILL, or its board lost power): their key names a pid that
/// no longer runs.
fn remove_stale(ctl: &mut Socket) {
    let Ok(all) = ctl.list_rules() else { return };
    for r in all {
        let Some(pid) = rules::key_of(&r)
            .and_then(|k| k.strip_prefix(b"whosent-"))
            .and_then(|p| std::str::from_utf8(p).ok()?.parse::<i32>().ok())
        else {
            continue;
        };
        // Gone, or a zombie nobody reaped yet: it cleans nothing up.
        let gone = match std::fs::read(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(st) => st
                .iter()
                .rposition(|b| *b == b')')
                .and_then(|i| st.get(i + 2))
                .is_some_and(|s| *s == b'Z'),
        };
        if !gone {
            continue;
        }
        match ctl.del_rule(&r) {
            Ok(()) => {
                crate::note!("whosent: removed an audit rule left by an earlier run (pid {pid})")
            }
            Err(e) => crate::note!(
                "whosent: warning: cannot remove the audit rule of an earlier run (pid {pid}): {e}"
            ),
        }
    }
}

pub fn run(filter: rules::Filter) -> i32 {
    let stop = match Stop::install() {
        Ok(s) => s,
        Err(e) => return fail("cannot install signal handlers", e, "report this as a bug"),
    };
    let (mut ctl, mut rec) = match (Socket::open(), Socket::open()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            return fail(
                "cannot open the audit netlink socket",
                e,
                "the board's kernel needs CONFIG_AUDIT and CONFIG_AUDITSYSCALL; `whosent-deploy doctor` checks",
            )
        }
    };
    let st: Status = match ctl.status() {
        Ok(s) => s,
        Err(e) => {
            return fail(
                "cannot read the audit status",
                e,
                "run as root (CAP_AUDIT_CONTROL)",
            )
        }
    };
    if st.enabled == 2 {
        crate::note!("{PROG}: error: audit is locked (enabled=2): no rule can be added until reboot (help: use --backend ftrace, or add the rules of docs/parse.md at boot and parse the log)");
        return 2;
    }
    remove_stale(&mut ctl);
    let mut undo = Undo {
        rules: Vec::new(),
        daemon: st.pid == 0,
        enabled_by_us: false,
    };
    let result = setup_and_read(&mut ctl, &mut rec, st, &mut undo, &stop, filter);
    undo.run(&mut ctl, &mut rec);
    result
}

fn setup_and_read(
    ctl: &mut Socket,
    rec: &mut Socket,
    st: Status,
    undo: &mut Undo,
    stop: &Stop,
    filter: rules::Filter,
) -> i32 {
    if st.enabled == 0 {
        if let Err(e) = ctl.set(AUDIT_STATUS_ENABLED, 1, 0) {
            return fail("cannot enable audit", e, "run as root (CAP_AUDIT_CONTROL)");
        }
        undo.enabled_by_us = true;
        crate::note!(
            "whosent: audit was disabled; enabled it for this run. Processes started before now \
             are invisible to it (a task gets its audit context at fork, only once audit was \
             enabled): boot the board with audit=1 to see them. Until the board reboots, the \
             processes it starts from now on take the slower audited system call path, even \
             after this run disables audit again (docs/audit.md)"
        );
    }
    let mode = if undo.daemon {
        // SAFETY: getpid cannot fail.
        let me = unsafe { libc::getpid() } as u32;
        if let Err(e) = rec.set(AUDIT_STATUS_PID, 0, me) {
            undo.daemon = false;
            return fail(
                "cannot become the audit daemon",
                e,
                "run as root; or start auditd and run again",
            );
        }
        "daemon"
    } else {
        if let Err(e) = rec.join_readlog() {
            return fail(
                "cannot read audit records beside auditd (multicast group)",
                e,
                "the kernel needs 3.16+ and the capability CAP_AUDIT_READ: run as root",
            );
        }
        "multicast"
    };
    // SAFETY: getpid cannot fail.
    let key = format!("whosent-{}", unsafe { libc::getpid() });
    let mut names = Vec::new();
    for (i, arch) in rules::arches().into_iter().enumerate() {
        for r in rules::rules(arch, &key, filter) {
            match ctl.add_rule(&r) {
                Ok(()) => {
                    undo.rules.push(r);
                    if !names.contains(&arch.name) {
                        names.push(arch.name);
                    }
                }
                // The 32-bit ABI may be compiled out (no CONFIG_COMPAT).
                Err(_) if i > 0 => break,
                Err(e) => {
                    return fail(
                        "cannot add the audit rule",
                        e,
                        "run as root (CAP_AUDIT_CONTROL)",
                    )
                }
            }
        }
    }
    {
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        if writeln!(
            o,
            "ready mode={mode} auditd={} key={key} abis={}",
            st.pid,
            names.join(",")
        )
        .and_then(|()| o.flush())
        .is_err()
        {
            // No one to report to; the rules go on the way out.
            return 2;
        }
    }
    read(rec, stop)
}

fn read(rec: &Socket, stop: &Stop) -> i32 {
    let mut buf = vec![0u8; 1 << 16];
    let mut out = std::io::stdout().lock();
    let mut line = Vec::with_capacity(1024);
    loop {
        let mut fds = vec![
            libc::pollfd {
                fd: rec.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.wake_fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        if let Some(fd) = stop.stdin_fd {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: fds is a valid array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        if stop.signalled().is_some() {
            return 0;
        }
        if n < 0 {
            continue;
        }
        if fds.len() > 2 && fds[2].revents != 0 && stop.stdin_closed() {
            return 0;
        }
        if fds[0].revents & libc::POLLIN == 0 {
            continue;
        }
        let msgs = match rec.recv(&mut buf) {
            Ok(m) => m,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                crate::note!(
                    "whosent: warning: the kernel dropped audit records (socket buffer full)"
                );
                continue;
            }
            Err(_) => continue,
        };
        for (ty, payload) in msgs {
            // Records have types from 1100 up; lower ones are replies.
            if ty < 1100 {
                continue;
            }
            let end = payload
                .iter()
                .rposition(|b| !matches!(b, 0 | b'\n'))
                .map_or(0, |i| i + 1);
            line.clear();
            let _ = write!(line, "type={ty} msg=");
            line.extend_from_slice(&payload[..end]);
            line.push(b'\n');
            if out.write_all(&line).is_err() {
                return 0;
            }
        }
        if out.flush().is_err() {
            return 0;
        }
    }
}
