//! The query as the module's parameters.
//!
//! Every global of `whosent.stp` is a module parameter, so a query is
//! given to `staprun` as `target_sig=9 target_pid=123` and the module is
//! built once. The script filters on one signal (or a mask), one target
//! pid, one sender pid and two comms. What it cannot express (several
//! pids, a comm with a `"`) is left to the host, which applies the whole
//! query to every event anyway (`Query::matches`), with the same meaning as
//! the ftrace agent.

use crate::error::HostError;
use whosent_proto::query::Query;

/// The script's parameters; 0 and "" mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub target_sig: i64,
    pub target_sigmask: i64,
    pub target_pid: i64,
    pub target_tid: i64,
    pub target_comm: String,
    pub sender_pid: i64,
    pub sender_comm: String,
    pub max_events: i64,
}

/// How a query is split between the module and the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub params: Params,
    /// The flags the module cannot filter on, e.g. `--pid` given twice.
    /// Empty when the module's filter is the whole query, and only then
    /// may it count (`max_events`): otherwise it would count events the
    /// host then drops.
    pub host_only: Vec<String>,
}

impl Plan {
    pub fn exact(&self) -> bool {
        self.host_only.is_empty()
    }
}

/// The kernel's `parse_args` splits module options on whitespace outside
/// `"…"` and has no escape for `"` itself (kernel/params.c, next_arg).
fn passable(comm: &str) -> bool {
    !comm.contains('"') && !comm.contains('\0')
}

/// Splits `q`; `count` (`--count`) becomes `max_events` when it can.
pub fn plan(q: &Query, count: Option<u64>) -> Result<Plan, HostError> {
    if q.pid_ns.is_some() {
        return Err(HostError::Usage(
            "--pid-ns is not supported by --backend stap: give the pids as the board's init namespace sees them".into(),
        ));
    }
    let mut p = Params::default();
    let mut host_only = Vec::new();
    match q.sigs.as_slice() {
        [] => {}
        [one] => p.target_sig = i64::from(*one),
        // Bit N-1 selects signal N; signal 64 would need the sign bit,
        // which is not tried on a board yet.
        many if many.iter().all(|s| (1..=63).contains(s)) => {
            p.target_sigmask = many.iter().fold(0i64, |m, s| m | 1 << (s - 1));
        }
        _ => host_only.push("--sig".to_string()),
    }
    match q.pids.as_slice() {
        [] => {}
        [one] => p.target_pid = i64::from(*one),
        _ => host_only.push("--pid".to_string()),
    }
    match q.sender_pids.as_slice() {
        [] => {}
        [one] => p.sender_pid = i64::from(*one),
        _ => host_only.push("--sender-pid".to_string()),
    }
    if let Some(c) = &q.comm {
        if passable(c) {
            p.target_comm = c.clone();
        } else {
            host_only.push("--comm".to_string());
        }
    }
    if let Some(c) = &q.sender_comm {
        if passable(c) {
            p.sender_comm = c.clone();
        } else {
            host_only.push("--sender-comm".to_string());
        }
    }
    if let Some(n) = count {
        if n == 0 {
            return Err(HostError::Usage("--count must be at least 1".into()));
        }
        if host_only.is_empty() {
            p.max_events = i64::try_from(n).unwrap_or(i64::MAX);
        }
    }
    Ok(Plan {
        params: p,
        host_only,
    })
}

impl Params {
    /// `(name, value)` for each parameter, in the script's order, with
    /// strings as they are (not quoted).
    pub fn pairs(&self) -> [(&'static str, ParamValue<'_>); 8] {
        use ParamValue::{Int, Str};
        [
            ("target_sig", Int(self.target_sig)),
            ("target_sigmask", Int(self.target_sigmask)),
            ("target_pid", Int(self.target_pid)),
            ("target_tid", Int(self.target_tid)),
            ("target_comm", Str(&self.target_comm)),
            ("sender_pid", Int(self.sender_pid)),
            ("sender_comm", Str(&self.sender_comm)),
            ("max_events", Int(self.max_events)),
        ]
    }

    /// The module options for staprun, one argument each, only those
    /// that are set: `target_sig=9`, `target_comm="my app"`. Strings are
    /// double-quoted inside the argument, since staprun joins the options
    /// with spaces for the kernel.
    pub fn module_args(&self) -> Vec<String> {
        self.pairs()
            .iter()
            .filter_map(|(k, v)| match v {
                ParamValue::Int(0) | ParamValue::Str("") => None,
                ParamValue::Int(n) => Some(format!("{k}={n}")),
                ParamValue::Str(s) => Some(format!("{k}=\"{s}\"")),
            })
            .collect()
    }

    /// What the `ready` record's `filter` says: the options that filter
    /// (not `max_events`), or "".
    pub fn describe(&self) -> String {
        let mut filter = self.clone();
        filter.max_events = 0;
        filter.module_args().join(" ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamValue<'a> {
    Int(i64),
    Str(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(flags: &[(&str, &str)]) -> Query {
        let mut q = Query::default();
        for (f, v) in flags {
            assert_eq!(q.parse_flag(f, v), Ok(true), "{f} {v}");
        }
        q
    }

    #[test]
    fn single_values_go_to_the_module_and_it_counts() {
        let q = query(&[
            ("--sig", "TERM"),
            ("--pid", "650"),
            ("--comm", "sig\tvictim"),
            ("--sender-pid", "7"),
            ("--sender-comm", "kill"),
        ]);
        let p = plan(&q, Some(3)).unwrap();
        assert!(p.exact());
        assert_eq!(
            p.params.module_args(),
            [
                "target_sig=15",
                "target_pid=650",
                "target_comm=\"sig\tvictim\"",
                "sender_pid=7",
                "sender_comm=\"kill\"",
                "max_events=3"
            ]
        );
    }

    #[test]
    fn several_signals_become_a_mask() {
        // SIGSEGV|SIGALRM, the example of docs/stap-notes.md.
        let p = plan(&query(&[("--sig", "SEGV"), ("--sig", "ALRM")]), None).unwrap();
        assert_eq!(p.params.target_sigmask, 9216);
        assert_eq!(p.params.target_sig, 0);
        let p = plan(&query(&[("--sig", "USR1"), ("--sig", "RTMAX")]), None).unwrap();
        assert_eq!(p.host_only, ["--sig"]);
    }

    #[test]
    fn what_the_module_cannot_filter_is_left_to_the_host_which_then_counts() {
        let q = query(&[("--pid", "1"), ("--pid", "2"), ("--comm", "say \"hi\"")]);
        let p = plan(&q, Some(1)).unwrap();
        assert_eq!(p.host_only, ["--pid", "--comm"]);
        assert_eq!(p.params.max_events, 0);
        assert_eq!(p.params.describe(), "");
        assert!(plan(&query(&[("--pid-ns", "1")]), None).is_err());
        assert!(plan(&Query::default(), Some(0)).is_err());
    }
}
