//! A table of processes, kept from the task lifecycle events read in
//! the same instance, so that a sender that exited before its event was
//! read can still be named, with its parents (its lineage).
//!
//! It starts from a /proc snapshot (parents that ran before the agent,
//! such as a watchdog script, may exit before the event is read) and
//! reads /proc on a miss. Events are applied in timestamp order,
//! interleaved with the signal events, so the table describes each task
//! as it was when it sent the signal.

use crate::procfs;
use std::collections::HashMap;
use whosent_ftrace::task_events::TaskEvent;
use whosent_proto::record::Ancestor;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proc {
    pub tgid: Option<i32>,
    pub ppid: Option<i32>,
    pub comm: String,
    pub exe: Option<String>,
    pub cmdline: Option<String>,
    pub uid: Option<u32>,
    /// The process id per pid namespace (`NStgid`); empty when unknown.
    pub nstgid: Vec<i32>,
    /// /proc was read for this task since its last fork or exec.
    pub read: bool,
    pub exited: bool,
}

/// Bounded so that a long capture on a busy board does not grow
/// without end; exited tasks are forgotten first.
const MAX_ENTRIES: usize = 1 << 16;

/// The longest lineage reported: deep enough for any real process tree,
/// and a bound if a table built from lost events ever held a loop.
pub const MAX_LINEAGE: usize = 16;

pub struct ProcTable {
    proc_root: String,
    map: HashMap<i32, Proc>,
    /// Changes whenever an entry may have: a lineage computed at the
    /// same generation is still right.
    pub generation: u64,
}

impl ProcTable {
    pub fn new(proc_root: &str) -> Self {
        ProcTable {
            proc_root: proc_root.to_string(),
            map: HashMap::new(),
            generation: 0,
        }
    }

    fn read_proc(&self, tid: i32) -> Option<Proc> {
        let root = &self.proc_root;
        let t = procfs::task(root, tid)?;
        Some(Proc {
            tgid: Some(t.tgid),
            ppid: Some(t.ppid),
            comm: t.comm,
            exe: procfs::exe(root, t.tgid),
            cmdline: procfs::cmdline(root, t.tgid),
            uid: Some(t.uid),
            nstgid: t.nstgid,
            read: true,
            exited: false,
        })
    }

    /// Learns every process in /proc now.
    pub fn snapshot(&mut self) {
        for pid in procfs::pids(&self.proc_root) {
            if let Some(p) = self.read_proc(pid) {
                self.map.insert(pid, p);
            }
        }
    }

    /// Reads /proc for `tid` and fills in what the events could not
    /// tell; what they told stays.
    fn refresh(&mut self, tid: i32) {
        let root = &self.proc_root;
        let Some(t) = procfs::task(root, tid) else {
            return;
        };
        self.generation += 1;
        let e = self.map.entry(tid).or_default();
        e.tgid = e.tgid.or(Some(t.tgid));
        e.ppid = e.ppid.or(Some(t.ppid));
        e.uid = e.uid.or(Some(t.uid));
        // Only what is missing: this runs at every exec.
        if e.exe.is_none() {
            e.exe = procfs::exe(root, t.tgid);
        }
        if e.cmdline.is_none() {
            e.cmdline = procfs::cmdline(root, t.tgid);
        }
        if e.comm.is_empty() {
            e.comm = t.comm;
        }
        e.nstgid = t.nstgid;
        e.read = true;
    }

    /// The task `tid`, from the table or else from /proc.
    pub fn lookup(&mut self, tid: i32) -> Option<&Proc> {
        if self.map.get(&tid).is_none_or(|p| !p.exited && !p.read) {
            self.refresh(tid);
        }
        self.map.get(&tid)
    }

