//! The PROC frames a recorder sends (docs/stream-format.md): the /proc
//! facts of a process that is born, execs, or shows up unknown in a
//! signal, read on the board before it can exit. Shared by the ftrace
//! agent's `--stream` (record.rs, from its pages) and the eBPF agent's
//! (from its program's records): the same reads for the same events.

use crate::procfs;
use whosent_ftrace::signal_generate::SignalLayout;
use whosent_ftrace::task_events::{TaskEvent, TaskLayouts};
use whosent_stream::encode;
use whosent_stream::frame::why;

/// Tasks whose facts were sent (or could not be read), one bit per tid:
/// smaller in the agent than a hash set (docs/agent-size.md), and only
/// the touched pages of it are ever resident. A reused tid stays known,
/// which is harmless: a new process is read at its fork anyway.
#[derive(Default)]
pub struct Known(Vec<u64>);

impl Known {
    pub fn contains(&self, t: i32) -> bool {
        let t = t as u32 as usize;
        self.0.get(t / 64).is_some_and(|w| w & (1 << (t % 64)) != 0)
    }

    /// Marks `t`; false if it was already.
    pub fn insert(&mut self, t: i32) -> bool {
        let t = t as u32 as usize;
        if t / 64 >= self.0.len() {
            // pid_max is at most 2^22 (include/linux/threads.h).
            if t >= 1 << 22 {
                return true;
            }
            self.0.resize(t / 64 + 1, 0);
        }
        let (w, bit) = (&mut self.0[t / 64], 1 << (t % 64));
        let new = *w & bit == 0;
        *w |= bit;
        new
    }
}

/// A /proc read an event calls for: the task, why, and the event's time.
pub type Read = (i32, u8, u64);

/// What [`reads_for`] found the event to be.
pub const SIGNAL: u8 = 1;
pub const TASK: u8 = 2;

/// The /proc reads event `id` (its record `data`, at `ts`) calls for,
/// pushed on `reads`: a signal's running and target tasks when unknown,
/// a new process, an exec. Returns [`SIGNAL`], [`TASK`] (a task event
/// the layouts decode) or 0.
#[allow(clippy::too_many_arguments)] // reason: one call per event, no struct to build
pub fn reads_for(
    known: &mut Known,
    signal: &SignalLayout,
    tasks: &TaskLayouts,
    id: u16,
    data: &[u8],
    ts: u64,
    reads: &mut Vec<Read>,
) -> u8 {
    if id == signal.id {
        if let Some((running, target)) = signal.tids(data) {
            for t in [running, target] {
                if !known.contains(t) {
                    reads.push((t, why::MISS, ts));
                }
            }
        }
        return SIGNAL;
    }
    let decoded = tasks.decode(id, data);
    let found = if decoded.is_some() { TASK } else { 0 };
    match decoded {
        Some(TaskEvent::NewTask {
            parent_tid,
            tid,
            thread,
            ..
        }) => {
            // The table takes the child's process and parent from
            // the parent, e.g. a thread the snapshot (processes
            // only) did not list.
            if !known.contains(parent_tid) {
                reads.push((parent_tid, why::MISS, ts));
            }
            if thread {
                known.insert(tid);
            } else {
                reads.push((tid, why::NEWTASK, ts));
            }
        }
        Some(TaskEvent::Exec { tid, .. }) => reads.push((tid, why::EXEC, ts)),
        _ => {}
    }
    found
}

/// Sends /proc facts about `tid` (and, for `lineage`, its unknown
/// parents), once, as PROC frames on `out`.
pub fn read(known: &mut Known, lineage: bool, out: &mut Vec<u8>, (tid, why, ts): Read) {
    let mut next = Some(tid);
    while let Some(t) = next.take() {
        // Exec and fork are news even about a known task.
        if t <= 0 || (!known.insert(t) && (t != tid || why == why::MISS)) {
            break;
        }
        let Some(mut f) = procfs::facts("/proc", t) else {
            break;
        };
        (f.why, f.ts) = (why, ts);
        next = Some(f.ppid).filter(|_| lineage && why == why::MISS);
        encode::proc(out, &f);
    }
}
