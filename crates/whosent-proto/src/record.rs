//! The records of the wire format and how the agent writes them.
//!
//! One record per line, each a JSON object with a `type`:
//! `ready`, `signal`, `lost`, `end`, `error`. See `docs/json-schema.md`.

use crate::cause::Cause;
use crate::json::Obj;
use crate::{code, signal, SCHEMA_VERSION};

#[cfg(feature = "decode")]
use serde::Deserialize;

/// A task as the kernel saw it.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "decode", derive(Deserialize))]
pub struct Task {
    /// The process (tgid); `None` when it had exited and nothing else
    /// recorded it.
    pub pid: Option<i32>,
    /// The thread (the kernel's task pid).
    pub tid: i32,
    pub comm: String,
    #[cfg_attr(feature = "decode", serde(default))]
    pub uid: Option<u32>,
    #[cfg_attr(feature = "decode", serde(default))]
    pub cmdline: Option<String>,
    /// Its cgroup v2 id (the cgroup directory's inode number), read in
    /// the kernel at the signal (sender and running task, eBPF backend
    /// only); `None` when not known.
    #[cfg_attr(feature = "decode", serde(default))]
    pub cgroup_id: Option<u64>,
    /// The process id in each pid namespace, from the agent's own down
    /// to the one the process lives in (`NStgid` in /proc/PID/status);
    /// `None` when it could not be read.
    #[cfg_attr(feature = "decode", serde(default))]
    pub nspid: Option<Vec<i32>>,
    /// The sender's process first, then its parent, up to pid 1
    /// (sender only; `None` when not known, e.g. for recorded text).
    #[cfg_attr(feature = "decode", serde(default))]
    pub lineage: Option<Vec<Ancestor>>,
}

/// One process in a sender's lineage, as it was when it ran.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "decode", derive(Deserialize))]
pub struct Ancestor {
    pub pid: i32,
    pub comm: String,
    /// The file it executed, as given to execve.
    pub exe: Option<String>,
    pub cmdline: Option<String>,
}

/// What generated a signal, as far as the event tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The running task: its system call, fault or exit.
    Task,
    /// A timer expired: a POSIX timer (`SI_TIMER`), or `alarm`/`setitimer`
    /// (`SI_KERNEL` for SIGALRM, SIGVTALRM, SIGPROF).
    Timer,
    /// The kernel in interrupt context, for some other reason.
    Kernel,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Task => "task",
            Origin::Timer => "timer",
            Origin::Kernel => "kernel",
        }
    }
}

/// Where the kernel was when it generated the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "decode",
    derive(Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Context {
    /// A task's own system call or fault: the running task sent it.
    Task,
    /// Interrupt context: the running task was merely interrupted.
    Hardirq,
    Softirq,
    Nmi,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Task => "task",
            Context::Hardirq => "hardirq",
            Context::Softirq => "softirq",
            Context::Nmi => "nmi",
        }
    }
}

/// signal_generate's `result` (`enum trace_signal_result`, kernel 3.4+).
/// Vendor kernels add values, so unknown ones stay numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Ignored,
    AlreadyPending,
    OverflowFail,
    LoseInfo,
    Other(i32),
}

const OUTCOMES: [(Outcome, &str); 5] = [
    (Outcome::Delivered, "delivered"),
    (Outcome::Ignored, "ignored"),
    (Outcome::AlreadyPending, "already_pending"),
    (Outcome::OverflowFail, "overflow_fail"),
    (Outcome::LoseInfo, "lose_info"),
];

impl Outcome {
    pub fn from_raw(v: i32) -> Self {
        match usize::try_from(v).ok().and_then(|i| OUTCOMES.get(i)) {
            Some((o, _)) => *o,
            None => Outcome::Other(v),
        }
    }

    pub fn name(self) -> Option<&'static str> {
        OUTCOMES.iter().find(|(o, _)| *o == self).map(|(_, n)| *n)
    }

    pub fn from_name(n: &str) -> Option<Self> {
        OUTCOMES.iter().find(|(_, s)| *s == n).map(|(o, _)| *o)
    }
}

