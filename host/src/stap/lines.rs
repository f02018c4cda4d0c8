//! A stap session's stream: the module's TAB-separated lines into
//! whosent's typed records for the [`Session`], with the host's share
//! of the query (what the module cannot filter) and the `end` record's
//! reason. Counting and `--count` are the session's.
//!
//! The module's process lines (`proc` snapshot, `fork`, `exec`,
//! `comm`, `exit`) go into whosent-analysis's process table, the one the ftrace
//! path keeps, and each sender gets its lineage from it, walked the
//! same way. The table has no /proc to ask on the host ([`NoFacts`]):
//! what the lines do not carry (exe of a process that did not exec
//! while traced, command lines, pid namespaces) is null.

use super::params::{self, Plan};
use super::parse::{self, Line};
use crate::board::Facts;
use crate::session::Session;
use crate::transport::Flow;
use whosent_analysis::facts::NoFacts;
use whosent_analysis::proctable::ProcTable;
use whosent_proto::decode::Record;
use whosent_proto::escape::{escape, escape_lines};
use whosent_proto::query::Query;
use whosent_proto::record::{EndReason, Ready, SignalEvent};

/// What the module's stream has said so far.
pub struct Lines {
    query: Query,
    plan: Plan,
    release: String,
    arch: String,
    /// The name the module was loaded under, from its `ready` line.
    module: Option<String>,
    /// Why the module said `end`; the `end` record is written once the
    /// stream is over, because stap's loss warnings come after it.
    ended: Option<EndReason>,
    err_buf: Vec<u8>,
    /// Signal lines that came before the ready line.
    early: Vec<SignalEvent>,
    /// From the module's process lines.
    table: ProcTable,
}

impl Lines {
    pub fn new(query: Query, plan: Plan, facts: &Facts) -> Self {
        Lines {
            query,
            plan,
            release: facts.release.clone(),
            arch: facts.arch.clone(),
            module: None,
            ended: None,
            err_buf: Vec::new(),
            early: Vec::new(),
            table: ProcTable::new(),
        }
    }

    /// The name the module was loaded under, once it said `ready`.
    pub fn module(&self) -> Option<&str> {
        self.module.as_deref()
    }

    /// After the stream: writes the `end` record (a session that never
    /// got ready has none) and returns the loaded module's name.
    pub fn finish(&mut self, status: i32, s: &mut Session<'_>) -> Option<String> {
        let m = self.module.clone()?;
        let reason = self.ended.unwrap_or_else(|| {
            say!(
                "whosent-deploy: warning: the module's session ended without its end line (status {status})"
            );
            s.why().unwrap_or(EndReason::Error)
        });
        s.end(reason);
        Some(m)
    }

