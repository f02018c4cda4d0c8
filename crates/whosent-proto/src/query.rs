//! What the user asked to watch, shared by the agent and the host.
//!
//! The host forwards a [`Query`] to the agent as command-line flags
//! ([`Query::to_args`]); the agent parses them back with
//! [`Query::parse_flag`]. Keeping both here means the two cannot drift.

use crate::cause::Cause;
use crate::record::{SignalEvent, Task};
use crate::signal;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Signal numbers; empty = all.
    pub sigs: Vec<i32>,
    /// Target processes (tgids); empty = all.
    pub pids: Vec<i32>,
    /// Target command name (exact, as in /proc/PID/comm).
    pub comm: Option<String>,
    /// Sender processes (tgids).
    pub sender_pids: Vec<i32>,
    pub sender_comm: Option<String>,
    /// When set, `pids` and `sender_pids` are pids inside the pid
    /// namespace of this (host) pid's process, as `nsenter -t` takes it;
    /// the agent turns them into host pids when it starts.
    pub pid_ns: Option<i32>,
    /// Causes (`--cause`); empty = all.
    pub causes: Vec<Cause>,
}

/// A bad flag value, with a line telling the user what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryError {}

/// Parses a pid given on the command line.
pub fn parse_pid(flag: &str, v: &str) -> Result<i32, QueryError> {
    match v.trim().parse::<i32>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(QueryError(format!(
            "{flag} '{v}' is not a process id: give a positive number, e.g. from `pidof NAME`"
        ))),
    }
}

/// A task's process id; when the process is unknown (a text trace, a
/// task that exited unseen) its thread id stands in, which is exact for
/// a process's main thread, whose tid is its pid.
fn process_of(t: &Task) -> i32 {
    t.pid.unwrap_or(t.tid)
}

impl Query {
    /// Whether an event answers this query. The one definition every
    /// backend and `parse` apply: the target by process, the sender only
    /// in task context (in interrupt context nobody sent it).
    pub fn matches(&self, e: &SignalEvent) -> bool {
        let sender = e.sender();
        (self.sigs.is_empty() || self.sigs.contains(&e.sig))
            && (self.pids.is_empty() || self.pids.contains(&process_of(&e.target)))
            && self.comm.as_ref().is_none_or(|c| *c == e.target.comm)
            && (self.sender_pids.is_empty()
                || sender.is_some_and(|s| self.sender_pids.contains(&process_of(s))))
            && self
                .sender_comm
                .as_ref()
                .is_none_or(|c| sender.is_some_and(|s| s.comm == *c))
            && (self.causes.is_empty() || e.cause.is_some_and(|c| self.causes.contains(&c)))
    }

    /// Applies one query flag; returns `Ok(false)` if `flag` is not a
    /// query flag.
    /// Whether `flag` is one of the query's, which [`parse_flag`]
    /// takes: a parser asks before it takes the next argument as the
    /// value, so that an unknown flag is "unknown", not "needs a value".
    ///
    /// [`parse_flag`]: Self::parse_flag
    pub fn is_flag(flag: &str) -> bool {
        matches!(
            flag,
            "-s" | "--sig"
                | "--pid"
                | "--comm"
                | "--sender-pid"
                | "--sender-comm"
                | "--pid-ns"
                | "--cause"
        )
    }

