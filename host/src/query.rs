//! Turning the CLI's query flags into the shared [`Query`], with the
//! same validation the agent applies, so mistakes are caught before
//! anything is built or uploaded.

use crate::cli::{CaptureArgs, QueryArgs};
use crate::error::HostError;
use std::time::Duration;
use whosent_proto::query::Query;

pub fn from_args(q: &QueryArgs) -> Result<Query, HostError> {
    from_pairs(flags(q))
}

/// The query flags as the user gave them, flag and value.
pub fn flags(q: &QueryArgs) -> Vec<(&'static str, &str)> {
    q.sig
        .iter()
        .map(|v| ("--sig", v.as_str()))
        .chain(q.pid.iter().map(|v| ("--pid", v.as_str())))
        .chain(q.comm.iter().map(|v| ("--comm", v.as_str())))
        .chain(q.sender_pid.iter().map(|v| ("--sender-pid", v.as_str())))
        .chain(q.sender_comm.iter().map(|v| ("--sender-comm", v.as_str())))
        .chain(q.pid_ns.iter().map(|v| ("--pid-ns", v.as_str())))
        .chain(q.cause.iter().map(|v| ("--cause", v.as_str())))
        .collect()
}

/// A query from (flag, value) pairs, each checked as on the command line.
pub fn from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Query, HostError> {
    let mut out = Query::default();
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
        let d = duration(d)?;
        // Seconds and nanoseconds, as the agent reads them: no exponent.
        a.extend([
            "--duration".into(),
            format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
        ]);
    }
    if c.until_exit && q.pids.is_empty() {
        return Err(HostError::Usage(
            "--until-exit needs --pid: it stops when those processes have ended".into(),
        ));
    }
    Ok(a)
}

/// The longest `--duration`: about 136 years. Beyond it the deadline
/// (now + duration) would overflow a clock, here or on the board.
const MAX_DURATION_SECS: u64 = u32::MAX as u64;

/// `--duration SECS` checked here, where the user typed it: the agent
/// only reads plain seconds to the nanosecond (`1e20` and `1e-10` used
/// to pass here and fail there, pointing at `whosent-agent --help`).
pub fn duration(secs: f64) -> Result<Duration, HostError> {
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(HostError::Usage(
            "--duration must be a positive number of seconds".into(),
        ));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d.is_zero() => Err(HostError::Usage(format!(
            "--duration {secs}: shorter than a nanosecond, the finest the agent times"
        ))),
        Ok(d) if d.as_secs() < MAX_DURATION_SECS => Ok(d),
        _ => Err(HostError::Usage(format!(
            "--duration {secs}: too long; at most {MAX_DURATION_SECS} seconds (about 136 years)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(d: f64) -> Result<Vec<String>, HostError> {
        let c = CaptureArgs {
            duration: Some(d),
            ..Default::default()
        };
        agent_args(&Query::default(), &c)
    }

    /// Issue #13: `--duration 1e20` and `1e-10` passed whosent-deploy
    /// and failed in the agent, with a help line about whosent-agent.
    #[test]
    fn duration_1e20_and_1e_10_are_refused_where_typed() {
        for (d, want) in [
            (1e20, "too long"),
            (1e-10, "shorter than a nanosecond"),
            (0.0, "positive"),
            (-1.0, "positive"),
            (f64::INFINITY, "positive"),
        ] {
            let e = args(d).unwrap_err();
            assert!(matches!(e, HostError::Usage(_)), "{d}: {e:?}");
            assert!(e.to_string().contains(want), "{d}: {e}");
            assert!(!e.line().contains("whosent-agent"), "{}", e.line());
        }
    }

    #[test]
    fn duration_goes_to_the_agent_as_plain_seconds() {
        for (d, want) in [
            (1.5, "1.500000000"),
            (1e-9, "0.000000001"),
            (1e6, "1000000.000000000"),
            (4e9, "4000000000.000000000"),
        ] {
            assert_eq!(args(d).unwrap(), ["--duration", want], "{d}");
        }
    }
}
