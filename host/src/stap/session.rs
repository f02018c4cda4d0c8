//! One session's stream: the module's lines into whosent's records, with
//! the host's share of the query (what the module cannot filter, the
//! count) and the `end` record's reason.

use super::params::{self, Plan};
use super::parse::{self, Line};
use crate::board::Facts;
use crate::report::Report;
use crate::ssh;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use whosent_proto::query::Query;
use whosent_proto::record::{End, EndReason, Ready, SignalEvent};

/// Why the host stopped the session.
pub const WHY_NONE: u8 = 0;
pub const WHY_COUNT: u8 = 1;
pub const WHY_DURATION: u8 = 2;
pub const WHY_INTERRUPTED: u8 = 3;

/// What the stream has seen so far, and the records it makes of it.
pub struct Session<'a, W: Write> {
    report: Report<W>,
    query: &'a Query,
    plan: &'a Plan,
    count: Option<u64>,
    facts: &'a Facts,
    /// The name the module was loaded under, from its `ready` line.
    module: Option<String>,
    signals: u64,
    lost: u64,
    /// Why the module said `end`; the `end` record is written once the
    /// stream is over, because stap's loss warnings come after it.
    ended: Option<EndReason>,
    why: &'a AtomicU8,
    halt: &'a AtomicBool,
    err_buf: Vec<u8>,
    out_gone: bool,
    /// Signal lines that came before the ready line.
    early: Vec<SignalEvent>,
}

impl<'a, W: Write> Session<'a, W> {
    /// `why` and `halt` are shared with whoever else may stop the
    /// stream (Ctrl-C, `--duration`); `halt` is the stream's stop flag.
    pub fn new(
        report: Report<W>,
        query: &'a Query,
        plan: &'a Plan,
        count: Option<u64>,
        facts: &'a Facts,
        why: &'a AtomicU8,
        halt: &'a AtomicBool,
    ) -> Self {
        Session {
            report,
            query,
            plan,
            count,
            facts,
            module: None,
            signals: 0,
            lost: 0,
            ended: None,
            why,
            halt,
            err_buf: Vec::new(),
            out_gone: false,
            early: Vec::new(),
        }
    }

    /// The name the module was loaded under, once it said `ready`.
    pub fn module(&self) -> Option<&str> {
        self.module.as_deref()
    }

    /// After the stream: writes the `end` record (a session that never
    /// got ready has none) and returns the loaded module's name.
    pub fn finish(&mut self, status: i32) -> Option<String> {
        let m = self.module.clone()?;
        let reason = self.ended.unwrap_or_else(|| {
            eprintln!(
                "whosent-deploy: warning: the module's session ended without its end line (status {status})"
            );
            self.reason().unwrap_or(EndReason::Error)
        });
        if !self.out_gone {
            self.end(reason);
        }
        Some(m)
    }

    /// The exit status, as for the agent (see [`Report::status`]).
    pub fn status(&self, stapio: i32) -> i32 {
        self.report.status(stapio)
    }

    fn emit(&mut self, json: &str) -> ssh::Flow {
        if self.report.line(json.trim_end().as_bytes()).is_err() {
            self.out_gone = true;
            return ssh::Flow::Stop;
        }
        ssh::Flow::Continue
    }

    fn reason(&self) -> Option<EndReason> {
        match self.why.load(Ordering::SeqCst) {
            WHY_COUNT => Some(EndReason::Count),
            WHY_DURATION => Some(EndReason::Duration),
            WHY_INTERRUPTED => Some(EndReason::Interrupted),
            _ => None,
        }
    }

