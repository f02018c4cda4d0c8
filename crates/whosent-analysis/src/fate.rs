//! What became of the watched processes (`--pid`, `--comm`): the signal
//! that killed one, or the status it exited with, told once its last
//! thread is gone, as an `exit` record; and `--until-exit`'s end.
//!
//! A death by signal shows as the fatal `signal:signal_deliver` in the
//! target's own context; a normal exit as `sys_enter_exit_group`. The
//! first of the two decides: an exit_group, an exec or a core dump
//! kills the other threads with a SIGKILL that `get_signal` also
//! traces as delivered, on its group-exit path.
//!
//! That path hides which signal it was: `complete_signal`
//! (`kernel/signal.c`) turns a fatal signal that dumps no core (SIGTERM,
//! SIGPIPE, SIGUSR1, …) into SIGKILL for every thread as it is
//! generated, so the delivery says SIGKILL. The signal that killed is
//! then the last fatal one generated for the process; when none was
//! seen (the kernel filter dropped it, or it was lost), it is unknown.

use whosent_ftrace::fate_events::fatal_by_default;
use whosent_proto::record::{Blame, ExitRec, SignalEvent};

/// At most this many processes are followed at once (a `--comm` that
/// matches a fork storm must not grow without end); the oldest go first.
const MAX_FOLLOWED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum First {
    /// Killed: by this signal, if known.
    Killed(Option<i32>),
    Exited(i32),
}

#[derive(Debug, Default)]
struct Followed {
    pid: i32,
    first: Option<First>,
    /// The last fatal-by-default signal generated for it.
    last: Option<(i32, Blame)>,
}

#[derive(Debug, Default)]
pub struct Fates {
    pids: Vec<i32>,
    comm: Option<String>,
    /// `--pid` targets that have not ended yet.
    remaining: Vec<i32>,
    followed: Vec<Followed>,
}

impl Fates {
    /// Watches the processes `pids` (tgids) and any named `comm`.
    pub fn new(pids: &[i32], comm: Option<&str>) -> Self {
        Fates {
            pids: pids.to_vec(),
            comm: comm.map(str::to_string),
            remaining: pids.to_vec(),
            followed: Vec::new(),
        }
    }

    pub fn active(&self) -> bool {
        !self.pids.is_empty() || self.comm.is_some()
    }

    fn watched(&self, pid: i32, comm: &str) -> bool {
        self.pids.contains(&pid) || self.comm.as_deref() == Some(comm)
    }

    fn entry(&mut self, pid: i32) -> &mut Followed {
        let i = match self.followed.iter().position(|f| f.pid == pid) {
            Some(i) => i,
            None => {
                if self.followed.len() >= MAX_FOLLOWED {
                    self.followed.remove(0);
                }
                self.followed.push(Followed {
                    pid,
                    ..Default::default()
                });
                self.followed.len() - 1
            }
        };
        &mut self.followed[i]
    }

    /// A signal generated for a process (before the query is applied:
    /// the death's sender is told whatever the query shows).
    pub fn signal(&mut self, e: &SignalEvent) {
        let Some(pid) = e.target.pid else { return };
        // An ignored signal kills nothing (`prepare_signal` dropped it).
        let ignored = e.result == Some(whosent_proto::record::Outcome::Ignored);
        if ignored || !fatal_by_default(e.sig) || !self.watched(pid, &e.target.comm) {
            return;
        }
        let b = Blame::of(e);
        self.entry(pid).last = Some((e.sig, b));
    }

    /// `pid` took `sig` with its default, fatal action.
    pub fn fatal(&mut self, pid: i32, comm: &str, sig: i32) {
        if !self.watched(pid, comm) {
            return;
        }
        let f = self.entry(pid);
        if f.first.is_some() {
            return;
        }
        let sig = if sig == whosent_proto::signal::SIGKILL {
            f.last.as_ref().map(|l| l.0)
        } else {
            Some(sig)
        };
        f.first = Some(First::Killed(sig));
    }

    /// `pid` called exit_group(status).
    pub fn exit_group(&mut self, pid: i32, comm: &str, status: i32) {
        if self.watched(pid, comm) {
            let f = self.entry(pid);
            f.first.get_or_insert(First::Exited(status));
        }
    }

    /// `pid` ran a new program: the SIGKILLs that de_thread() sent its
    /// other threads ended no process.
    pub fn exec(&mut self, pid: i32) {
        if let Some(f) = self.followed.iter_mut().find(|f| f.pid == pid) {
            f.first = None;
        }
    }

