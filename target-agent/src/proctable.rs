//! A table of processes, kept from the task lifecycle events read in
//! the same instance, so that a sender that exited before its event was
//! read can still be named (and, for lineage, its parents).
//!
//! /proc is read on a miss. Events are applied in timestamp order,
//! interleaved with the signal events, so the table describes each task
//! as it was when it sent the signal.

use crate::procfs;
use std::collections::HashMap;
use whosent_ftrace::task_events::TaskEvent;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proc {
    pub tgid: Option<i32>,
    pub ppid: Option<i32>,
    pub comm: String,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub uid: Option<u32>,
    pub exited: bool,
}

/// Bounded so that a long capture on a busy board does not grow
/// without end; exited tasks are forgotten first.
const MAX_ENTRIES: usize = 1 << 16;

pub struct ProcTable {
    proc_root: String,
    map: HashMap<i32, Proc>,
}

impl ProcTable {
    pub fn new(proc_root: &str) -> Self {
        ProcTable {
            proc_root: proc_root.to_string(),
            map: HashMap::new(),
        }
    }

    fn read_proc(&self, tid: i32) -> Option<Proc> {
        let t = procfs::task(&self.proc_root, tid)?;
        Some(Proc {
            tgid: Some(t.tgid),
            ppid: Some(t.ppid),
            comm: t.comm,
            exe: None,
            cmdline: procfs::cmdline(&self.proc_root, t.tgid),
            uid: Some(t.uid),
            exited: false,
        })
    }

    /// The task `tid`, from the table or else from /proc.
    pub fn lookup(&mut self, tid: i32) -> Option<&Proc> {
        let stale = match self.map.get(&tid) {
            None => true,
            // Fill in what fork/exec events could not tell while the
            // task is still there to ask.
            Some(p) => !p.exited && (p.cmdline.is_none() || p.uid.is_none()),
        };
        if stale {
            if let Some(fresh) = self.read_proc(tid) {
                let e = self.map.entry(tid).or_default();
                e.tgid = e.tgid.or(fresh.tgid);
                e.ppid = e.ppid.or(fresh.ppid);
                e.uid = e.uid.or(fresh.uid);
                e.cmdline = e.cmdline.take().or(fresh.cmdline);
                if e.comm.is_empty() {
                    e.comm = fresh.comm;
                }
            }
        }
        self.map.get(&tid)
    }

    pub fn apply(&mut self, ev: &TaskEvent) {
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
                let parent = self.lookup(*parent_tid).cloned().unwrap_or_default();
                let child = Proc {
                    tgid: if *thread { parent.tgid } else { Some(*tid) },
                    ppid: if *thread { parent.ppid } else { parent.tgid },
                    comm: comm.clone(),
                    exe: parent.exe,
                    // A forked child runs its parent's argv until it execs.
                    cmdline: parent.cmdline,
                    uid: parent.uid,
                    exited: false,
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
                // The argv is not in any tracepoint; read it while the
                // process may still be there.
                p.cmdline = procfs::cmdline(&self.proc_root, *tid);
                self.map.insert(*tid, p);
            }
            TaskEvent::Exit { tid, comm } => {
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
mod tests {
    use super::*;

    #[test]
    fn names_a_child_that_exited_before_it_was_looked_up() {
        // No /proc entries exist under this root, so everything known
        // comes from the events.
        let mut t = ProcTable::new("/nonexistent");
        t.apply(&TaskEvent::NewTask {
            parent_tid: 10,
            tid: 11,
            comm: "sh".into(),
            thread: false,
        });
        t.apply(&TaskEvent::Exec {
            tid: 11,
            old_tid: 11,
            filename: "/bin/kill".into(),
        });
        t.apply(&TaskEvent::Rename {
            tid: 11,
            comm: "kill".into(),
        });
        t.apply(&TaskEvent::NewTask {
            parent_tid: 11,
            tid: 12,
            comm: "kill".into(),
            thread: true,
        });
        t.apply(&TaskEvent::Exit {
            tid: 11,
            comm: "kill".into(),
        });
        let p = t.lookup(11).unwrap().clone();
        assert_eq!(
            (p.tgid, p.comm.as_str(), p.exe.as_deref(), p.exited),
            (Some(11), "kill", Some("/bin/kill"), true)
        );
        assert_eq!(t.lookup(12).unwrap().tgid, Some(11));
        assert!(t.lookup(99).is_none());
    }

    #[test]
    fn falls_back_to_proc_for_live_tasks() {
        let mut t = ProcTable::new("/proc");
        let me = std::process::id() as i32;
        let p = t.lookup(me).unwrap();
        assert_eq!(p.tgid, Some(me));
        assert!(p.cmdline.is_some());
    }
}
