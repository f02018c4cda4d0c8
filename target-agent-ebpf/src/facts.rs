//! What user space adds to an event: the sender's command line, the
//! target's process and namespace pids, and the sender's namespace pids
//! where the kernel's answer does not give them. Read from /proc when the
//! event is read, so they can miss a task that already exited; cached
//! for a moment, so that a storm does not read /proc per signal.

use crate::event::{Extra, RawEvent};
use crate::pidns::{self, Ns};
use std::collections::HashMap;
use whosent_agent::procfs;

#[derive(Default)]
pub struct Facts {
    cmdline: HashMap<i32, Option<String>>,
    /// tid -> (tgid, NStgid), as /proc has it.
    task: HashMap<i32, Option<(i32, Vec<i32>)>>,
}

impl Facts {
    /// Forgets everything: pids get reused.
    pub fn clear(&mut self) {
        self.cmdline.clear();
        self.task.clear();
    }

    fn task(&mut self, tid: i32) -> Option<(i32, Vec<i32>)> {
        self.task
            .entry(tid)
            .or_insert_with(|| procfs::task("/proc", tid).map(|t| (t.tgid, t.nstgid)))
            .clone()
    }

    pub fn extra(&mut self, r: &RawEvent, ns: &[Ns]) -> Extra {
        let tgid = r.sender_tgid();
        let known = (r.ns_index as usize).checked_sub(1).and_then(|i| ns.get(i));
        let sender_nspid = match known {
            Some(n) => pidns::nspid(tgid, Some(n), r.ns_tgid),
            None => None,
        }
        .or_else(|| {
            self.task(r.sender_tid())
                .filter(|(g, _)| *g == tgid)
                .map(|(_, nstgid)| nstgid)
                .filter(|n| !n.is_empty())
        });
        let sender_cmdline = self
            .cmdline
            .entry(tgid)
            .or_insert_with(|| procfs::cmdline("/proc", tgid))
            .clone();
        let target = self.task(r.target_tid);
        Extra {
            sender_nspid,
            sender_cmdline,
            target_pid: target.as_ref().map(|t| t.0),
            target_nspid: target.map(|t| t.1).filter(|n| !n.is_empty()),
        }
    }
}
