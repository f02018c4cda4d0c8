//! The agent's command line, parsed by hand: clap would cost more than
//! the whole agent's size budget (issue #3).

use crate::error::{AgentError, Result};
use std::time::Duration;
use whosent_proto::query::Query;

pub const HELP: &str = "\
USAGE: whosent-agent [QUERY] [CAPTURE]; whosent-deploy runs it (docs/agent.md)
QUERY: -s/--sig SIG, --pid PID, --comm NAME, --sender-pid PID, --sender-comm NAME,
  --pid-ns PID, --cause CAUSE
CAPTURE: --count N, --duration SECS, --buffer-kb KB, --tracefs DIR, --no-lineage,
  --alive-timeout SECS, --stream, --spool-kb KB, --out DIR, --max-size BYTES, --clean
JSON Lines on stdout. Exit 0: a signal reported, 1: none, 2: error.
";

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub query: Query,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Write the capture stream instead of records.
    pub stream: bool,
    pub spool_kb: u32,
    /// Report each sender's lineage (on unless `--no-lineage`).
    pub lineage: bool,
    pub buffer_kb: u32,
    pub tracefs: Option<String>,
    /// Stop when stdin has been silent this long (the host is gone).
    pub alive_timeout: Option<Duration>,
    /// `--out DIR`: the stream goes into segment files there, detached
    /// (docs/detached.md).
    pub out: Option<String>,
    /// `--max-size`: the most the segments may hold together.
    pub max_size: u64,
    /// `--clean`: only remove what dead agents left.
    pub clean: bool,
}

// Parsed once, then moved: a Box would be code in the agent for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    Run(Options),
    Help,
    Version,
}

fn number<T: std::str::FromStr>(flag: &str, v: &str, what: &str) -> Result<T> {
    v.parse()
        .map_err(|_| AgentError::usage(format!("{flag} '{v}' is not {what}")))
}