    pub fn parse_flag(&mut self, flag: &str, value: &str) -> Result<bool, QueryError> {
        match flag {
            "-s" | "--sig" => {
                let n = signal::parse(value).map_err(|e| QueryError(e.to_string()))?;
                if !self.sigs.contains(&n) {
                    self.sigs.push(n);
                }
            }
            "--pid" => self.pids.push(parse_pid(flag, value)?),
            "--sender-pid" => self.sender_pids.push(parse_pid(flag, value)?),
            "--comm" => self.comm = Some(comm(flag, value)?),
            "--sender-comm" => self.sender_comm = Some(comm(flag, value)?),
            "--pid-ns" => self.pid_ns = Some(parse_pid(flag, value)?),
            "--cause" => {
                let c = Cause::from_name(value).ok_or_else(|| {
                    QueryError(format!(
                        "--cause '{value}' is not a cause: use one of {}",
                        crate::cause::NAMES_LIST
                    ))
                })?;
                if !self.causes.contains(&c) {
                    self.causes.push(c);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The agent flags that express this query.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for s in &self.sigs {
            a.extend(["--sig".to_string(), s.to_string()]);
        }
        for p in &self.pids {
            a.extend(["--pid".to_string(), p.to_string()]);
        }
        if let Some(c) = &self.comm {
            a.extend(["--comm".to_string(), c.clone()]);
        }
        for p in &self.sender_pids {
            a.extend(["--sender-pid".to_string(), p.to_string()]);
        }
        if let Some(c) = &self.sender_comm {
            a.extend(["--sender-comm".to_string(), c.clone()]);
        }
        if let Some(p) = self.pid_ns {
            a.extend(["--pid-ns".to_string(), p.to_string()]);
        }
        for c in &self.causes {
            a.extend(["--cause".to_string(), c.as_str().to_string()]);
        }
        a
    }
}

/// The kernel keeps 15 bytes of a command name (TASK_COMM_LEN 16).
fn comm(flag: &str, v: &str) -> Result<String, QueryError> {
    if v.is_empty() || v.len() > 15 {
        // The value is not echoed: the agent parses this too, and
        // escaping it there was 1.1 KB of its size budget.
        return Err(QueryError(format!(
            "{flag}: a command name is 1 to 15 bytes, as in /proc/PID/comm ({} given)",
            v.len()
        )));
    }
    // A line break would split the one-line "kernel filter" message
    // and the filter the agent writes to tracefs, whose
    // filter_parse() (kernel/trace/trace_events_filter.c) reads a
    // written buffer as one expression. The kernel would store one in
    // a comm (`prctl(PR_SET_NAME)` copies bytes as given), but no
    // filter here can name it. Other control bytes (a tab, an escape)
    // stay matchable: they are shown escaped.
    if v.contains(['\n', '\r']) {
        return Err(QueryError(format!(
            "{flag}: a command name to match cannot hold a line break"
        )));
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #13: `--comm $'a\nb'` was taken and split the "kernel
    /// filter" line in two.
    #[test]
    fn a_comm_with_a_newline_is_refused_and_quoted_escaped() {
        let mut q = Query::default();
        for v in ["a\nb", "a\rb", "\x1b[2K\n"] {
            let e = q.parse_flag("--comm", v).unwrap_err().0;
            assert!(e.contains("cannot hold a line break"), "{e}");
            assert!(!e.chars().any(char::is_control), "{e:?}");
            let e = q.parse_flag("--sender-comm", v).unwrap_err().0;
            assert!(e.starts_with("--sender-comm"), "{e}");
        }
        assert_eq!(q.comm, None);
        // A tab or an escape is a name someone may be after.
        assert!(q.parse_flag("--comm", "sig\tvictim").is_ok());
        assert!(q.parse_flag("--comm", "\x1b[2K").is_ok());
    }

    #[test]
    fn flags_round_trip_through_args() {
        let mut q = Query::default();
        for (f, v) in [
            ("-s", "KILL"),
            ("--sig", "RTMIN+3"),
            ("--pid", "12"),
            ("--comm", "my app"),
            ("--sender-pid", "7"),
            ("--sender-comm", "kill"),
            ("--pid-ns", "4242"),
            ("--cause", "oom"),
            ("--cause", "kill"),
        ] {
            assert_eq!(q.parse_flag(f, v), Ok(true));
        }
        let args = q.to_args();
        let mut back = Query::default();
        for pair in args.chunks(2) {
            // The agent refuses what is_flag does not know (once, --cause).
            assert!(Query::is_flag(&pair[0]), "{}", pair[0]);
            assert_eq!(back.parse_flag(&pair[0], &pair[1]), Ok(true));
        }
        assert_eq!(back, q);
        assert_eq!(q.sigs, vec![9, 37]);
    }

    #[test]
    fn matches_by_process_and_credits_no_sender_in_interrupts() {
        use crate::record::{Context, Outcome};
        let task = |pid: Option<i32>, tid: i32, comm: &str| Task {
            pid,
            tid,
            comm: comm.into(),
            ..Default::default()
        };
        let mut e = SignalEvent {
            ts_ns: 0,
            cpu: 0,
            sig: 9,
            code: 0,
            errno: 0,
            group: Some(false),
            result: Some(Outcome::Delivered),
            context: Context::Task,
            running: task(Some(7), 8, "kill"),
            target: task(Some(100), 103, "worker"),
            cause: None,
            oom: None,
        };
        let q = |f: &[(&str, &str)]| {
            let mut q = Query::default();
            for (k, v) in f {
                q.parse_flag(k, v).unwrap();
            }
            q
        };
        assert!(q(&[("--pid", "100"), ("--sig", "KILL")]).matches(&e));
        assert!(
            !q(&[("--pid", "103")]).matches(&e),
            "a thread id is not the process"
        );
        assert!(q(&[("--sender-pid", "7"), ("--comm", "worker")]).matches(&e));
        assert!(!q(&[("--sig", "TERM")]).matches(&e));
        // Unknown process: the thread id stands in (exact for main threads).
        e.target.pid = None;
        assert!(q(&[("--pid", "103")]).matches(&e));
        // In interrupt context nobody sent it.
        e.context = Context::Hardirq;
        assert!(!q(&[("--sender-comm", "kill")]).matches(&e));
        assert!(q(&[("--sig", "9")]).matches(&e));
    }

    #[test]
    fn bad_values_say_what_to_do() {
        let mut q = Query::default();
        assert!(q
            .parse_flag("--pid", "abc")
            .unwrap_err()
            .0
            .contains("positive number"));
        assert!(q.parse_flag("--pid", "0").is_err());
        assert!(q
            .parse_flag("--sig", "0")
            .unwrap_err()
            .0
            .contains("kill -l"));
        assert!(q.parse_flag("--comm", "a-very-long-command-name").is_err());
        assert!(q.parse_flag("--comm", "my app").is_ok());
        assert_eq!(q.parse_flag("--count", "1"), Ok(false));
        assert!(!Query::is_flag("--count"));
    }
}
