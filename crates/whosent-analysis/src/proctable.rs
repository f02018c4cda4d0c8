//! A table of processes, kept from the task lifecycle events read in
//! the same instance, so that a sender that exited before its event was
//! read can still be named, with its parents (its lineage).
//!
//! It starts from a /proc snapshot (parents that ran before the agent,
//! such as a watchdog script, may exit before the event is read) and
//! asks its [`FactSource`] on a miss. Events are applied in timestamp
//! order, interleaved with the signal events, so the table describes
//! each task as it was when it sent the signal.
//!
//! Values are right or unknown, never guessed: a uid inherited at fork
//! is kept only while the table sees every later uid change (the
//! set*uid events, [`ProcTable::uid_events`]); otherwise it is unknown
//! until /proc is read again.

use crate::facts::{FactSource, ProcFacts};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use whosent_ftrace::task_events::TaskEvent;
use whosent_ftrace::uid_events::{UidCall, UidEvent};
use whosent_proto::record::Ancestor;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proc {
    pub tgid: Option<i32>,
    pub ppid: Option<i32>,
    pub comm: String,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    /// The real uid, when the table can vouch for it.
    pub uid: Option<u32>,
    /// The process id per pid namespace (`NStgid`); empty when unknown.
    pub nstgid: Vec<i32>,
    /// /proc was read for this task since its last fork or exec.
    pub read: bool,
    pub exited: bool,
    /// A set*uid call it entered and has not returned from.
    pub uid_call: Option<UidCall>,
}

/// Bounded so that a long capture on a busy board does not grow
/// without end; exited tasks are forgotten first.
const MAX_ENTRIES: usize = 1 << 16;

/// The longest lineage reported: deep enough for any real process tree,
/// and a bound if a table built from lost events ever held a loop.
pub const MAX_LINEAGE: usize = 16;

/// Hashes a tid by one multiply with a random odd number and keeps the
/// product's high bits (multiply-shift hashing). std's SipHash and its
/// keys from getrandom cost the agent ~2.5 KB (docs/agent-size.md). The
/// multiplier is drawn per table from the clock and the stack's address
/// (ASLR): tids come from the kernel on the board, but on the host from
/// a stream that may be a crafted file, which must not be able to pick
/// tids that all collide.
#[derive(Clone)]
struct TidHash(u64);