/// One generated signal.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalEvent {
    /// Kernel trace clock, nanoseconds.
    pub ts_ns: u64,
    pub cpu: u32,
    pub sig: i32,
    pub code: i32,
    pub errno: i32,
    /// Sent to the whole thread group (`group`); absent before 3.4.
    pub group: Option<bool>,
    /// Absent before 3.4.
    pub result: Option<Outcome>,
    pub context: Context,
    /// The task that was running when the event fired. In task context
    /// it is the sender; in interrupt context it was only interrupted.
    pub running: Task,
    pub target: Task,
    /// The mechanism, when it is known (`cause::classify`).
    pub cause: Option<Cause>,
    /// What `oom:mark_victim` said of the victim (cause `oom` only);
    /// boxed, as every other record has none.
    pub oom: Option<Box<OomVictim>>,
}

/// The victim's facts from `oom:mark_victim` (`include/trace/events/oom.h`):
/// only the pid before 6.9 (commit 72ba14deb40a), so each may be unknown.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "decode", derive(Deserialize))]
pub struct OomVictim {
    pub total_vm_kb: Option<u64>,
    pub anon_rss_kb: Option<u64>,
    pub file_rss_kb: Option<u64>,
    pub shmem_rss_kb: Option<u64>,
    pub pgtables_kb: Option<u64>,
    pub uid: Option<u32>,
    pub oom_score_adj: Option<i32>,
}

impl SignalEvent {
    /// The sender, or `None` when no process sent it: it came from
    /// interrupt context, or the kernel generated it on its own (the
    /// cause says so), and the running task must not be credited.
    pub fn sender(&self) -> Option<&Task> {
        (self.context == Context::Task && self.cause.is_none_or(Cause::has_sender))
            .then_some(&self.running)
    }

    /// Sets [`cause`](Self::cause) from the event and `hints`.
    pub fn classify(&mut self, hints: crate::cause::Hints) {
        let to_self = match (self.running.pid, self.target.pid) {
            (Some(a), Some(b)) => a == b,
            _ => self.running.tid == self.target.tid,
        };
        self.cause = crate::cause::classify(
            crate::cause::Facts {
                sig: self.sig,
                code: self.code,
                in_task: self.context == Context::Task,
                to_self,
                timer: self.origin() == Origin::Timer,
            },
            hints,
        );
    }

    pub fn origin(&self) -> Origin {
        // SI_TIMER, or SEND_SIG_PRIV from it_real_fn / the itimers
        // (kernel/time/itimer.c, posix-cpu-timers.c).
        if self.code == -2 || (self.code == 0x80 && matches!(self.sig, 14 | 26 | 27)) {
            Origin::Timer
        } else if self.context == Context::Task {
            Origin::Task
        } else {
            Origin::Kernel
        }
    }
}

/// How a watched process ended (the `exit` record).
#[derive(Debug, Clone, PartialEq)]
pub struct ExitRec {
    pub ts_ns: u64,
    pub pid: i32,
    pub comm: String,
    /// A signal killed it (`signal:signal_deliver` with a fatal default
    /// action came before any exit_group).
    pub killed: bool,
    /// The signal that killed it; `None` when it exited by itself, or
    /// when the signal's generation was not seen (filtered, lost).
    pub sig: Option<i32>,
    /// Its exit status (`syscalls:sys_enter_exit_group`); `None` when it
    /// was killed, or the kernel has no syscall events.
    pub status: Option<i32>,
    /// The reported signal that killed it, when one was seen.
    pub by: Option<Blame>,
}

/// The signal record behind a death, as the `exit` record repeats it.
#[derive(Debug, Clone, PartialEq)]
pub struct Blame {
    pub ts_ns: u64,
    pub code: i32,
    pub cause: Option<Cause>,
    /// The sender's process and name; `None` when no process sent it.
    pub sender: Option<(Option<i32>, String)>,
}

impl Blame {
    pub fn of(e: &SignalEvent) -> Self {
        Blame {
            ts_ns: e.ts_ns,
            code: e.code,
            cause: e.cause,
            sender: e.sender().map(|t| (t.pid, t.comm.clone())),
        }
    }
}

