//! The one-line human rendering of records, shared by the agent's
//! `--human` and the host tool. Names come from the board and are
//! chosen by whoever runs the process: they are printed through
//! [`escape`], so that none can move the cursor or forge a line.

use crate::cause::Cause;
use crate::code;
use crate::escape::escape;
use crate::record::{Ancestor, Context, ExitRec, Origin, SignalEvent, Task};
use crate::signal;

/// `comm(pid)`, `comm(pid/tid)` for a thread, `comm(tid N)` when the
/// process is unknown; ` ns:N` adds the pid inside a child pid namespace.
fn who(t: &Task) -> String {
    let ns = match t.nspid.as_deref() {
        Some([_, .., inner]) => format!(" ns:{inner}"),
        _ => String::new(),
    };
    match t.pid {
        Some(p) if p == t.tid => format!("{}({p}{ns})", escape(&t.comm)),
        Some(p) => format!("{}({p}/{}{ns})", escape(&t.comm), t.tid),
        None => format!("{}(tid {}{ns})", escape(&t.comm), t.tid),
    }
}

/// The sender and, when known, its parents: `kill(812) <- sh(810) <- init(1)`.
fn sender(t: &Task, parents: &[Ancestor]) -> String {
    let mut s = who(t);
    // The lineage starts with the sender's own process.
    let skip = usize::from(parents.first().is_some_and(|a| Some(a.pid) == t.pid));
    for a in &parents[skip..] {
        s.push_str(&format!(" <- {}({})", escape(&a.comm), a.pid));
    }
    s
}

/// `SIGKILL: kill(812) <- sh(810) <- watchdog.sh(800) <- init(1) -> myapp(650)  code=SI_USER  delivered`
///
/// In interrupt context the running task is named as interrupted, not
/// as the sender.
pub fn signal_line(e: &SignalEvent) -> String {
    signal_line_with(e, e.sender().and_then(|t| t.lineage.as_deref()))
}

/// [`signal_line`] with the sender's lineage given beside the event, as
/// the pipeline hands it over: the agent's `--human` then needs no copy
/// of the event to attach it (docs/agent-size.md).
pub fn signal_line_with(e: &SignalEvent, lineage: Option<&[Ancestor]>) -> String {
    let from = match e.sender() {
        Some(t) => sender(t, lineage.unwrap_or_default()),
        None => kernel_sender(e),
    };
    let code = match code::name(e.sig, e.code) {
        Some(n) => n.to_string(),
        None => e.code.to_string(),
    };
    let mut line = format!(
        "{}: {} -> {}  code={}",
        signal::name(e.sig),
        from,
        who(&e.target),
        code
    );
    if let Some(r) = e.result {
        line.push_str("  ");
        match r.name() {
            Some(n) => line.push_str(n),
            None => line.push_str(&format!("result={}", r.as_raw())),
        }
    }
    let mechanism = match e.cause.filter(|_| e.sender().is_some()) {
        Some(Cause::Fault) => "fault",
        Some(Cause::Pipe) => "broken pipe",
        Some(Cause::FileSizeLimit) => "file size limit",
        Some(Cause::ChildExit) => "child exited",
        Some(Cause::ParentExit) => "parent exited",
        _ => "",
    };
    if !mechanism.is_empty() {
        line.push_str(&format!("  [{mechanism}]"));
    }
    line
}

/// Who sent it, in words, when no process did: the kernel mechanism and
/// the task in whose context it ran, never as the sender.
fn kernel_sender(e: &SignalEvent) -> String {
    let ctx = who(&e.running);
    let (what, how) = match e.cause {
        Some(Cause::Oom) => ("OOM killer", "triggered by"),
        Some(Cause::CpuLimit) => ("CPU time limit", "RLIMIT_CPU of"),
        Some(Cause::TtyHangup) => ("tty hangup", "in the context of"),
        Some(Cause::PidnsExit) => ("pid namespace teardown", "its init exiting:"),
        Some(Cause::Timer) if e.context == Context::Task => ("kernel timer", "in the context of"),
        _ if e.context == Context::Task => ("kernel", "in the context of"),
        _ => {
            return format!(
                "kernel{} [{} on cpu {}, interrupted {ctx}]",
                if e.origin() == Origin::Timer {
                    " timer"
                } else {
                    ""
                },
                e.context.as_str(),
                e.cpu,
            )
        }
    };
    format!("{what} ({how} {ctx})")
}

