//! Turning the CLI's query flags into the shared [`Query`], with the
//! same validation the agent applies, so mistakes are caught before
//! anything is built or uploaded.

use crate::cli::{CaptureArgs, QueryArgs};
use crate::error::HostError;
use whosent_proto::query::Query;

pub fn from_args(q: &QueryArgs) -> Result<Query, HostError> {
    let mut out = Query::default();
    let pairs = q
        .sig
        .iter()
        .map(|v| ("--sig", v))
        .chain(q.pid.iter().map(|v| ("--pid", v)))
        .chain(q.comm.iter().map(|v| ("--comm", v)))
        .chain(q.sender_pid.iter().map(|v| ("--sender-pid", v)))
        .chain(q.sender_comm.iter().map(|v| ("--sender-comm", v)))
        .chain(q.pid_ns.iter().map(|v| ("--pid-ns", v)))
        .chain(q.cause.iter().map(|v| ("--cause", v)));
    for (flag, v) in pairs {
        out.parse_flag(flag, v).map_err(|e| HostError::Usage(e.0))?;
    }
    Ok(out)
}

/// The agent's full argument list for a query and capture options.
pub fn agent_args(q: &Query, c: &CaptureArgs) -> Result<Vec<String>, HostError> {
    let mut a = q.to_args();
    if let Some(n) = c.count {
        if n == 0 {
            return Err(HostError::Usage("--count must be at least 1".into()));
        }
        a.extend(["--count".into(), n.to_string()]);
    }
    if let Some(d) = c.duration {
        if !(d > 0.0 && d.is_finite()) {
            return Err(HostError::Usage(
                "--duration must be a positive number of seconds".into(),
            ));
        }
        a.extend(["--duration".into(), d.to_string()]);
    }
    if c.until_exit && q.pids.is_empty() {
        return Err(HostError::Usage(
            "--until-exit needs --pid: it stops when those processes have ended".into(),
        ));
    }
    Ok(a)
}