impl ExitRec {
    pub fn encode(&self, out: &mut String) {
        let mut o = Obj::new(out);
        o.str("type", "exit")
            .secs("ts", self.ts_ns)
            .int("pid", self.pid as i64)
            .str("comm", &self.comm)
            .str("how", if self.killed { "killed" } else { "exited" })
            .opt_int("status", self.status.map(i64::from))
            .opt_int("sig", self.sig.map(i64::from))
            .opt_str("signame", self.sig.map(signal::name).as_deref());
        match &self.by {
            None => o.null("by"),
            Some(b) => o.obj("by", |o| {
                o.secs("ts", b.ts_ns)
                    .int("code", b.code as i64)
                    .opt_str("cause", b.cause.map(Cause::as_str));
                match &b.sender {
                    None => o.null("sender"),
                    Some((pid, comm)) => o.obj("sender", |o| {
                        o.opt_int("pid", pid.map(i64::from)).str("comm", comm);
                    }),
                };
            }),
        };
        o.close();
        out.push('\n');
    }
}

/// Why a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "decode",
    derive(Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum EndReason {
    Count,
    Duration,
    /// SIGINT
    Interrupted,
    /// SIGTERM
    Terminated,
    /// SIGHUP: the controlling terminal or SSH session went away.
    Hangup,
    /// stdin reached EOF: how an SSH session usually ends.
    StdinClosed,
    /// stdout's reader went away (EPIPE: `| head -1`, a closed channel).
    OutputClosed,
    /// The end of a recorded trace (`whosent-deploy parse`).
    Eof,
    /// Every `--pid` target ended (`--until-exit`).
    TargetsExited,
    Error,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Count => "count",
            EndReason::Duration => "duration",
            EndReason::Interrupted => "interrupted",
            EndReason::Terminated => "terminated",
            EndReason::Hangup => "hangup",
            EndReason::StdinClosed => "stdin_closed",
            EndReason::OutputClosed => "output_closed",
            EndReason::Eof => "eof",
            EndReason::TargetsExited => "targets_exited",
            EndReason::Error => "error",
        }
    }
}

/// The `ready` record: the event is live in the kernel.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "decode", derive(Deserialize))]
pub struct Ready {
    pub v: u32,
    pub agent: String,
    pub backend: String,
    pub kernel: String,
    pub arch: String,
    pub instance: String,
    /// The filter set in the kernel ("" when none).
    pub filter: String,
}

/// The `lost` record: events the kernel dropped before whosent read them.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "decode", derive(Deserialize))]
pub struct Lost {
    /// The CPU whose buffer lost them, or [`Lost::NOT_RUN`].
    #[cfg_attr(feature = "decode", serde(deserialize_with = "cpu_or_not_run"))]
    pub cpu: u32,
    /// `None` when the kernel only said that events were lost.
    pub count: Option<u64>,
}

impl Lost {
    /// Not one CPU's buffer: signal_generate events the kernel did not
    /// run the eBPF program for, because a BPF program was already
    /// running on that CPU (`bpf_prog_active` in `trace_call_bpf`,
    /// kernel/trace/bpf_trace.c; the program's `recursion_misses`).
    /// Written as `"cpu":null,"why":"not_run"`.
    pub const NOT_RUN: u32 = u32::MAX;
}

#[cfg(feature = "decode")]
fn cpu_or_not_run<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.unwrap_or(Lost::NOT_RUN))
}

/// The `repeat` record: `count` more signals exactly like the first of
/// one key (sender, target, signal, code, result), counted in the
/// kernel instead of sent (the eBPF backend's `--fold`,
/// docs/json-schema.md).
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatRec {
    /// The last of these signals.
    pub ts_ns: u64,
    /// The key's first signal, the one in a `signal` record.
    pub first_ns: u64,
    /// The sender's pid; `None` when the kernel sent the first in the
    /// running task's context.
    pub sender: Option<i32>,
    /// The running task's process.
    pub running: i32,
    pub target: i32,
    pub sig: i32,
    pub code: i32,
    pub result: Option<Outcome>,
    pub count: u64,
}