    pub fn line(&mut self, raw: &[u8]) -> ssh::Flow {
        let text = String::from_utf8_lossy(raw);
        let mut json = String::new();
        match parse::parse_line(&text) {
            Ok(Line::Ready(r)) => {
                self.check_params(&r);
                self.module = Some(r.module.clone());
                Ready::new(
                    "stap",
                    &self.facts.release,
                    &self.facts.arch,
                    &r.module,
                    &self.plan.params.describe(),
                )
                .encode(&mut json);
                if self.emit(&json) == ssh::Flow::Stop {
                    return ssh::Flow::Stop;
                }
                for e in std::mem::take(&mut self.early) {
                    if self.signal(&e) == ssh::Flow::Stop {
                        return ssh::Flow::Stop;
                    }
                }
                ssh::Flow::Continue
            }
            // Each CPU's output reaches stapio on its own, so a signal
            // line can overtake the ready line: hold it until then.
            Ok(Line::Signal(e)) if self.module.is_none() => {
                self.early.push(*e);
                ssh::Flow::Continue
            }
            Ok(Line::Signal(e)) => self.signal(&e),
            Ok(Line::End(end)) => {
                let max = self.plan.params.max_events;
                self.ended = Some(match self.reason() {
                    Some(r) => r,
                    None if max > 0 && end.matched >= max as u64 => EndReason::Count,
                    // Nobody here stopped it: stapio got a signal on the board.
                    None => EndReason::Terminated,
                });
                ssh::Flow::Continue
            }
            Ok(Line::Other(l)) => {
                if !l.is_empty() {
                    eprintln!("{l}");
                }
                ssh::Flow::Continue
            }
            Err(e) => {
                eprintln!("whosent-deploy: warning: {e}");
                ssh::Flow::Continue
            }
        }
    }

    fn end(&mut self, reason: EndReason) -> ssh::Flow {
        let mut json = String::new();
        End {
            reason,
            signals: self.signals,
            lost: self.lost,
        }
        .encode(&mut json);
        self.emit(&json)
    }

    fn signal(&mut self, e: &SignalEvent) -> ssh::Flow {
        if !self.query.matches(e) || self.count.is_some_and(|c| self.signals >= c) {
            return ssh::Flow::Continue;
        }
        self.signals += 1;
        if self.count.is_some_and(|c| self.signals >= c) {
            let _ =
                self.why
                    .compare_exchange(WHY_NONE, WHY_COUNT, Ordering::SeqCst, Ordering::SeqCst);
            // With max_events the module stops by itself; a stop from
            // here would only race it.
            if self.plan.params.max_events == 0 {
                self.halt.store(true, Ordering::SeqCst);
            }
        }
        let mut json = String::new();
        e.encode(&mut json);
        self.emit(&json)
    }

    /// The `ready` line echoes the parameters as the module saw them.
    fn check_params(&self, r: &parse::Ready) {
        for (k, v) in self.plan.params.pairs() {
            let want = match v {
                params::ParamValue::Int(n) => n.to_string(),
                params::ParamValue::Str(s) => s.to_string(),
            };
            if let Some(got) = r.param(k) {
                if got != want {
                    eprintln!(
                        "whosent-deploy: warning: the module reports {k}={got:?}, but {want:?} was passed"
                    );
                }
            }
        }
    }

    /// stderr from the board, passed on line by line; stap's loss
    /// warnings are counted as lost events.
    pub fn stderr(&mut self, chunk: &[u8]) {
        self.err_buf.extend_from_slice(chunk);
        while let Some(nl) = self.err_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.err_buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            self.lost += lost_in(&line);
            eprint!("{line}");
        }
    }
}

