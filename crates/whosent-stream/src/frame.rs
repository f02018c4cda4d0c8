//! The frame kinds and the values they carry.
//!
//! Every frame is `kind: u8`, `len: u32 LE`, then `len` bytes of payload.
//! Integers in payloads are little-endian; a string is `u32 LE` length
//! and bytes (UTF-8 expected, not guaranteed), an absent optional
//! string has length `u32::MAX`.

/// A frame's kind byte. Readers skip kinds they do not know (their
/// length says how far), so new kinds are additive.
pub mod kind {
    /// A kernel `format` text: `role: u8`, then the text.
    pub const FORMAT: u8 = 1;
    /// The capture is live: see [`super::Ready`].
    pub const READY: u8 = 2;
    /// One page read from `per_cpu/cpuN/trace_pipe_raw`: `cpu: u32`, then
    /// the page cut after its last committed byte (and the missed-events
    /// count the kernel may store there).
    pub const PAGE: u8 = 3;
    /// A drain round ended: `n: u32`, then the `n` cpus whose read was cut
    /// short (they may still hold older events). See `docs/stream-format.md`.
    pub const ROUND: u8 = 4;
    /// /proc facts about one task: see [`super::ProcFacts`].
    pub const PROC: u8 = 5;
    /// The kernel's own loss counters at the end: `n: u32`, then `n` of
    /// (`cpu: u32`, `lost: u64`) (per-CPU `stats`: overrun + dropped events).
    pub const STATS: u8 = 6;
    /// The capture ended: `reason: u8` (see [`super::reason`]).
    pub const END: u8 = 7;
    /// The agent failed: `kind`, `message`, `help` (three strings).
    pub const ERROR: u8 = 8;
    /// One tracepoint record as the eBPF agent's program copied it, with
    /// what the program read of the running task at a signal: see
    /// [`super::Event`].
    pub const EVENT: u8 = 9;
    /// The count of one storm key folded in the kernel so far (the eBPF
    /// agent's `--fold`): see [`super::Repeat`].
    pub const REPEAT: u8 = 10;
}

/// The `role` byte of a FORMAT frame.
pub mod role {
    /// `events/header_page`.
    pub const HEADER_PAGE: u8 = 0;
    /// `events/signal/signal_generate/format`.
    pub const SIGNAL: u8 = 1;
    /// A task lifecycle event, the argv uprobe or a set*uid syscall
    /// event: the host tells them apart by the `name:` line.
    pub const TASK: u8 = 2;
    /// The argv uprobe (its name is the instance's, so it has a role).
    pub const ARGV: u8 = 3;
    /// What became of a target, and OOM kills: `oom:mark_victim`,
    /// `signal:signal_deliver`, `syscalls:sys_enter_exit_group`.
    pub const FATE: u8 = 4;
}

/// The END frame's reason byte: the order of `whosent_proto::record::EndReason`.
pub mod reason {
    pub const COUNT: u8 = 0;
    pub const DURATION: u8 = 1;
    pub const INTERRUPTED: u8 = 2;
    pub const TERMINATED: u8 = 3;
    pub const HANGUP: u8 = 4;
    pub const STDIN_CLOSED: u8 = 5;
    pub const OUTPUT_CLOSED: u8 = 6;
}

/// Why the agent read /proc for a task (the PROC frame's `why`).
pub mod why {
    /// The snapshot before READY.
    pub const SNAPSHOT: u8 = 0;
    /// The task exec'd at `ts` (read right after the exec event).
    pub const EXEC: u8 = 1;
    /// The task was created at `ts` (a new process; it may be in a new
    /// pid namespace).
    pub const NEWTASK: u8 = 2;
    /// A task seen in an event that the agent did not know yet.
    pub const MISS: u8 = 3;
}

/// The READY frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ready {
    pub agent: String,
    pub kernel: String,
    pub arch: String,
    pub instance: String,
    pub filter: String,
    /// The CPUs read, in the order each round reads them.
    pub cpus: Vec<u32>,
    /// The query's `--pid` and `--sender-pid` as host pids (after
    /// `--pid-ns`), which only the board can resolve.
    pub pids: Vec<i32>,
    pub sender_pids: Vec<i32>,
    /// The agent reports lineage (it sent a snapshot and the argv probe).
    pub lineage: bool,
    /// The kernel has the set*uid syscall events enabled in this capture,
    /// so uid changes are in the pages.
    pub uid_events: bool,
    /// The eBPF agent: events come in EVENT frames, not pages.
    pub ebpf: bool,
}

/// What the eBPF program read of the running task at a signal, in its
/// context (`struct signal_event`, target-agent-ebpf/ebpf/event.h).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub tgid: i32,
    pub tid: i32,
    /// The real ids.
    pub uid: u32,
    pub gid: u32,
    /// `bpf_get_current_cgroup_id`.
    pub cgroup_id: u64,
    /// The target's process from the program's thread map; 0 unknown.
    pub target_tgid: i32,
    /// The running task had passed `sched_process_exit`.
    pub exited: bool,
    pub comm: String,
    /// Its pid in each namespace, the agent's first; empty when the
    /// program could not tell.
    pub nspid: Vec<i32>,
}

/// One storm key's repeats counted in the kernel since the capture
/// began (not since the last REPEAT): the key as the host folds by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Repeat {
    /// The running task's process (tgid).
    pub sender: i32,
    /// The target's process.
    pub target: i32,
    pub sig: i32,
    pub code: i32,
    /// The event's `result`; -1 where it has none.
    pub result: i32,
    /// The repeats so far, after the key's first signal (which was sent
    /// in full).
    pub count: u64,
    /// Times (the events' clock) of the first signal and of the last repeat.
    pub first: u64,
    pub last: u64,
}

/// One PROC frame: what /proc said about a task when the agent read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcFacts {
    pub why: u8,
    /// The trace time of the event that made the agent read it (0 for
    /// the snapshot).
    pub ts: u64,
    pub tid: i32,
    pub tgid: i32,
    pub ppid: i32,
    /// The real uid (`Uid:` first column of /proc/PID/status).
    pub uid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    /// `NStgid:`, ours first; empty when the kernel has none (before 4.1).
    pub nstgid: Vec<i32>,
}

/// A decoded frame; pages and texts borrow the decoder's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    Format {
        role: u8,
        text: &'a [u8],
    },
    Ready(Ready),
    Page {
        cpu: u32,
        data: &'a [u8],
    },
    Round {
        cut: Vec<u32>,
    },
    Proc(ProcFacts),
    Stats(Vec<(u32, u64)>),
    End {
        reason: u8,
    },
    Error {
        kind: String,
        message: String,
        help: String,
    },
    /// A tracepoint record laid out as its format file says, its common
    /// fields as a ring-buffer page holds them; `facts` for a signal.
    Event {
        cpu: u32,
        ts: u64,
        facts: Option<Facts>,
        record: &'a [u8],
    },
    Repeat(Repeat),
    /// A kind this reader does not know: skipped.
    Unknown {
        kind: u8,
    },
}