impl RepeatRec {
    pub fn encode(&self, out: &mut String) {
        let mut o = Obj::new(out);
        o.str("type", "repeat")
            .secs("ts", self.ts_ns)
            .secs("first_ts", self.first_ns)
            .opt_int("sender", self.sender.map(i64::from))
            .int("running", self.running as i64)
            .int("target", self.target as i64)
            .int("sig", self.sig as i64)
            .int("code", self.code as i64)
            .opt_str("result", self.result.and_then(Outcome::name))
            .int("count", self.count as i64);
        o.close();
        out.push('\n');
    }
}

/// The `end` record, always the last.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "decode", derive(Deserialize))]
pub struct End {
    pub reason: EndReason,
    /// Signal records written.
    pub signals: u64,
    /// Events known lost (sum of `lost` records and the kernel's
    /// per-CPU overrun counts).
    pub lost: u64,
}

/// The `error` record, written before a non-zero exit.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "decode", derive(Deserialize))]
pub struct ErrorRec {
    /// A stable identifier, e.g. `no_tracefs`, `not_root`.
    pub kind: String,
    pub message: String,
    pub help: String,
}

impl Ready {
    pub fn encode(&self, out: &mut String) {
        let mut o = Obj::new(out);
        o.str("type", "ready")
            .int("v", self.v as i64)
            .str("agent", &self.agent)
            .str("backend", &self.backend)
            .str("kernel", &self.kernel)
            .str("arch", &self.arch)
            .str("instance", &self.instance)
            .str("filter", &self.filter);
        o.close();
        out.push('\n');
    }

    pub fn new(backend: &str, kernel: &str, arch: &str, instance: &str, filter: &str) -> Self {
        Ready {
            v: SCHEMA_VERSION,
            agent: env!("CARGO_PKG_VERSION").to_string(),
            backend: backend.into(),
            kernel: kernel.into(),
            arch: arch.into(),
            instance: instance.into(),
            filter: filter.into(),
        }
    }
}

fn task(o: &mut Obj, t: &Task) {
    o.opt_int("pid", t.pid.map(i64::from))
        .int("tid", t.tid as i64)
        .str("comm", &t.comm)
        .opt_ints("nspid", t.nspid.as_deref());
}

fn ancestor(o: &mut Obj, a: &Ancestor) {
    o.int("pid", a.pid as i64)
        .str("comm", &a.comm)
        .opt_str("exe", a.exe.as_deref())
        .opt_str("cmdline", a.cmdline.as_deref());
}

/// A lineage as its JSON array, for [`SignalEvent::encode_with`].
pub fn lineage_json(l: &[Ancestor]) -> String {
    let mut s = String::new();
    crate::json::array(&mut s, l, ancestor);
    s
}

fn task_full(o: &mut Obj, t: &Task, lineage: Option<&str>) {
    task(o, t);
    o.opt_int("uid", t.uid.map(i64::from))
        .opt_str("cmdline", t.cmdline.as_deref())
        .opt_int("cgroup_id", t.cgroup_id.map(|c| c as i64));
    match (lineage, &t.lineage) {
        (Some(json), _) => o.raw("lineage", json),
        (None, Some(l)) => o.arr("lineage", l, ancestor),
        (None, None) => o.null("lineage"),
    };
}

fn oom(o: &mut Obj, v: &OomVictim) {
    // One call site for the seven: each is code in the agent.
    for (k, x) in [
        ("total_vm_kb", v.total_vm_kb),
        ("anon_rss_kb", v.anon_rss_kb),
        ("file_rss_kb", v.file_rss_kb),
        ("shmem_rss_kb", v.shmem_rss_kb),
        ("pgtables_kb", v.pgtables_kb),
        ("uid", v.uid.map(u64::from)),
        ("oom_score_adj", v.oom_score_adj.map(|a| a as u64)),
    ] {
        o.opt_int(k, x.map(|n| n as i64));
    }
}