/// Events a stap warning says were lost: "skipped probes: N" (probes
/// that could not run, runtime/translate) and "There were N transport
/// failures" (runtime/transport/transport.c).
pub fn lost_in(line: &str) -> u64 {
    let after = |pat: &str| -> Option<u64> {
        let rest = &line[line.find(pat)? + pat.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    after("skipped probes: ")
        .or_else(|| after("There were "))
        .filter(|_| line.contains("skipped probes") || line.contains("transport failures"))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_warnings() {
        assert_eq!(
            lost_in("WARNING: Number of errors: 0, skipped probes: 12\n"),
            12
        );
        assert_eq!(
            lost_in("WARNING: There were 3 transport failures. Try stap -s to increase the buffer size from 1.\n"),
            3
        );
        assert_eq!(lost_in("There were 3 cats\n"), 0);
        assert_eq!(lost_in("hello"), 0);
    }

    const SENDER: &str = include_str!("../../../tests/fixtures/stap/aarch64-6.1/sender.txt");
    const SIGS: &str = include_str!("../../../tests/fixtures/stap/aarch64-6.1/sigs.txt");

    /// The name the recorded module was loaded under.
    fn module() -> &'static str {
        SENDER.lines().next().unwrap().split('\t').nth(4).unwrap()
    }

    /// Replays the board recording through a session, as the stream
    /// would; returns the JSON lines written and the session's flags.
    fn replay(flags: &[(&str, &str)], count: Option<u64>, stderr: &str) -> (Vec<String>, u8, bool) {
        let mut q = Query::default();
        for (f, v) in flags {
            q.parse_flag(f, v).unwrap();
        }
        let plan = params::plan(&q, count).unwrap();
        let facts = Facts {
            release: "6.1.0-56-arm64".into(),
            arch: "aarch64".into(),
            ..Facts::default()
        };
        let (why, halt) = (AtomicU8::new(WHY_NONE), AtomicBool::new(false));
        let mut out = Vec::new();
        {
            let mut report = Report::new(&mut out, true, None);
            report.quiet = true;
            let mut sess = Session::new(report, &q, &plan, count, &facts, &why, &halt);
            for l in SENDER.lines() {
                assert_eq!(sess.line(l.as_bytes()), ssh::Flow::Continue);
            }
            sess.stderr(stderr.as_bytes());
            assert_eq!(sess.finish(0).as_deref(), Some(module()));
        }
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        (
            lines,
            why.load(Ordering::SeqCst),
            halt.load(Ordering::SeqCst),
        )
    }

    #[test]
    fn a_recorded_session_becomes_the_agents_records() {
        let (out, why, halt) = replay(
            &[("--sig", "KILL")],
            None,
            "WARNING: Number of errors: 0, skipped probes: 2\n",
        );
        assert_eq!(out.len(), 3, "{out:#?}");
        assert!(
            out[0].starts_with(r#"{"type":"ready","v":1,"agent":""#),
            "{}",
            out[0]
        );
        let tail = format!(
            r#","backend":"stap","kernel":"6.1.0-56-arm64","arch":"aarch64","instance":"{}","filter":"target_sig=9"}}"#,
            module()
        );
        assert!(out[0].ends_with(&tail), "{}", out[0]);
        assert!(
            out[1].contains(r#""sig":9,"signame":"SIGKILL""#),
            "{}",
            out[1]
        );
        // Nobody here stopped it, and stap's loss warning is counted.
        assert_eq!(
            out[2],
            r#"{"type":"end","reason":"terminated","signals":1,"lost":2}"#
        );
        assert_eq!((why, halt), (WHY_NONE, false));
    }

    #[test]
    fn the_count_is_the_modules_when_it_can_be_and_the_hosts_otherwise() {
        // One pid: the module counts (max_events), the host does not stop it.
        let (out, why, halt) = replay(&[("--sig", "USR1")], Some(1), "");
        assert_eq!(
            out.iter()
                .filter(|l| l.contains(r#""type":"signal""#))
                .count(),
            1
        );
        assert!(out[0].contains(r#""filter":"target_sig=10""#), "{}", out[0]);
        assert!(out
            .last()
            .unwrap()
            .contains(r#""reason":"count","signals":1"#));
        assert_eq!((why, halt), (WHY_COUNT, false));
        // Two signals: a mask in the module; two pids: only the host can
        // tell, so it counts and stops the stream.
        let (out, why, halt) = replay(
            &[
                ("--sig", "USR1"),
                ("--sig", "KILL"),
                ("--sender-pid", "1"),
                // `sigs P …` in sigs.txt: the sender of the USR1s.
                ("--sender-pid", SIGS.split_whitespace().nth(1).unwrap()),
            ],
            Some(2),
            "",
        );
        assert!(
            out[0].contains(r#""filter":"target_sigmask=768""#),
            "{}",
            out[0]
        );
        assert_eq!(
            out.iter()
                .filter(|l| l.contains(r#""type":"signal""#))
                .count(),
            2
        );
        assert_eq!((why, halt), (WHY_COUNT, true));
    }

    #[test]
    fn a_signal_line_before_the_ready_line_waits_for_it() {
        let mut lines: Vec<&str> = SENDER.lines().collect();
        lines.swap(0, 1);
        let q = Query::default();
        let plan = params::plan(&q, None).unwrap();
        let facts = Facts::default();
        let (why, halt) = (AtomicU8::new(WHY_NONE), AtomicBool::new(false));
        let mut out = Vec::new();
        {
            let mut sess = Session::new(
                Report::new(&mut out, true, None),
                &q,
                &plan,
                None,
                &facts,
                &why,
                &halt,
            );
            for l in lines {
                sess.line(l.as_bytes());
            }
            sess.finish(0);
        }
        let out = String::from_utf8(out).unwrap();
        let types: Vec<&str> = out
            .lines()
            .map(|l| &l[9..l[9..].find('"').unwrap() + 9])
            .collect();
        assert_eq!(types[..3], ["ready", "signal", "signal"], "{out}");
        assert_eq!(types.len(), 11);
    }
}
