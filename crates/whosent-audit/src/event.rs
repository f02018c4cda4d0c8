//! The records of one audit event, joined by their stamp.
//!
//! The kernel writes an event as several records with the same
//! `audit(TIME:SERIAL)` (kernel/auditsc.c, `audit_log_exit`: SYSCALL,
//! then one OBJ_PID per signal target, PROCTITLE, and over netlink EOE).
//! auditd writes them in that order, ausearch prints them reversed, and
//! a merged or sorted log can put them anywhere, so they are collected
//! by stamp until the event is known complete: at its EOE, or at the
//! end of the input.

use crate::record::{Kind, Record, Stamp};
use std::collections::{BTreeMap, HashSet};

/// What whosent keeps of one event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub syscall: Option<Record>,
    /// In the order they came.
    pub targets: Vec<Record>,
    pub proctitle: Option<Record>,
}

/// Collects records into events.
#[derive(Debug, Default)]
pub struct Assembler {
    open: BTreeMap<Stamp, Event>,
    /// Events whose SYSCALL record was not a signal call: later records
    /// of theirs are dropped as they come.
    dropped: HashSet<Stamp>,
}

impl Assembler {
    /// Adds `r`; returns its event when `r` completed it (EOE). `keep`
    /// says whether a SYSCALL record is one whosent wants; events of
    /// others are forgotten, so that a log of every system call costs
    /// no memory.
    pub fn push(&mut self, r: Record, keep: impl Fn(&Record) -> bool) -> Option<(Stamp, Event)> {
        let stamp = r.stamp;
        if self.dropped.contains(&stamp) {
            if r.kind == Kind::Eoe {
                self.dropped.remove(&stamp);
            }
            return None;
        }
        match r.kind {
            Kind::Syscall if !keep(&r) => {
                self.open.remove(&stamp);
                self.dropped.insert(stamp);
                return None;
            }
            Kind::Eoe => return self.open.remove(&stamp).map(|e| (stamp, e)),
            Kind::Other => return None,
            _ => {}
        }
        let e = self.open.entry(stamp).or_default();
        match r.kind {
            Kind::Syscall => e.syscall = Some(r),
            Kind::ObjPid => e.targets.push(r),
            Kind::Proctitle => e.proctitle = Some(r),
            Kind::Eoe | Kind::Other => {}
        }
        None
    }

    /// The events still open, in time and serial order.
    pub fn finish(self) -> impl Iterator<Item = (Stamp, Event)> {
        self.open.into_iter()
    }
}
