//! The records of the wire format and how the agent writes them.
//!
//! One record per line, each a JSON object with a `type`:
//! `ready`, `signal`, `lost`, `end`, `error`. See `docs/json-schema.md`.

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
}

impl SignalEvent {
    /// The sender, or `None` when the signal came from interrupt
    /// context and the running task must not be credited.
    pub fn sender(&self) -> Option<&Task> {
        (self.context == Context::Task).then_some(&self.running)
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
    pub cpu: u32,
    /// `None` when the kernel only said that events were lost.
    pub count: Option<u64>,
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
        .opt_str("cmdline", t.cmdline.as_deref());
    match (lineage, &t.lineage) {
        (Some(json), _) => o.raw("lineage", json),
        (None, Some(l)) => o.arr("lineage", l, ancestor),
        (None, None) => o.null("lineage"),
    };
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
            .str("origin", self.origin().as_str());
        if self.context == Context::Task {
            o.obj("sender", |o| task_full(o, &self.running, lineage));
            o.null("running");
        } else {
            o.null("sender");
            o.obj("running", |o| task_full(o, &self.running, None));
        }
        o.obj("target", |o| task(o, &self.target));
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
        o.str("type", "lost")
            .int("cpu", self.cpu as i64)
            .opt_int("count", self.count.map(|c| c as i64));
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
            },
            target: Task {
                pid: Some(6985),
                tid: 6985,
                comm: "test_receiver".into(),
                nspid: Some(vec![6985, 2]),
                ..Default::default()
            },
        }
    }

    #[test]
    fn signal_record_shape() {
        let mut s = String::new();
        ev().encode(&mut s);
        assert_eq!(
            s,
            concat!(
                r#"{"type":"signal","ts":5.000123,"cpu":1,"sig":9,"signame":"SIGKILL","code":0,"code_name":"SI_USER","errno":0,"group":true,"result":"delivered","context":"task","origin":"task","#,
                r#""sender":{"pid":6993,"tid":6993,"comm":"test_sender","nspid":[6993],"uid":0,"cmdline":"./test_sender 9 6985","#,
                r#""lineage":[{"pid":6993,"comm":"test_sender","exe":"./test_sender","cmdline":"./test_sender 9 6985"},{"pid":1,"comm":"init","exe":null,"cmdline":null}]},"running":null,"#,
                r#""target":{"pid":6985,"tid":6985,"comm":"test_receiver","nspid":[6985,2]}}"#,
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
            s.contains(r#""result":5,"context":"hardirq","origin":"kernel","sender":null,"running":{"pid":6993"#),
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