impl SignalEvent {
    pub fn encode(&self, out: &mut String) {
        self.encode_with(out, None);
    }

    /// As [`encode`](Self::encode), with the sender's lineage given as
    /// [`lineage_json`] text: a storm from one sender encodes it once.
    pub fn encode_with(&self, out: &mut String, lineage: Option<&str>) {
        let mut o = Obj::new(out);
        o.str("type", "signal")
            .secs("ts", self.ts_ns)
            .int("cpu", self.cpu as i64)
            .int("sig", self.sig as i64)
            .str("signame", &signal::name(self.sig))
            .int("code", self.code as i64)
            .opt_str("code_name", code::name(self.sig, self.code))
            .int("errno", self.errno as i64);
        match self.group {
            Some(g) => o.bool("group", g),
            None => o.null("group"),
        };
        match self.result {
            None => o.null("result"),
            Some(r) => match r.name() {
                Some(n) => o.str("result", n),
                None => o.int("result", r.as_raw() as i64),
            },
        };
        o.str("context", self.context.as_str())
            .str("origin", self.origin().as_str())
            .opt_str("cause", self.cause.map(Cause::as_str));
        if self.sender().is_some() {
            o.obj("sender", |o| task_full(o, &self.running, lineage));
            o.null("running");
        } else {
            o.null("sender");
            o.obj("running", |o| task_full(o, &self.running, None));
        }
        o.obj("target", |o| task(o, &self.target));
        match &self.oom {
            Some(v) => o.obj("oom", |o| oom(o, v)),
            None => o.null("oom"),
        };
        o.close();
        out.push('\n');
    }
}

impl Outcome {
    pub fn as_raw(self) -> i32 {
        match self {
            Outcome::Other(v) => v,
            o => OUTCOMES.iter().position(|(x, _)| *x == o).unwrap_or(0) as i32,
        }
    }
}

impl Lost {
    pub fn encode(&self, out: &mut String) {
        let mut o = Obj::new(out);
        o.str("type", "lost");
        if self.cpu == Lost::NOT_RUN {
            o.opt_int("cpu", None)
                .opt_int("count", self.count.map(|c| c as i64))
                .str("why", "not_run");
        } else {
            o.int("cpu", self.cpu as i64)
                .opt_int("count", self.count.map(|c| c as i64));
        }
        o.close();
        out.push('\n');
    }
}

impl End {
    pub fn encode(&self, out: &mut String) {
        let mut o = Obj::new(out);
        o.str("type", "end")
            .str("reason", self.reason.as_str())
            .int("signals", self.signals as i64)
            .int("lost", self.lost as i64);
        o.close();
        out.push('\n');
    }
}

impl ErrorRec {
    pub fn encode(&self, out: &mut String) {
        let mut o = Obj::new(out);
        o.str("type", "error")
            .str("kind", &self.kind)
            .str("message", &self.message)
            .str("help", &self.help);
        o.close();
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> SignalEvent {
        SignalEvent {
            ts_ns: 5_000_123_456,
            cpu: 1,
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
                uid: Some(0),
                cmdline: Some("./test_sender 9 6985".into()),
                nspid: Some(vec![6993]),
                lineage: Some(vec![
                    Ancestor {
                        pid: 6993,
                        comm: "test_sender".into(),
                        exe: Some("./test_sender".into()),
                        cmdline: Some("./test_sender 9 6985".into()),
                    },
                    Ancestor {
                        pid: 1,
                        comm: "init".into(),
                        ..Default::default()
                    },
                ]),
                cgroup_id: None,
            },
            target: Task {
                pid: Some(6985),
                tid: 6985,
                comm: "test_receiver".into(),
                nspid: Some(vec![6985, 2]),
                ..Default::default()
            },
            cause: Some(Cause::Kill),
            oom: None,
        }
    }

