//! What mechanism generated a signal: a process's kill(), or the kernel
//! on its own (the OOM killer, a CPU-time limit, a tty hangup, …).
//!
//! `signal:signal_generate` names the task that was *running*
//! (`current`), which is the sender only when a process asked for the
//! signal. When the kernel generated it on its own (`SEND_SIG_PRIV`,
//! recorded as `SI_KERNEL` by `TP_STORE_SIGINFO` in
//! `include/trace/events/signal.h`), the running task merely provided
//! the context, and crediting it would blame an innocent allocator, or
//! the victim itself. [`classify`] tells the mechanism from the event and
//! the few facts around it ([`Hints`]); [`Cause::has_sender`] says
//! whether the running task is then the sender.

/// A signal's cause (`cause` in the `signal` record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// kill, tgkill, tkill, sigqueue, rt_tgsigqueueinfo,
    /// pidfd_send_signal (or a write to `cgroup.kill`).
    Kill,
    /// The OOM killer (`mm/oom_kill.c`, `__oom_kill_process`).
    Oom,
    /// RLIMIT_CPU or RLIMIT_RTTIME (`kernel/time/posix-cpu-timers.c`).
    CpuLimit,
    /// SIGXFSZ for a write past RLIMIT_FSIZE (`mm/filemap.c`,
    /// `generic_write_check_limits`).
    FileSizeLimit,
    /// alarm, setitimer, POSIX timers.
    Timer,
    /// A fault of the target thread itself (`force_sig_fault`).
    Fault,
    /// SIGPIPE for a write to a closed pipe or socket (`fs/pipe.c`).
    Pipe,
    /// SIGCHLD with a CLD_* code (`do_notify_parent`).
    ChildExit,
    /// The PR_SET_PDEATHSIG signal, sent as the parent exits
    /// (`kernel/exit.c`, `reparent_leader`'s caller).
    ParentExit,
    /// SIGHUP/SIGCONT from the tty layer (`tty_signal_session_leader`,
    /// `disassociate_ctty`).
    TtyHangup,
    /// SIGKILL to every process of a pid namespace whose init exited
    /// (`zap_pid_ns_processes`).
    PidnsExit,
    /// Any other signal the kernel generated itself.
    Kernel,
}

const NAMES: [(Cause, &str); 12] = [
    (Cause::Kill, "kill"),
    (Cause::Oom, "oom"),
    (Cause::CpuLimit, "cpu_limit"),
    (Cause::FileSizeLimit, "file_size_limit"),
    (Cause::Timer, "timer"),
    (Cause::Fault, "fault"),
    (Cause::Pipe, "pipe"),
    (Cause::ChildExit, "child_exit"),
    (Cause::ParentExit, "parent_exit"),
    (Cause::TtyHangup, "tty_hangup"),
    (Cause::PidnsExit, "pidns_exit"),
    (Cause::Kernel, "kernel"),
];

/// [`Cause::names`] as one line, for errors: a constant, since joining
/// them is code in the agent (docs/agent-size.md).
pub const NAMES_LIST: &str = "kill, oom, cpu_limit, file_size_limit, timer, fault, pipe, child_exit, parent_exit, tty_hangup, pidns_exit, kernel";

impl Cause {
    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("", |(_, n)| n)
    }

    pub fn from_name(n: &str) -> Option<Self> {
        NAMES.iter().find(|(_, s)| *s == n).map(|(c, _)| *c)
    }

    /// Every name, for `--help` and errors.
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(_, n)| *n)
    }

    /// Whether the running task is the sender. For the others the kernel
    /// generated the signal on its own, in whatever task's context.
    pub fn has_sender(self) -> bool {
        matches!(
            self,
            Cause::Kill
                | Cause::FileSizeLimit
                | Cause::Fault
                | Cause::Pipe
                | Cause::ChildExit
                | Cause::ParentExit
        )
    }
}

/// What is known around one event, beyond its own fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    /// `oom:mark_victim` named the target right after this SIGKILL, or
    /// the same OOM kill went on to the processes sharing the victim's
    /// memory.
    pub oom: bool,
    /// The running task had already passed `sched_process_exit`: the
    /// kernel was sending on its way out (`do_exit` fires that event
    /// before `exit_notify`).
    pub running_exited: bool,
}

// include/uapi/asm-generic/siginfo.h
const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
const SI_QUEUE: i32 = -1;
const SI_TKILL: i32 = -6;

/// The event's facts that [`classify`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub sig: i32,
    pub code: i32,
    /// Generated in a task's own context (not an interrupt).
    pub in_task: bool,
    /// The target is the running task's own process.
    pub to_self: bool,
    /// `origin` says a timer expired.
    pub timer: bool,
}