    /// Process `pid`, then its parent, and so on up to pid 1.
    pub fn lineage(&mut self, pid: i32) -> Vec<Ancestor> {
        let mut out: Vec<Ancestor> = Vec::new();
        let mut next = Some(pid);
        while let Some(pid) = next {
            if pid <= 0 || out.len() == MAX_LINEAGE || out.iter().any(|a| a.pid == pid) {
                break;
            }
            let p = self.lookup(pid).cloned().unwrap_or_default();
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

    pub fn apply(&mut self, ev: &TaskEvent) {
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
                let parent = self.lookup(*parent_tid).cloned().unwrap_or_default();
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
                    uid: parent.uid,
                    // A thread shares its process's ids; a new process may
                    // be in a new pid namespace (unshare), so only /proc
                    // can tell.
                    nstgid: if *thread { parent.nstgid } else { Vec::new() },
                    read: false,
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
                // The argv uprobe's event follows and replaces this;
                // without it (a static program, no uprobes) /proc is the
                // only source, read while the process may still be there.
                p.cmdline = None;
                p.read = false;
                self.map.insert(*tid, p);
                self.refresh(*tid);
            }
            TaskEvent::Argv { tid, cmdline } => {
                self.map.entry(*tid).or_default().cmdline = Some(cmdline.clone());
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
    fn lineage_of_a_chain_that_has_exited() {
        let mut t = ProcTable::new("/nonexistent");
        let spawn = |t: &mut ProcTable, parent, tid, file: &str, argv: &str| {
            t.apply(&TaskEvent::NewTask {
                parent_tid: parent,
                tid,
                comm: "x".into(),
                thread: false,
            });
            t.apply(&TaskEvent::Exec {
                tid,
                old_tid: tid,
                filename: file.into(),
            });
            t.apply(&TaskEvent::Rename {
                tid,
                comm: file.rsplit('/').next().unwrap().into(),
            });
            t.apply(&TaskEvent::Argv {
                tid,
                cmdline: argv.into(),
            });
        };
        spawn(
            &mut t,
            1,
            800,
            "/usr/bin/watchdog.sh",
            "/bin/sh /usr/bin/watchdog.sh",
        );
        spawn(&mut t, 800, 810, "/bin/sh", "sh -c kill -9 650");
        spawn(&mut t, 810, 812, "/bin/kill", "kill -9 650");
        for tid in [812, 810, 800] {
            t.apply(&TaskEvent::Exit {
                tid,
                comm: String::new(),
            });
        }
        let l = t.lineage(812);
        let got: Vec<_> = l
            .iter()
            .map(|a| (a.pid, a.comm.as_str(), a.cmdline.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (812, "kill", Some("kill -9 650")),
                (810, "sh", Some("sh -c kill -9 650")),
                (800, "watchdog.sh", Some("/bin/sh /usr/bin/watchdog.sh")),
                // Not in the table and not in this /proc: named as unknown.
                (1, "<...>", None),
            ]
        );
        assert_eq!(l[1].exe.as_deref(), Some("/bin/sh"));
    }

    #[test]
    fn a_parent_loop_is_cut() {
        let mut t = ProcTable::new("/nonexistent");
        for (parent, tid) in [(9, 5), (5, 6), (6, 5)] {
            t.apply(&TaskEvent::NewTask {
                parent_tid: parent,
                tid,
                comm: "x".into(),
                thread: false,
            });
        }
        assert_eq!(t.lineage(6).len(), 2);
        let mut chain = ProcTable::new("/nonexistent");
        for tid in 2..40 {
            chain.apply(&TaskEvent::NewTask {
                parent_tid: tid - 1,
                tid,
                comm: "x".into(),
                thread: false,
            });
        }
        assert_eq!(chain.lineage(39).len(), MAX_LINEAGE);
    }

    #[test]
    fn the_snapshot_knows_processes_before_they_exit() {
        let mut t = ProcTable::new("/proc");
        t.snapshot();
        let me = std::process::id() as i32;
        let p = t.map.get(&me).unwrap().clone();
        assert_eq!(p.nstgid.first(), Some(&me));
        assert!(p.exe.is_some() && p.cmdline.is_some());
        let l = t.lineage(me);
        assert_eq!(l.last().map(|a| a.pid), Some(1), "{l:?}");
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