    #[test]
    fn signal_record_shape() {
        let mut s = String::new();
        ev().encode(&mut s);
        assert_eq!(
            s,
            concat!(
                r#"{"type":"signal","ts":5.000123,"cpu":1,"sig":9,"signame":"SIGKILL","code":0,"code_name":"SI_USER","errno":0,"group":true,"result":"delivered","context":"task","origin":"task","cause":"kill","#,
                r#""sender":{"pid":6993,"tid":6993,"comm":"test_sender","nspid":[6993],"uid":0,"cmdline":"./test_sender 9 6985","cgroup_id":null,"#,
                r#""lineage":[{"pid":6993,"comm":"test_sender","exe":"./test_sender","cmdline":"./test_sender 9 6985"},{"pid":1,"comm":"init","exe":null,"cmdline":null}]},"running":null,"#,
                r#""target":{"pid":6985,"tid":6985,"comm":"test_receiver","nspid":[6985,2]},"oom":null}"#,
                "\n"
            )
        );
    }

    #[test]
    fn a_lineage_encoded_once_is_the_same() {
        let e = ev();
        let (mut a, mut b) = (String::new(), String::new());
        e.encode(&mut a);
        let json = lineage_json(e.running.lineage.as_deref().unwrap());
        SignalEvent {
            running: Task {
                lineage: None,
                ..e.running.clone()
            },
            ..e
        }
        .encode_with(&mut b, Some(&json));
        assert_eq!(a, b);
    }

    #[test]
    fn interrupt_context_credits_no_sender() {
        let mut e = ev();
        e.context = Context::Hardirq;
        e.result = Some(Outcome::Other(5));
        assert!(e.sender().is_none());
        assert_eq!(e.origin(), Origin::Kernel);
        let mut s = String::new();
        e.encode(&mut s);
        assert!(
            s.contains(r#""result":5,"context":"hardirq","origin":"kernel","cause":"kill","sender":null,"running":{"pid":6993"#),
            "{s}"
        );
    }

    #[test]
    fn the_oom_killer_is_not_the_allocating_task() {
        let mut e = ev();
        e.code = 0x80;
        e.classify(crate::cause::Hints {
            oom: true,
            ..Default::default()
        });
        e.oom = Some(Box::new(OomVictim {
            anon_rss_kb: Some(98_304),
            oom_score_adj: Some(1000),
            ..Default::default()
        }));
        assert_eq!(e.cause, Some(Cause::Oom));
        assert!(e.sender().is_none());
        let mut s = String::new();
        e.encode(&mut s);
        assert!(
            s.contains(r#""cause":"oom","sender":null,"running":{"pid":6993,"tid":6993,"comm":"test_sender""#),
            "{s}"
        );
        assert!(
            s.trim_end().ends_with(r#""oom":{"total_vm_kb":null,"anon_rss_kb":98304,"file_rss_kb":null,"shmem_rss_kb":null,"pgtables_kb":null,"uid":null,"oom_score_adj":1000}}"#),
            "{s}"
        );
    }

    #[test]
    fn timers_are_told_apart_by_their_code() {
        let mut e = ev();
        e.context = Context::Hardirq;
        for (sig, code, origin) in [
            (14, 0x80, Origin::Timer), // alarm(), setitimer(ITIMER_REAL)
            (27, 0x80, Origin::Timer), // setitimer(ITIMER_PROF)
            (10, -2, Origin::Timer),   // timer_create(), any signal
            (9, 0x80, Origin::Kernel), // e.g. the OOM killer
            (14, 0, Origin::Kernel),
        ] {
            (e.sig, e.code) = (sig, code);
            assert_eq!(e.origin(), origin, "sig {sig} code {code}");
        }
        e.context = Context::Task;
        assert_eq!(e.origin(), Origin::Task);
        // A CPU-time timer expires in its own task's context.
        e.code = -2;
        assert_eq!(e.origin(), Origin::Timer);
    }

    #[test]
    fn outcomes_round_trip() {
        for v in -1..7 {
            assert_eq!(Outcome::from_raw(v).as_raw(), v);
        }
        assert_eq!(Outcome::from_raw(2), Outcome::AlreadyPending);
        assert_eq!(Outcome::from_name("lose_info"), Some(Outcome::LoseInfo));
    }
}