/// The cause of one signal; `None` when nothing tells (for example
/// SI_SIGIO or an unknown code).
pub fn classify(f: Facts, h: Hints) -> Option<Cause> {
    use crate::signal::{SIGCHLD, SIGCONT, SIGHUP, SIGKILL, SIGPIPE, SIGXCPU, SIGXFSZ};
    let (sig, code) = (f.sig, f.code);
    Some(if h.oom {
        // SEND_SIG_PRIV since 4.20, SEND_SIG_FORCED (recorded as
        // SI_USER) before; mark_victim tells either way.
        Cause::Oom
    } else if f.timer {
        Cause::Timer
    } else if code == SI_KERNEL {
        match sig {
            // check_rlimit(): SIGXCPU each second past the soft limit,
            // SIGKILL at the hard one, both to the task's own group.
            SIGXCPU => Cause::CpuLimit,
            SIGKILL if f.to_self && !h.running_exited => Cause::CpuLimit,
            // zap_pid_ns_processes(), in the dying init's context.
            SIGKILL if !f.to_self && h.running_exited => Cause::PidnsExit,
            SIGHUP | SIGCONT => Cause::TtyHangup,
            _ => Cause::Kernel,
        }
    } else if !f.in_task {
        // A driver or softirq: no task asked for it.
        Cause::Kernel
    } else if is_fault(sig) && code > 0 && f.to_self {
        Cause::Fault
    } else if sig == SIGCHLD && (1..=6).contains(&code) {
        Cause::ChildExit
    } else if code == SI_USER && f.to_self && sig == SIGPIPE {
        // send_sig(SIGPIPE, current, 0): SEND_SIG_NOINFO, so SI_USER.
        Cause::Pipe
    } else if code == SI_USER && f.to_self && sig == SIGXFSZ {
        Cause::FileSizeLimit
    } else if code == SI_USER && h.running_exited && !f.to_self {
        // A task past sched_process_exit makes no system call: the
        // SI_USER it sends is its children's pdeath_signal.
        Cause::ParentExit
    } else if matches!(code, SI_USER | SI_QUEUE | SI_TKILL) {
        Cause::Kill
    } else {
        return None;
    })
}

/// The signals `force_sig_fault` sends for a fault, with a positive
/// per-signal code (SEGV_MAPERR, BUS_ADRALN, FPE_INTDIV, ILL_ILLOPC,
/// TRAP_BRKPT, …).
fn is_fault(sig: i32) -> bool {
    use crate::signal::{SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};
    matches!(sig, SIGSEGV | SIGBUS | SIGFPE | SIGILL | SIGTRAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(sig: i32, code: i32, to_self: bool) -> Facts {
        Facts {
            sig,
            code,
            in_task: true,
            to_self,
            timer: false,
        }
    }

    #[test]
    fn names_round_trip() {
        for n in Cause::names() {
            assert_eq!(Cause::from_name(n).unwrap().as_str(), n);
        }
        assert_eq!(Cause::names().count(), 12);
        assert_eq!(Cause::names().collect::<Vec<_>>().join(", "), NAMES_LIST);
    }

    #[test]
    fn the_kernel_senders_are_told_apart() {
        let none = Hints::default();
        let exiting = Hints {
            running_exited: true,
            ..none
        };
        let oom = Hints { oom: true, ..none };
        for (facts, hints, want) in [
            (f(9, 0x80, false), oom, Some(Cause::Oom)),
            (f(9, 0, false), oom, Some(Cause::Oom)),
            (f(9, 0x80, false), none, Some(Cause::Kernel)),
            (f(24, 0x80, true), none, Some(Cause::CpuLimit)),
            (f(9, 0x80, true), none, Some(Cause::CpuLimit)),
            (f(9, 0x80, false), exiting, Some(Cause::PidnsExit)),
            (f(1, 0x80, false), exiting, Some(Cause::TtyHangup)),
            (f(18, 0x80, false), none, Some(Cause::TtyHangup)),
            (f(11, 1, true), none, Some(Cause::Fault)),
            (f(11, 0x80, true), none, Some(Cause::Kernel)),
            (f(17, 1, false), exiting, Some(Cause::ChildExit)),
            (f(13, 0, true), none, Some(Cause::Pipe)),
            (f(25, 0, true), none, Some(Cause::FileSizeLimit)),
            (f(15, 0, false), exiting, Some(Cause::ParentExit)),
            (f(15, 0, false), none, Some(Cause::Kill)),
            (f(10, -6, true), none, Some(Cause::Kill)),
            (f(34, -1, false), none, Some(Cause::Kill)),
            (f(29, -5, false), none, None),
        ] {
            assert_eq!(classify(facts, hints), want, "{facts:?} {hints:?}");
        }
        let irq = Facts {
            in_task: false,
            ..f(29, 1, false)
        };
        assert_eq!(classify(irq, none), Some(Cause::Kernel));
        let timer = Facts { timer: true, ..irq };
        assert_eq!(classify(timer, none), Some(Cause::Timer));
    }

    #[test]
    fn only_process_causes_have_a_sender() {
        let with: Vec<_> = Cause::names()
            .filter(|n| Cause::from_name(n).unwrap().has_sender())
            .collect();
        assert_eq!(
            with,
            [
                "kill",
                "file_size_limit",
                "fault",
                "pipe",
                "child_exit",
                "parent_exit"
            ]
        );
    }
}