/// Seconds with an optional fraction (`10`, `1.5`, `.25`), to the
/// nanosecond. Parsed by hand because `f64::from_str` and its tables
/// cost about 14 KB of the agent's size budget (docs/agent-size.md);
/// whosent-deploy never sends an exponent.
fn seconds(v: &str) -> Option<Duration> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    let secs = if int.is_empty() { 0 } else { int.parse().ok()? };
    let (mut nanos, mut scale) = (0, 100_000_000);
    for b in frac.bytes().take(9) {
        nanos += u32::from(b - b'0') * scale;
        scale /= 10;
    }
    Some(Duration::new(secs, nanos))
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed> {
    let mut o = Options {
        buffer_kb: 2048,
        spool_kb: 2048,
        lineage: true,
        max_size: 8 << 20,
        ..Default::default()
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            // Human lines are whosent-deploy's: rendering them here did
            // not fit the size budget with #12's causes (docs/agent-size.md).
            "--human" => {
                return Err(AgentError::usage(
                    "--human is whosent-deploy's: run it through `whosent-deploy --host`, or read the JSON",
                ))
            }
            "--stream" => {
                o.stream = true;
                continue;
            }
            "--no-lineage" => {
                o.lineage = false;
                continue;
            }
            "--clean" => {
                o.clean = true;
                continue;
            }
            _ => {}
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| AgentError::usage(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            // One arm for both: each parse of a number is code in the
            // agent (docs/agent-size.md). --max-size: at least four
            // segments of a few pages.
            "--count" | "--max-size" => {
                let n: u64 = number(&flag, &value()?, "a number")?;
                let count = flag == "--count";
                if n < if count { 1 } else { 65536 } {
                    return Err(AgentError::usage(if count {
                        "--count must be at least 1"
                    } else {
                        "--max-size must be at least 65536"
                    }));
                }
                if count {
                    o.count = Some(n);
                } else {
                    o.max_size = n;
                }
            }
            "--duration" | "--alive-timeout" => {
                let v = value()?;
                match seconds(&v) {
                    Some(d) if !d.is_zero() && flag == "--duration" => o.duration = Some(d),
                    Some(d) if !d.is_zero() => o.alive_timeout = Some(d),
                    None if v.strip_prefix('-').and_then(seconds).is_none() => {
                        return Err(AgentError::usage(format!(
                            "{flag} '{v}' is not a number of seconds"
                        )));
                    }
                    // Zero or negative.
                    _ => {
                        return Err(AgentError::usage(format!(
                            "{flag} must be a positive number of seconds"
                        )))
                    }
                }
            }
            "--buffer-kb" => o.buffer_kb = number(&flag, &value()?, "a size in KiB")?,
            "--spool-kb" => match number(&flag, &value()?, "a size in KiB")? {
                0 => return Err(AgentError::usage("--spool-kb must be at least 1")),
                kb => o.spool_kb = kb,
            },
            "--tracefs" => o.tracefs = Some(value()?),
            "--out" => o.out = Some(value()?),
            f if Query::is_flag(f) => {
                let v = value()?;
                if let Err(e) = o.query.parse_flag(f, &v) {
                    return Err(AgentError::usage(e.0));
                }
            }
            f if f.starts_with('-') => {
                return Err(AgentError::usage(format!("unknown option '{f}'")));
            }
            other => return Err(AgentError::usage(format!("unexpected argument '{other}'"))),
        }
    }
    if o.out.is_some() && !o.stream {
        return Err(AgentError::usage("--out needs --stream"));
    }
    if o.tracefs.is_none() {
        o.tracefs = std::env::var("WHOSENT_TRACEFS")
            .ok()
            .filter(|s| !s.is_empty());
    }
    Ok(Parsed::Run(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(a: &[&str]) -> Result<Options> {
        match parse(a.iter().map(|s| s.to_string()))? {
            Parsed::Run(o) => Ok(o),
            _ => panic!("not a run"),
        }
    }

    #[test]
    fn parses_query_and_capture_flags() {
        let o = run(&[
            "-s",
            "KILL",
            "--sig=TERM",
            "--pid",
            "12",
            "--count",
            "3",
            "--duration",
            "1.5",
            "--cause",
            "oom",
            "--pid-ns=1",
            "--alive-timeout",
            "30",
        ])
        .unwrap();
        assert_eq!(o.alive_timeout, Some(Duration::from_secs(30)));
        assert_eq!(run(&[]).unwrap().alive_timeout, None, "off unless asked");
        assert_eq!(o.query.pid_ns, Some(1));
        assert!(o.lineage);
        assert!(!run(&["--no-lineage"]).unwrap().lineage);
        assert_eq!(o.query.sigs, vec![9, 15]);
        assert_eq!(o.query.pids, vec![12]);
        assert_eq!(
            (o.count, o.duration, o.query.causes.len()),
            (Some(3), Some(Duration::from_millis(1500)), 1)
        );
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        for (a, want) in [
            (vec!["--sig", "99"], "kill -l"),
            (vec!["--pid", "abc"], "positive number"),
            (vec!["--count", "0"], "at least 1"),
            (vec!["--duration", "-1"], "positive"),
            (vec!["--duration", "0.0"], "positive"),
            (vec!["--duration", "1e3"], "not a number of seconds"),
            (vec!["--duration", "."], "not a number of seconds"),
            (vec!["--duration", "1.2.3"], "not a number of seconds"),
            (
                vec!["--alive-timeout", "0"],
                "--alive-timeout must be a positive",
            ),
            (vec!["--alive-timeout", "x"], "not a number of seconds"),
            (vec!["--bogus", "1"], "unknown option"),
            (vec!["--pid"], "needs a value"),
            (vec!["--human"], "whosent-deploy --host"),
            (vec!["--sig"], "needs a value"),
            (vec!["--out", "/tmp"], "--out needs --stream"),
            (
                vec!["--stream", "--out", "/tmp", "--max-size", "1000"],
                "--max-size must be at least 65536",
            ),
            (vec!["--max-size", "1M"], "'1M' is not a number"),
            (vec!["--count", "x"], "'x' is not a number"),
        ] {
            let e = run(&a).unwrap_err();
            assert_eq!(e.kind, "usage");
            assert!(e.message.contains(want), "{a:?}: {}", e.message);
        }
    }

    #[test]
    fn out_max_size_and_clean() {
        let o = run(&["--stream", "--out=/d", "--max-size", "65536", "--clean"]).unwrap();
        assert_eq!(
            (o.out.as_deref(), o.max_size, o.clean),
            (Some("/d"), 65536, true)
        );
        let o = run(&["--stream"]).unwrap();
        assert_eq!((o.out, o.max_size, o.clean), (None, 8 << 20, false));
    }

    /// Issue #13: `whosent-agent --bogus` said "--bogus needs a value".
    #[test]
    fn an_unknown_flag_alone_is_an_unknown_option() {
        for a in [
            &["--bogus"][..],
            &["--pid", "1", "--bogus"],
            &["--bogus=1"],
            &["-x"],
        ] {
            let e = run(a).unwrap_err();
            assert_eq!(e.kind, "usage");
            assert!(
                e.message.starts_with("unknown option '-"),
                "{a:?}: {}",
                e.message
            );
        }
    }

    #[test]
    fn duration_is_seconds_with_an_optional_fraction() {
        for (v, want) in [
            ("10", Duration::from_secs(10)),
            ("1.5", Duration::from_millis(1500)),
            (".25", Duration::from_millis(250)),
            ("2.", Duration::from_secs(2)),
            ("0.000000001", Duration::from_nanos(1)),
            ("0.0000000019", Duration::from_nanos(1)),
            ("18446744073709551615", Duration::from_secs(u64::MAX)),
        ] {
            assert_eq!(seconds(v), Some(want), "{v}");
        }
        for v in [
            "",
            ".",
            "-1",
            "+1",
            "1e3",
            "inf",
            "1.2.3",
            "18446744073709551616",
        ] {
            assert_eq!(seconds(v), None, "{v}");
        }
    }
}