    /// The last thread of `pid` exited: its `exit` record, if watched.
    pub fn ended(&mut self, ts_ns: u64, pid: i32, comm: &str) -> Option<ExitRec> {
        if !self.watched(pid, comm) {
            return None;
        }
        self.remaining.retain(|&p| p != pid);
        let f = match self.followed.iter().position(|f| f.pid == pid) {
            Some(i) => self.followed.remove(i),
            None => Followed::default(),
        };
        let (killed, sig, status) = match f.first {
            Some(First::Killed(sig)) => (true, sig, None),
            Some(First::Exited(st)) => (false, None, Some(st)),
            // Its last thread called exit(), or the exit_group event is
            // not in this kernel.
            None => (false, None, None),
        };
        let by = f.last.filter(|l| Some(l.0) == sig).map(|l| l.1);
        Some(ExitRec {
            ts_ns,
            pid,
            comm: comm.to_string(),
            killed,
            sig,
            status,
            by,
        })
    }

    /// Every `--pid` target has ended.
    pub fn all_ended(&self) -> bool {
        !self.pids.is_empty() && self.remaining.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whosent_proto::cause::Cause;
    use whosent_proto::record::{Context, Outcome, Task};

    fn kill(sig: i32, from: i32, to: i32) -> SignalEvent {
        let t = |pid: i32, comm: &str| Task {
            pid: Some(pid),
            tid: pid,
            comm: comm.into(),
            ..Default::default()
        };
        SignalEvent {
            ts_ns: 5,
            cpu: 0,
            sig,
            code: 0,
            errno: 0,
            group: Some(true),
            result: Some(Outcome::Delivered),
            context: Context::Task,
            running: t(from, "sh"),
            target: t(to, "sleep"),
            cause: Some(Cause::Kill),
            oom: None,
        }
    }

    #[test]
    fn a_killed_target_names_the_signal_that_killed_it() {
        let mut f = Fates::new(&[140], None);
        f.signal(&kill(15, 167, 140));
        f.signal(&kill(9, 168, 140));
        f.signal(&kill(9, 99, 141));
        f.fatal(140, "sleep", 9);
        // The SIGKILLs that follow on the other threads change nothing.
        f.fatal(140, "sleep", 9);
        assert!(!f.all_ended());
        let x = f.ended(7, 140, "sleep").unwrap();
        assert!(x.killed);
        assert_eq!(x.sig, Some(9));
        assert_eq!(x.status, None);
        assert_eq!(x.by.unwrap().sender, Some((Some(168), "sh".into())));
        assert!(f.all_ended());
        assert_eq!(f.ended(8, 141, "sleep"), None);
    }

    #[test]
    fn a_fatal_signal_turned_into_sigkill_is_named_as_sent() {
        let mut f = Fates::new(&[150], None);
        let mut pipe = kill(13, 150, 150);
        pipe.ts_ns = 9;
        f.signal(&kill(9, 99, 150));
        f.signal(&pipe);
        // complete_signal made it SIGKILL for the delivery.
        f.fatal(150, "sleep", 9);
        let x = f.ended(10, 150, "sleep").unwrap();
        assert_eq!((x.killed, x.sig), (true, Some(13)));
        // Nothing generated was seen: killed, by an unknown signal.
        let mut f = Fates::new(&[151], None);
        f.fatal(151, "sleep", 9);
        let x = f.ended(10, 151, "sleep").unwrap();
        assert_eq!((x.killed, x.sig, x.by), (true, None, None));
    }

    #[test]
    fn an_exit_group_before_the_sigkills_of_the_other_threads_is_an_exit() {
        let mut f = Fates::new(&[160], None);
        f.exit_group(160, "app", 3);
        f.fatal(160, "app", 9);
        let x = f.ended(10, 160, "app").unwrap();
        assert_eq!((x.killed, x.status), (false, Some(3)));
        // An exec's de_thread SIGKILLs end nothing.
        f.fatal(161, "app", 9);
        let mut g = Fates::new(&[161], None);
        g.fatal(161, "app", 9);
        g.exec(161);
        g.exit_group(161, "app", 0);
        let x = g.ended(11, 161, "app").unwrap();
        assert_eq!((x.killed, x.status), (false, Some(0)));
    }

    #[test]
    fn an_exit_status_is_told_and_unwatched_processes_are_not() {
        let mut f = Fates::new(&[], Some("prog"));
        f.exit_group(200, "prog", 3);
        f.exit_group(201, "other", 1);
        let x = f.ended(9, 200, "prog").unwrap();
        assert_eq!((x.sig, x.status, x.by), (None, Some(3), None));
        assert_eq!(f.ended(9, 201, "other"), None);
        assert!(!f.all_ended(), "--until-exit needs --pid targets");
    }
}