/// `sleep(140) died: killed by SIGKILL from sh(168)`,
/// `hog(650) died: killed by SIGKILL from the OOM killer`,
/// `prog(141) died: exited with status 3`.
pub fn exit_line(x: &ExitRec) -> String {
    let me = format!("{}({})", escape(&x.comm), x.pid);
    if !x.killed {
        return match x.status {
            Some(s) => format!("{me} died: exited with status {s}"),
            None => format!("{me} died: exited (its status was not traced)"),
        };
    }
    let Some(sig) = x.sig else {
        return format!(
            "{me} died: killed by a signal whose sending was not traced (filtered out or lost)"
        );
    };
    let from = x.by.as_ref().map(|b| match (&b.sender, b.cause) {
        (Some((Some(pid), comm)), _) => format!("{}({pid})", escape(comm)),
        (Some((None, comm)), _) => escape(comm).to_string(),
        (None, Some(Cause::Oom)) => "the OOM killer".into(),
        (None, Some(Cause::CpuLimit)) => "the CPU time limit".into(),
        (None, Some(Cause::TtyHangup)) => "a tty hangup".into(),
        (None, Some(Cause::PidnsExit)) => "the pid namespace teardown".into(),
        (None, Some(Cause::Timer)) => "a timer".into(),
        (None, _) => "the kernel".into(),
    });
    match from {
        Some(f) => format!("{me} died: killed by {} from {f}", signal::name(sig)),
        None => format!("{me} died: killed by {}", signal::name(sig)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Ancestor, Context, Outcome};

    #[test]
    fn the_article_shape() {
        let e = SignalEvent {
            ts_ns: 0,
            cpu: 3,
            sig: 9,
            code: 0,
            errno: 0,
            group: Some(true),
            result: Some(Outcome::Delivered),
            context: Context::Task,
            running: Task {
                pid: Some(6993),
                tid: 6993,
                comm: "test_sender".into(),
                ..Default::default()
            },
            target: Task {
                pid: Some(6985),
                tid: 6985,
                comm: "test_receiver".into(),
                ..Default::default()
            },
            cause: None,
            oom: None,
        };
        assert_eq!(
            signal_line(&e),
            "SIGKILL: test_sender(6993) -> test_receiver(6985)  code=SI_USER  delivered"
        );
        let mut irq = e.clone();
        irq.context = Context::Hardirq;
        irq.sig = 14;
        irq.code = 0x80;
        irq.result = Some(Outcome::Other(5));
        irq.target.tid = 6990;
        assert_eq!(
            signal_line(&irq),
            "SIGALRM: kernel timer [hardirq on cpu 3, interrupted test_sender(6993)] -> test_receiver(6985/6990)  code=SI_KERNEL  result=5"
        );
        irq.sig = 29;
        irq.code = 0x80;
        irq.context = Context::Softirq;
        assert!(signal_line(&irq).starts_with("SIGIO: kernel [softirq on cpu 3, interrupted"));
    }

    #[test]
    fn hostile_names_are_escaped_in_the_line() {
        let e = SignalEvent {
            ts_ns: 0,
            cpu: 0,
            sig: 10,
            code: 0,
            errno: 0,
            group: Some(true),
            result: Some(Outcome::Delivered),
            context: Context::Task,
            running: Task {
                pid: Some(7),
                tid: 7,
                comm: "\r\x1b[2KSIGKILL: i".into(),
                lineage: Some(vec![
                    Ancestor {
                        pid: 7,
                        comm: "x".into(),
                        ..Default::default()
                    },
                    Ancestor {
                        pid: 6,
                        comm: "sh\x1b]0;t\x07".into(),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            },
            target: Task {
                pid: Some(8),
                tid: 9,
                comm: "a\\b\u{9b}2J\x7f".into(),
                ..Default::default()
            },
            cause: None,
            oom: None,
        };
        let line = signal_line(&e);
        assert_eq!(
            line,
            "SIGUSR1: \\r\\x1b[2KSIGKILL: i(7) <- sh\\x1b]0;t\\x07(6) -> a\\\\b\\u{009b}2J\\x7f(8/9)  code=SI_USER  delivered"
        );
        let mut irq = e.clone();
        irq.context = Context::Hardirq;
        assert!(signal_line(&irq).contains("interrupted \\r\\x1b[2KSIGKILL: i(7)"));
        assert!(!signal_line(&irq).chars().any(char::is_control));
    }

    #[test]
    fn the_chain_of_parents_and_namespace_pids() {
        let a = |pid, comm: &str| Ancestor {
            pid,
            comm: comm.into(),
            ..Default::default()
        };
        let e = SignalEvent {
            ts_ns: 0,
            cpu: 0,
            sig: 9,
            code: 0,
            errno: 0,
            group: Some(true),
            result: Some(Outcome::Delivered),
            context: Context::Task,
            running: Task {
                pid: Some(812),
                tid: 812,
                comm: "kill".into(),
                lineage: Some(vec![
                    a(812, "kill"),
                    a(810, "sh"),
                    a(800, "watchdog.sh"),
                    a(1, "init"),
                ]),
                ..Default::default()
            },
            target: Task {
                pid: Some(650),
                tid: 650,
                comm: "myapp".into(),
                nspid: Some(vec![650, 7, 1]),
                ..Default::default()
            },
            cause: None,
            oom: None,
        };
        assert_eq!(
            signal_line(&e),
            "SIGKILL: kill(812) <- sh(810) <- watchdog.sh(800) <- init(1) -> myapp(650 ns:1)  code=SI_USER  delivered"
        );
        let mut one = e.clone();
        one.running.lineage = Some(vec![a(812, "kill")]);
        one.running.nspid = Some(vec![812]);
        assert!(signal_line(&one).starts_with("SIGKILL: kill(812) -> myapp"));
    }
}
