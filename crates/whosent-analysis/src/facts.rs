//! Where the process table gets what the trace does not carry: the
//! /proc facts of a task (uid, pid namespaces, command line, program).
//!
//! On the board that is /proc itself, read when the table asks (the
//! standalone agent implements [`FactSource`] over it). On the host it
//! is what the agent read and sent in PROC frames ([`Received`]): the
//! host cannot read the board's /proc, so the agent reads it when a
//! process is born or execs, or first shows up in an event.

use std::collections::HashMap;
pub use whosent_stream::frame::ProcFacts;

pub trait FactSource {
    /// What is known about `tid`: at its exec at trace time `exec_ts`,
    /// or (`None`) whatever is known now.
    fn facts(&mut self, tid: i32, exec_ts: Option<u64>) -> Option<ProcFacts>;
}

/// No facts at all: a table built from events only (tests, text traces).
pub struct NoFacts;

impl FactSource for NoFacts {
    fn facts(&mut self, _: i32, _: Option<u64>) -> Option<ProcFacts> {
        None
    }
}

/// The facts the agent sent, by task and by the exec they describe.
#[derive(Debug, Default)]
pub struct Received {
    latest: HashMap<i32, ProcFacts>,
    at_exec: HashMap<(i32, u64), ProcFacts>,
}

/// Bounded like the table: a long capture must not grow without end.
const MAX_RECEIVED: usize = 1 << 16;

impl Received {
    pub fn add(&mut self, f: ProcFacts) {
        if self.latest.len() >= MAX_RECEIVED {
            self.latest.clear();
        }
        if self.at_exec.len() >= MAX_RECEIVED {
            self.at_exec.clear();
        }
        if f.why == whosent_stream::frame::why::EXEC {
            self.at_exec.insert((f.tid, f.ts), f.clone());
        }
        self.latest.insert(f.tid, f);
    }
}

impl FactSource for Received {
    fn facts(&mut self, tid: i32, exec_ts: Option<u64>) -> Option<ProcFacts> {
        match exec_ts {
            // Only the read made for this exec describes it: an older one
            // is the program before, a newer one a later exec.
            Some(ts) => self.at_exec.remove(&(tid, ts)),
            None => self.latest.get(&tid).cloned(),
        }
    }
}