    pub fn line(&mut self, raw: &[u8], s: &mut Session<'_>) -> Flow {
        let text = String::from_utf8_lossy(raw);
        match parse::parse_line(&text) {
            Ok(Line::Ready(r)) => {
                self.check_params(&r);
                self.module = Some(r.module.clone());
                let ready = Ready::new(
                    "stap",
                    &self.release,
                    &self.arch,
                    &r.module,
                    &self.plan.params.describe(),
                );
                if s.record(&Record::Ready(ready), None) == Flow::Stop {
                    return Flow::Stop;
                }
                for e in std::mem::take(&mut self.early) {
                    if self.signal(e, s) == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                Flow::Continue
            }
            // Each CPU's output reaches stapio on its own, so a signal
            // line can overtake the ready line: hold it until then.
            Ok(Line::Signal(e)) if self.module.is_none() => {
                self.early.push(*e);
                Flow::Continue
            }
            Ok(Line::Signal(e)) => self.signal(*e, s),
            Ok(Line::End(end)) => {
                let max = self.plan.params.max_events;
                self.ended = Some(match s.why() {
                    Some(r) => r,
                    None if max > 0 && end.matched >= max as u64 => EndReason::Count,
                    // Nobody here stopped it: stapio got a signal on the board.
                    None => EndReason::Terminated,
                });
                Flow::Continue
            }
            Ok(Line::Proc(f)) => {
                self.table.learn(f);
                Flow::Continue
            }
            // Applied as they come: a line from another CPU can arrive a
            // little out of order (see docs/stap-notes.md).
            Ok(Line::Task { ts, events }) => {
                for ev in &events {
                    self.table.apply(&mut NoFacts, ts, ev);
                }
                Flow::Continue
            }
            Ok(Line::Other(l)) => {
                if !l.is_empty() {
                    say!("{}", escape(&l));
                }
                Flow::Continue
            }
            Err(e) => {
                say!("whosent-deploy: warning: {}", escape(&e.to_string()));
                Flow::Continue
            }
        }
    }

    /// The host's share of the query; the session counts.
    fn signal(&mut self, mut e: SignalEvent, s: &mut Session<'_>) -> Flow {
        // The module's process lines say who has exited; it does not
        // probe oom:mark_victim, so an OOM kill shows as `kernel`
        // (docs/stap-notes.md).
        let running_exited = self.table.get(e.running.tid).is_some_and(|p| p.exited);
        e.classify(whosent_proto::cause::Hints {
            oom: false,
            running_exited,
        });
        if !self.query.matches(&e) {
            return Flow::Continue;
        }
        e.running.lineage = self.lineage(&e);
        s.signal(e)
    }

    /// The sender's lineage, as the ftrace path walks it; none for a
    /// signal from interrupt context, or a sender the table does not
    /// know (no process lines: a version 1 module, or lines lost).
    fn lineage(&mut self, e: &SignalEvent) -> Option<Vec<whosent_proto::record::Ancestor>> {
        let pid = e.sender()?.pid?;
        self.table.lookup(&mut NoFacts, pid)?;
        Some(self.table.lineage(&mut NoFacts, pid))
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
                    say!(
                        "whosent-deploy: warning: the module reports {k}={got:?}, but {want:?} was passed"
                    );
                }
            }
        }
    }

    /// stderr from the board, passed on line by line; stap's loss
    /// warnings are counted as lost events.
    pub fn stderr(&mut self, chunk: &[u8], s: &mut Session<'_>) {
        self.err_buf.extend_from_slice(chunk);
        while let Some(nl) = self.err_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.err_buf.drain(..=nl).collect();
            s.lost_events(lost_in(&String::from_utf8_lossy(&line)));
            eprint!("{}", escape_lines(&line));
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
    use crate::report::Report;
    use crate::session::Stop;
    use std::sync::atomic::Ordering;

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

    const SHELL: &str = include_str!("../../../tests/fixtures/stap/aarch64-6.1/shell.txt");

    /// `sh $$ $PPID` of the shell that started `sigs`, and `sigs P …
    /// segv G` from sigs.txt: the board's own view.
    fn board_pids() -> (i32, i32, i32, i32) {
        let n = |t: &str, i: usize| -> i32 {
            t.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .nth(i)
                .unwrap()
        };
        (n(SHELL, 0), n(SHELL, 1), n(SIGS, 0), n(SIGS, 3))
    }

    /// The name the recorded module was loaded under.
    fn module() -> &'static str {
        SENDER
            .lines()
            .find(|l| l.contains("\tready\t"))
            .unwrap()
            .split('\t')
            .nth(4)
            .unwrap()
    }

    /// Replays the board recording through a session, as the stream
    /// would; returns the JSON lines written, why the host stopped and
    /// whether it halted the stream.
    fn replay(
        flags: &[(&str, &str)],
        count: Option<u64>,
        stderr: &str,
    ) -> (Vec<String>, Option<EndReason>, bool) {
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
        let stop = Stop::default();
        let mut out = Vec::new();
        {
            let limits = super::super::backend::limits(&plan, count);
            let mut report = Report::new(&mut out as &mut dyn std::io::Write, true, None);
            report.quiet = true;
            let mut sess = Session::new(report, limits, &stop);
            let mut lines = Lines::new(q, plan, &facts);
            for l in SENDER.lines() {
                assert_eq!(lines.line(l.as_bytes(), &mut sess), Flow::Continue);
            }
            lines.stderr(stderr.as_bytes(), &mut sess);
            assert_eq!(lines.finish(0, &mut sess).as_deref(), Some(module()));
        }
        let lines = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        (lines, stop.why(), stop.halt.load(Ordering::SeqCst))
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
        assert_eq!((why, halt), (None, false));
    }

    /// The process lines give each sender its lineage through the
    /// process table, as on the ftrace path: `sigs` was started by the
    /// recording's shell, the faulting child was forked by `sigs`.
    #[test]
    fn a_recorded_session_gives_each_sender_its_lineage() {
        let (sh, sh_parent, sigs, segv) = board_pids();
        let (out, ..) = replay(&[], None, "");
        let signals: Vec<serde_json::Value> = out
            .iter()
            .filter(|l| l.contains(r#""type":"signal""#))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(signals.len(), 9);
        let chain = |e: &serde_json::Value| -> Vec<(i64, String)> {
            e["sender"]["lineage"]
                .as_array()
                .unwrap_or_else(|| panic!("no lineage: {e}"))
                .iter()
                .map(|a| {
                    (
                        a["pid"].as_i64().unwrap(),
                        a["comm"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        for e in &signals {
            let c = chain(e);
            let from_sigs = e["sender"]["pid"] == sigs;
            let at = if from_sigs {
                0
            } else {
                assert_eq!(e["sender"]["pid"], segv, "{e}");
                assert_eq!(c[0], (segv as i64, "sigs".into()), "{e}");
                1
            };
            assert_eq!(c[at], (sigs as i64, "sigs".into()), "{e}");
            assert_eq!(c[at + 1], (sh as i64, "sh".into()), "{e}");
            assert_eq!(c[at + 2].0, sh_parent as i64, "{e}");
            assert!(c.iter().any(|(_, n)| n == "dropbear"), "{e}");
            assert_eq!(c.last().unwrap(), &(1, "init".into()), "{e}");
            // sigs exec'd while traced: its exe is the exec's filename;
            // nothing here knows a command line.
            let l = &e["sender"]["lineage"][at];
            assert_eq!(l["exe"], "./sigs", "{e}");
            assert!(l["cmdline"].is_null(), "{e}");
            // Not vouched for: a uid inherited at a traced fork.
            assert_eq!(e["sender"]["uid"], 0, "the sig line's own uid: {e}");
        }
    }

    /// The human line is the ftrace path's: `SIGKILL: sigs(P) <- sh(S)
    /// <- … <- init(1) -> sig\tvictim(V)`.
    #[test]
    fn the_human_line_shows_the_lineage() {
        let (sh, _, sigs, _) = board_pids();
        let mut q = Query::default();
        q.parse_flag("--sig", "KILL").unwrap();
        let plan = params::plan(&q, None).unwrap();
        let stop = Stop::default();
        let mut out = Vec::new();
        {
            let mut report = Report::new(&mut out as &mut dyn std::io::Write, false, None);
            report.quiet = true;
            let mut sess = Session::new(report, Default::default(), &stop);
            let mut lines = Lines::new(q, plan, &Facts::default());
            for l in SENDER.lines() {
                lines.line(l.as_bytes(), &mut sess);
            }
            lines.finish(0, &mut sess);
        }
        let out = String::from_utf8(out).unwrap();
        let line = out.lines().find(|l| l.starts_with("SIGKILL: ")).unwrap();
        assert!(
            line.starts_with(&format!("SIGKILL: sigs({sigs}) <- sh({sh}) <- ")),
            "{out}"
        );
        assert!(line.contains(" <- init(1) -> sig\\tvictim("), "{line}");
    }

    /// `whosent 2 KIND fields…`, for the synthetic sessions below.
    fn v2(kind: &str, fields: &[&str]) -> String {
        format!("whosent\t2\t{kind}\t{}", fields.join("\t"))
    }

    fn sig_line(ctx: &str, sender: &str, comm: &str) -> String {
        v2(
            "sig",
            &[
                "30", "0", ctx, sender, sender, "1", "0", comm, "50", "50", "sleep", "15", "0",
                "0", "1", "0",
            ],
        )
    }

    /// Runs `lines` through a session; the signal records' JSON.
    fn session(lines: &[String]) -> Vec<serde_json::Value> {
        let q = Query::default();
        let plan = params::plan(&q, None).unwrap();
        let stop = Stop::default();
        let mut out = Vec::new();
        {
            let mut report = Report::new(&mut out as &mut dyn std::io::Write, true, None);
            report.quiet = true;
            let mut sess = Session::new(report, Default::default(), &stop);
            let mut l = Lines::new(q, plan, &Facts::default());
            for line in lines {
                assert_eq!(l.line(line.as_bytes(), &mut sess), Flow::Continue);
            }
            l.finish(0, &mut sess);
        }
        String::from_utf8(out)
            .unwrap()
            .lines()
            .filter(|l| l.contains(r#""type":"signal""#))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The snapshot, then a session child forked and exec'd while
    /// traced: the table the ftrace path uses gives the lineage; what
    /// the lines do not carry is null.
    #[test]
    fn process_lines_give_the_sender_its_lineage() {
        let ready = v2("ready", &["10", "whosent_1"]);
        let lines = [
            v2("proc", &["5", "1", "1", "0", "0", "init"]),
            v2("proc", &["5", "100", "100", "1", "0", "dropbear"]),
            // A thread of dropbear's, which is not a process.
            v2("proc", &["5", "7", "7", "2", "0", "kthreadd"]),
            ready,
            v2("fork", &["20", "100", "100", "200", "200", "dropbear"]),
            // As on busybox: the exec names it "exe", busybox renames it.
            v2("exec", &["21", "200", "200", "exe", "/proc/self/exe"]),
            v2("comm", &["22", "200", "sh"]),
            sig_line("task", "200", "sh"),
            // Born before the snapshot and not in it: unknown.
            sig_line("task", "300", "ghost"),
            // Not a sender: interrupt context.
            sig_line("hardirq", "200", "sh"),
            v2("exit", &["40", "200", "200", "sh"]),
            // An exited sender keeps its lineage.
            sig_line("task", "200", "sh"),
        ];
        let ev = session(&lines);
        assert_eq!(ev.len(), 4);
        let want = serde_json::json!([
            {"pid": 200, "comm": "sh", "exe": "/proc/self/exe", "cmdline": null},
            {"pid": 100, "comm": "dropbear", "exe": null, "cmdline": null},
            {"pid": 1, "comm": "init", "exe": null, "cmdline": null},
        ]);
        assert_eq!(ev[0]["sender"]["lineage"], want, "{}", ev[0]);
        assert!(ev[1]["sender"]["lineage"].is_null(), "{}", ev[1]);
        assert!(ev[2]["sender"].is_null(), "{}", ev[2]);
        assert!(ev[2]["running"]["lineage"].is_null(), "{}", ev[2]);
        assert_eq!(ev[3]["sender"]["lineage"], want, "{}", ev[3]);
        // The sig line's own uid, not the table's.
        assert_eq!(ev[0]["sender"]["uid"], 0);
    }

    /// A version 1 module has no process lines: no lineage, not a
    /// wrong one.
    #[test]
    fn a_version_1_session_has_no_lineage() {
        let one = |l: String| l.replacen("whosent\t2\t", "whosent\t1\t", 1);
        let ev = session(&[
            one(v2("ready", &["10", "whosent_1"])),
            one(sig_line("task", "200", "sh")),
        ]);
        assert_eq!(ev.len(), 1);
        assert!(ev[0]["sender"]["lineage"].is_null(), "{}", ev[0]);
        assert_eq!(ev[0]["sender"]["pid"], 200);
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
        assert_eq!((why, halt), (Some(EndReason::Count), false));
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
        assert_eq!((why, halt), (Some(EndReason::Count), true));
    }

    #[test]
    fn a_signal_line_before_the_ready_line_waits_for_it() {
        // The first sig line moved before the ready line.
        let mut lines: Vec<&str> = SENDER.lines().collect();
        let ready = lines.iter().position(|l| l.contains("\tready\t")).unwrap();
        let sig = lines.iter().position(|l| l.contains("\tsig\t")).unwrap();
        let l = lines.remove(sig);
        lines.insert(ready, l);
        let q = Query::default();
        let plan = params::plan(&q, None).unwrap();
        let stop = Stop::default();
        let mut out = Vec::new();
        {
            let report = Report::new(&mut out as &mut dyn std::io::Write, true, None);
            let mut sess = Session::new(report, Default::default(), &stop);
            let mut l = Lines::new(q, plan, &Facts::default());
            for line in lines {
                l.line(line.as_bytes(), &mut sess);
            }
            l.finish(0, &mut sess);
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