impl TidHash {
    fn new() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let here = &now as *const u64 as usize as u64;
        TidHash((now ^ here.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
}

impl BuildHasher for TidHash {
    type Hasher = TidHasher;
    fn build_hasher(&self) -> TidHasher {
        TidHasher { mul: self.0, h: 0 }
    }
}

struct TidHasher {
    mul: u64,
    h: u64,
}

impl Hasher for TidHasher {
    /// hashbrown picks the slot from the low bits: they must be the
    /// product's high ones, which depend on every bit of the tid.
    fn finish(&self) -> u64 {
        self.h.reverse_bits()
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_i32(&mut self, tid: i32) {
        self.write_u64(u64::from(tid as u32));
    }
    fn write_u64(&mut self, n: u64) {
        self.h = (self.h ^ n).wrapping_mul(self.mul);
    }
}

pub struct ProcTable {
    map: HashMap<i32, Proc, TidHash>,
    /// The capture has the set*uid events: uid changes are all seen.
    pub uid_events: bool,
    /// Changes whenever an entry may have: a lineage computed at the
    /// same generation is still right.
    pub generation: u64,
}

impl Proc {
    fn from_facts(f: ProcFacts) -> Self {
        Proc {
            tgid: Some(f.tgid),
            ppid: Some(f.ppid),
            comm: f.comm,
            exe: f.exe,
            cmdline: f.cmdline,
            uid: Some(f.uid),
            nstgid: f.nstgid,
            read: true,
            exited: false,
            uid_call: None,
        }
    }
}

impl Default for ProcTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcTable {
    pub fn new() -> Self {
        ProcTable {
            map: HashMap::with_hasher(TidHash::new()),
            uid_events: false,
            generation: 0,
        }
    }

    /// Learns a task from /proc facts as they are (the snapshot).
    pub fn learn(&mut self, f: ProcFacts) {
        self.generation += 1;
        self.map.insert(f.tid, Proc::from_facts(f));
    }

    /// Fills in what the events could not tell from the facts about
    /// `tid`; what they told stays.
    fn refresh(&mut self, src: &mut dyn FactSource, tid: i32, exec_ts: Option<u64>) {
        let Some(t) = src.facts(tid, exec_ts) else {
            return;
        };
        self.generation += 1;
        let e = self.map.entry(tid).or_default();
        e.tgid = e.tgid.or(Some(t.tgid));
        e.ppid = e.ppid.or(Some(t.ppid));
        // A uid the table followed is right at every point of the trace;
        // one read from /proc is right when it was read.
        e.uid = e.uid.or(Some(t.uid));
        e.exe = e.exe.take().or(t.exe);
        e.cmdline = e.cmdline.take().or(t.cmdline);
        if e.comm.is_empty() {
            e.comm = t.comm;
        }
        e.nstgid = t.nstgid;
        e.read = true;
    }

    /// The task as the table has it, without asking for facts.
    pub fn get(&self, tid: i32) -> Option<&Proc> {
        self.map.get(&tid)
    }

    /// The task `tid`, from the table or else from the facts.
    pub fn lookup(&mut self, src: &mut dyn FactSource, tid: i32) -> Option<&Proc> {
        if self.map.get(&tid).is_none_or(|p| !p.exited && !p.read) {
            self.refresh(src, tid, None);
        }
        self.map.get(&tid)
    }

    /// Process `pid`, then its parent, and so on up to pid 1.
    pub fn lineage(&mut self, src: &mut dyn FactSource, pid: i32) -> Vec<Ancestor> {
        let mut out: Vec<Ancestor> = Vec::new();
        let mut next = Some(pid);
        while let Some(pid) = next {
            if pid <= 0 || out.len() == MAX_LINEAGE || out.iter().any(|a| a.pid == pid) {
                break;
            }
            let p = self.lookup(src, pid).cloned().unwrap_or_default();
            next = p.ppid;
            out.push(Ancestor {
                pid,
                comm: if p.comm.is_empty() {
                    "<...>".into()
                } else {
                    p.comm
                },
                exe: p.exe,
                cmdline: p.cmdline,
            });
        }
        out
    }

    /// Applies a set*uid event: the real uid changes only when the call
    /// returned 0, to what the call sets it to (`kernel/sys.c`).
    pub fn apply_uid(&mut self, ev: &UidEvent) {
        match *ev {
            UidEvent::Enter { tid, call } => {
                // A task the table does not know has no uid to follow.
                if let Some(p) = self.map.get_mut(&tid) {
                    p.uid_call = Some(call);
                }
            }
            UidEvent::Exit { tid, ret } => {
                let Some(p) = self.map.get_mut(&tid) else {
                    return;
                };
                let Some(call) = p.uid_call.take().filter(|_| ret == 0) else {
                    return;
                };
                self.generation += 1;
                p.uid = match call {
                    UidCall::SetRealUid(None) => p.uid,
                    UidCall::SetRealUid(Some(u)) => Some(u),
                    // Without CAP_SETUID only the effective uid changes;
                    // the trace does not say which it was.
                    UidCall::SetUid(u) if p.uid == Some(u) => Some(u),
                    UidCall::SetUid(_) => None,
                };
            }
        }
    }

    pub fn apply(&mut self, src: &mut dyn FactSource, ts: u64, ev: &TaskEvent) {
        self.generation += 1;
        if self.map.len() >= MAX_ENTRIES {
            self.map.retain(|_, p| !p.exited);
        }
        match ev {
            TaskEvent::NewTask {
                parent_tid,
                tid,
                comm,
                thread,
            } => {
                let parent = self.lookup(src, *parent_tid).cloned().unwrap_or_default();
                let child = Proc {
                    tgid: if *thread { parent.tgid } else { Some(*tid) },
                    // An unknown parent is named by its tid, the best guess.
                    ppid: if *thread {
                        parent.ppid
                    } else {
                        parent.tgid.or(Some(*parent_tid))
                    },
                    comm: comm.clone(),
                    exe: parent.exe,
                    // A forked child runs its parent's argv until it execs.
                    cmdline: parent.cmdline,
                    // fork copies the credentials; they stay right only
                    // while every change is traced.
                    uid: parent.uid.filter(|_| self.uid_events),
                    // A thread shares its process's ids; a new process may
                    // be in a new pid namespace (unshare), so only /proc
                    // can tell.
                    nstgid: if *thread { parent.nstgid } else { Vec::new() },
                    read: false,
                    exited: false,
                    uid_call: None,
                };
                self.map.insert(*tid, child);
            }
            TaskEvent::Rename { tid, comm } => {
                if let Some(p) = self.map.get_mut(tid) {
                    p.comm = comm.clone();
                }
            }
            TaskEvent::Exec {
                tid,
                old_tid,
                filename,
            } => {
                let mut p = self.map.remove(old_tid).unwrap_or_default();
                p.exe = Some(filename.clone());
                p.tgid = Some(*tid);
                // The argv uprobe's event follows and replaces this;
                // without it (a static program, no uprobes) /proc is the
                // only source, read while the process may still be there.
                p.cmdline = None;
                p.read = false;
                self.map.insert(*tid, p);
                self.refresh(src, *tid, Some(ts));
            }
            TaskEvent::Argv { tid, cmdline } => {
                self.map.entry(*tid).or_default().cmdline = Some(cmdline.clone());
            }
            TaskEvent::Exit { tid, comm, .. } => {
                let p = self.map.entry(*tid).or_default();
                if p.comm.is_empty() {
                    p.comm = comm.clone();
                }
                p.exited = true;
            }
        }
    }
}

#[cfg(test)]
mod tests;
