//! Reading records back (feature `decode`, used by the host).
//!
//! Unknown fields are ignored and unknown record types are kept as
//! [`Record::Other`], so an older host can read a newer agent.

use crate::cause::Cause;
use crate::record::{
    Blame, Context, End, ErrorRec, ExitRec, Lost, OomVictim, Outcome, Ready, SignalEvent, Task,
};
use serde::Deserialize;

/// One decoded line.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Ready(Ready),
    Signal(SignalEvent),
    Lost(Lost),
    End(End),
    Error(ErrorRec),
    Exit(ExitRec),
    Other(String),
}

#[derive(Debug)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed agent record: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawResult {
    Name(String),
    Num(i32),
}

#[derive(Deserialize)]
struct WireSignal {
    ts: f64,
    cpu: u32,
    sig: i32,
    code: i32,
    #[serde(default)]
    errno: i32,
    group: Option<bool>,
    result: Option<RawResult>,
    context: Context,
    sender: Option<Task>,
    running: Option<Task>,
    target: Task,
    /// A cause this reader does not know (a newer agent) reads as none.
    #[serde(default)]
    cause: Option<String>,
    #[serde(default)]
    oom: Option<Box<OomVictim>>,
}

#[derive(Deserialize)]
struct WireExit {
    ts: f64,
    pid: i32,
    comm: String,
    how: String,
    status: Option<i32>,
    sig: Option<i32>,
    by: Option<WireBlame>,
}

#[derive(Deserialize)]
struct WireBlame {
    ts: f64,
    code: i32,
    #[serde(default)]
    cause: Option<String>,
    sender: Option<WireWho>,
}

#[derive(Deserialize)]
struct WireWho {
    pid: Option<i32>,
    comm: String,
}

fn ns(secs: f64) -> u64 {
    (secs * 1e9).round() as u64
}

#[derive(Deserialize)]
struct Tag {
    #[serde(rename = "type")]
    ty: String,
}

/// Decodes one JSON Lines record.
pub fn parse_line(line: &str) -> Result<Record, DecodeError> {
    let err = |e: serde_json::Error| DecodeError(format!("{e}: {}", line.trim_end()));
    let tag: Tag = serde_json::from_str(line).map_err(err)?;
    Ok(match tag.ty.as_str() {
        "ready" => Record::Ready(serde_json::from_str(line).map_err(err)?),
        "lost" => Record::Lost(serde_json::from_str(line).map_err(err)?),
        "end" => Record::End(serde_json::from_str(line).map_err(err)?),
        "error" => Record::Error(serde_json::from_str(line).map_err(err)?),
        "exit" => {
            let w: WireExit = serde_json::from_str(line).map_err(err)?;
            Record::Exit(ExitRec {
                ts_ns: ns(w.ts),
                pid: w.pid,
                comm: w.comm,
                killed: w.how == "killed",
                sig: w.sig,
                status: w.status,
                by: w.by.map(|b| Blame {
                    ts_ns: ns(b.ts),
                    code: b.code,
                    cause: b.cause.as_deref().and_then(Cause::from_name),
                    sender: b.sender.map(|s| (s.pid, s.comm)),
                }),
            })
        }
        "signal" => {
            let w: WireSignal = serde_json::from_str(line).map_err(err)?;
            let result = match w.result {
                None => None,
                Some(RawResult::Num(n)) => Some(Outcome::from_raw(n)),
                Some(RawResult::Name(n)) => Some(
                    Outcome::from_name(&n)
                        .ok_or_else(|| DecodeError(format!("unknown result '{n}'")))?,
                ),
            };
            let running = match (w.context, w.sender, w.running) {
                (Context::Task, Some(s), _) => s,
                (_, _, Some(r)) => r,
                (_, Some(s), None) => s,
                (_, None, None) => return Err(DecodeError("signal record with no task".into())),
            };
            Record::Signal(SignalEvent {
                ts_ns: (w.ts * 1e9).round() as u64,
                cpu: w.cpu,
                sig: w.sig,
                code: w.code,
                errno: w.errno,
                group: w.group,
                result,
                context: w.context,
                running,
                target: w.target,
                cause: w.cause.as_deref().and_then(Cause::from_name),
                oom: w.oom,
            })
        }
        other => Record::Other(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Ancestor, EndReason};

    #[test]
    fn round_trips_what_the_agent_writes() {
        let e = SignalEvent {
            ts_ns: 77_000_001_000,
            cpu: 0,
            sig: 37,
            code: -1,
            errno: 0,
            group: None,
            result: Some(Outcome::Other(5)),
            context: Context::Softirq,
            running: Task {
                pid: None,
                tid: 12,
                comm: "a b-c".into(),
                uid: None,
                cmdline: None,
                nspid: Some(vec![12, 1]),
                lineage: Some(vec![Ancestor {
                    pid: 12,
                    comm: "a b-c".into(),
                    exe: None,
                    cmdline: Some("/bin/x \"y\"".into()),
                }]),
                cgroup_id: None,
            },
            target: Task {
                pid: Some(3),
                tid: 4,
                comm: "t".into(),
                ..Default::default()
            },
            cause: None,
            oom: None,
        };
        let mut s = String::new();
        e.encode(&mut s);
        assert_eq!(parse_line(&s).unwrap(), Record::Signal(e));
        let mut s = String::new();
        End {
            reason: EndReason::StdinClosed,
            signals: 3,
            lost: 0,
        }
        .encode(&mut s);
        assert!(matches!(
            parse_line(&s).unwrap(),
            Record::End(End {
                reason: EndReason::StdinClosed,
                ..
            })
        ));
        let x = ExitRec {
            ts_ns: 9_000_000_000,
            pid: 140,
            comm: "sleep".into(),
            killed: true,
            sig: Some(9),
            status: None,
            by: Some(Blame {
                ts_ns: 8_999_000_000,
                code: 0x80,
                cause: Some(Cause::Oom),
                sender: None,
            }),
        };
        let mut s = String::new();
        x.encode(&mut s);
        assert_eq!(parse_line(&s).unwrap(), Record::Exit(x));
        assert_eq!(
            parse_line(r#"{"type":"future","x":1}"#).unwrap(),
            Record::Other("future".into())
        );
        assert!(parse_line("not json").is_err());
    }

    /// The eBPF agent run alone writes the events the kernel did not run
    /// its program for with `cpu` null; they read back as such.
    #[test]
    fn a_lost_record_with_no_cpu_reads_back() {
        for l in [
            Lost {
                cpu: 3,
                count: None,
            },
            Lost {
                cpu: Lost::NOT_RUN,
                count: Some(7),
            },
        ] {
            let mut s = String::new();
            l.encode(&mut s);
            assert_eq!(parse_line(&s).unwrap(), Record::Lost(l));
        }
    }
}
