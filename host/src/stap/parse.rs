//! The module's output (format version 2 of `scripts/stap/whosent.stp`,
//! documented in docs/stap-notes.md) into whosent's records.
//!
//! Each line is TAB-separated and starts with `whosent`, `2` and a kind:
//! - `proc TS TID PID PPID UID COMM`: the snapshot, one per process;
//! - `ready TS MODULE key=value…`: the probes are armed;
//! - `fork TS P_TID P_PID TID PID COMM`, `exec TS TID OLD_TID COMM
//!   FILENAME`, `exit TS TID PID COMM`, `comm TS TID COMM` (a rename):
//!   the process table's events;
//! - `sig TS CPU CTX S_TID S_PID S_PPID S_UID S_COMM T_TID T_PID T_COMM
//!   SIG ERRNO CODE GROUP RESULT`: one generated signal;
//! - `end TS matched=N seen=N`: the module is being unloaded.
//!
//! Comms are escaped by the script's `text_str()` (C escapes, `\ooo`,
//! `\uXXXX`), so no field holds a TAB. Other lines are not the module's
//! and are handed back as [`Line::Other`]. Parsing does no I/O beyond
//! the `BufRead` it is given.

use std::fmt;
use std::io::BufRead;
use whosent_ftrace::task_events::TaskEvent;
use whosent_proto::record::{Context, Outcome, SignalEvent, Task};
use whosent_stream::frame::ProcFacts;

/// The output format version the script writes.
pub const VERSION: &str = "2";

/// The versions this parser reads: version 1 is version 2 without the
/// process lines (`proc`, `fork`, `exec`, `comm`, `exit`), so its senders have
/// no lineage.
pub const READS: [&str; 2] = ["1", "2"];

#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Ready(Ready),
    Signal(Box<SignalEvent>),
    End(EndLine),
    /// `proc`: a process alive when the module became ready.
    Proc(ProcFacts),
    /// `fork`, `exec` (an exec and its new comm) and `exit`: what the
    /// process table applies, at trace time `ts`.
    Task {
        ts: u64,
        events: Vec<TaskEvent>,
    },
    /// Not a line of the module (or a kind this version does not know).
    Other(String),
}

/// `ready`: the module is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub ts_ns: u64,
    /// The name it was loaded under (`staprun -R` makes it unique).
    pub module: String,
    /// The parameters as the module saw them, strings unescaped.
    pub params: Vec<(String, String)>,
}

impl Ready {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `end`: what the module counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndLine {
    pub ts_ns: u64,
    /// Signals that passed the module's filter.
    pub matched: u64,
    /// Every signal_generate event while the module was loaded.
    pub seen: u64,
}

/// A line that says it is the module's but cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: String,
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in stap output line '{}'", self.what, self.line)
    }
}

impl std::error::Error for ParseError {}

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Result<Line, ParseError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let f: Vec<&str> = line.split('\t').collect();
    if f[0] != "whosent" || f.len() < 3 {
        return Ok(Line::Other(line.to_string()));
    }
    let err = |what: String| ParseError {
        line: line.to_string(),
        what,
    };
    if !READS.contains(&f[1]) {
        return Err(err(format!(
            "output format version {} (this whosent-deploy reads {})",
            f[1],
            READS.join(" and ")
        )));
    }
    let num = |i: usize, name: &str| -> Result<i64, ParseError> {
        let v = f
            .get(i)
            .ok_or_else(|| err(format!("no field {i} ({name})")))?;
        v.parse::<i64>()
            .map_err(|_| err(format!("field {i} ({name}) '{v}' is not a number")))
    };
    let int = |i: usize, name: &str| -> Result<i32, ParseError> {
        let v = num(i, name)?;
        i32::try_from(v).map_err(|_| err(format!("field {i} ({name}) {v} is out of range")))
    };
    let ts = |i: usize| -> Result<u64, ParseError> {
        let v = num(i, "ts_ns")?;
        u64::try_from(v).map_err(|_| err(format!("negative timestamp {v}")))
    };
    let comm = |i: usize| -> Result<String, ParseError> {
        f.get(i)
            .map(|c| unescape(c))
            .ok_or_else(|| err(format!("no field {i} (comm)")))
    };
    match f[2] {
        "ready" => {
            let module = f
                .get(4)
                .filter(|m| !m.is_empty())
                .ok_or_else(|| err("no module name".into()))?;
            let params = f[5..]
                .iter()
                .map(|kv| {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| err(format!("'{kv}' is not key=value")))?;
                    Ok((k.to_string(), unescape(v)))
                })
                .collect::<Result<_, ParseError>>()?;
            Ok(Line::Ready(Ready {
                ts_ns: ts(3)?,
                module: module.to_string(),
                params,
            }))
        }
        "sig" => {
            let context = match f.get(5).copied() {
                Some("task") => Context::Task,
                Some("softirq") => Context::Softirq,
                Some("hardirq") => Context::Hardirq,
                Some("nmi") => Context::Nmi,
                other => return Err(err(format!("unknown context {other:?}"))),
            };
            let cpu = num(4, "cpu")?;
            let result = num(18, "result")?;
            Ok(Line::Signal(Box::new(SignalEvent {
                ts_ns: ts(3)?,
                cpu: u32::try_from(cpu).map_err(|_| err(format!("cpu {cpu}")))?,
                sig: int(14, "sig")?,
                errno: int(15, "errno")?,
                code: int(16, "code")?,
                group: Some(num(17, "group")? != 0),
                // -1: the probe was not the tracepoint, which has no result.
                result: (result >= 0).then(|| Outcome::from_raw(result as i32)),
                context,
                running: Task {
                    pid: Some(int(7, "sender_pid")?),
                    tid: int(6, "sender_tid")?,
                    comm: comm(10)?,
                    uid: u32::try_from(num(9, "sender_uid")?).ok(),
                    ..Task::default()
                },
                target: Task {
                    pid: Some(int(12, "target_pid")?),
                    tid: int(11, "target_tid")?,
                    comm: comm(13)?,
                    ..Task::default()
                },
                cause: None,
                oom: None,
            })))
        }
        "end" => {
            let count = |key: &str| -> Result<u64, ParseError> {
                let v = f[4..]
                    .iter()
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .ok_or_else(|| err(format!("no {key}=")))?;
                v.parse()
                    .map_err(|_| err(format!("{key}={v} is not a count")))
            };
            Ok(Line::End(EndLine {
                ts_ns: ts(3)?,
                matched: count("matched")?,
                seen: count("seen")?,
            }))
        }
        // Kinds that version 1 did not have are not the module's there.
        _ if f[1] == "1" => Ok(Line::Other(line.to_string())),
        "proc" => Ok(Line::Proc(ProcFacts {
            why: 0,
            ts: ts(3)?,
            tid: int(4, "tid")?,
            tgid: int(5, "pid")?,
            ppid: int(6, "ppid")?,
            uid: u32::try_from(num(7, "uid")?).map_err(|_| err("uid out of range".into()))?,
            comm: comm(8)?,
            exe: None,
            cmdline: None,
            nstgid: Vec::new(),
        })),
        "fork" => Ok(Line::Task {
            ts: ts(3)?,
            events: vec![TaskEvent::NewTask {
                parent_tid: int(4, "parent_tid")?,
                tid: int(6, "tid")?,
                comm: comm(8)?,
                // A thread of the parent's process, not a new process.
                thread: int(7, "pid")? == int(5, "parent_pid")?,
            }],
        }),
        "exec" => {
            let tid = int(4, "tid")?;
            Ok(Line::Task {
                ts: ts(3)?,
                events: vec![
                    TaskEvent::Exec {
                        tid,
                        old_tid: int(5, "old_tid")?,
                        filename: comm(7)?,
                    },
                    // The exec renamed it (begin_new_exec); ftrace has a
                    // task_rename event for that.
                    TaskEvent::Rename {
                        tid,
                        comm: comm(6)?,
                    },
                ],
            })
        }
        "comm" => Ok(Line::Task {
            ts: ts(3)?,
            events: vec![TaskEvent::Rename {
                tid: int(4, "tid")?,
                comm: comm(5)?,
            }],
        }),
        "exit" => Ok(Line::Task {
            ts: ts(3)?,
            events: vec![TaskEvent::Exit {
                tid: int(4, "tid")?,
                comm: comm(6)?,
                group_dead: None,
            }],
        }),
        _ => Ok(Line::Other(line.to_string())),
    }
}

/// Every line of `input`, parsed; a line that is not UTF-8 is read
/// lossily (the module's own lines are ASCII).
pub fn lines<R: BufRead>(input: R) -> impl Iterator<Item = Result<Line, ParseError>> {
    input.split(b'\n').map(|l| match l {
        Ok(bytes) => parse_line(&String::from_utf8_lossy(&bytes)),
        Err(e) => Err(ParseError {
            line: String::new(),
            what: format!("read error: {e}"),
        }),
    })
}

/// Undoes the runtime's `_stp_text_str` escaping: `\"` `\\` `\a` `\b`
/// `\f` `\n` `\r` `\t` `\v`, `\ooo` (a byte) and `\uXXXX`/`\UXXXXXXXX`
/// (a character). Bytes that are not UTF-8 become U+FFFD; an escape it
/// does not know is kept as written.
pub fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        let simple = match c {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            _ => None,
        };
        if let Some(v) = simple {
            out.push(v);
            i += 2;
            continue;
        }
        // `n` digits of `radix` starting at byte `at`, as a number.
        let digits = |at: usize, n: usize, radix: u32| -> Option<u32> {
            s.get(at..at + n)
                .filter(|d| d.chars().all(|c| c.is_digit(radix)))
                .and_then(|d| u32::from_str_radix(d, radix).ok())
        };
        match c {
            b'0'..=b'7' => {
                if let Some(v) = digits(i + 1, 3, 8).and_then(|v| u8::try_from(v).ok()) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
            b'u' | b'U' => {
                let n = if c == b'u' { 4 } else { 8 };
                if let Some(ch) = digits(i + 2, n, 16).and_then(char::from_u32) {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    i += 2 + n;
                    continue;
                }
            }
            _ => {}
        }
        out.push(b'\\');
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(unescape("sig\\tvictim"), "sig\tvictim");
        assert_eq!(unescape("a\\\"b\\\\c"), "a\"b\\c");
        assert_eq!(unescape("\\001x\\177"), "\u{1}x\u{7f}");
        assert_eq!(unescape("s\\u00efg"), "sïg");
        assert_eq!(unescape("\\U0001f600"), "😀");
        // A lone byte that is not UTF-8 (\377) is not text.
        assert_eq!(unescape("a\\377"), "a\u{fffd}");
        // Unknown or cut escapes are kept.
        assert_eq!(unescape("a\\q\\"), "a\\q\\");
        assert_eq!(unescape("\\u12"), "\\u12");
    }

    #[test]
    fn other_lines_and_bad_lines() {
        assert_eq!(
            parse_line("WARNING: x").unwrap(),
            Line::Other("WARNING: x".into())
        );
        assert_eq!(
            parse_line("whosent\t1\tnews\t1").unwrap(),
            Line::Other("whosent\t1\tnews\t1".into())
        );
        assert_eq!(
            parse_line("whosent\t2\tnews\t1").unwrap(),
            Line::Other("whosent\t2\tnews\t1".into())
        );
        let e = parse_line("whosent\t3\tsig\t1").unwrap_err();
        assert!(e.what.contains("version 3"), "{e}");
        assert!(e.what.contains("reads 1 and 2"), "{e}");
        // Version 1 had no process lines: not the module's there.
        let p = "whosent\t1\tproc\t5\t1\t1\t0\t0\tinit";
        assert_eq!(parse_line(p).unwrap(), Line::Other(p.into()));
        let e = parse_line("whosent\t2\tfork\t5\t1\t1").unwrap_err();
        assert!(e.to_string().contains("no field"), "{e}");
        let e = parse_line("whosent\t1\tsig\t1\t0\ttask\t5").unwrap_err();
        assert!(e.to_string().contains("no field"), "{e}");
        let e = parse_line("whosent\t1\tsig\t1\t0\tirq").unwrap_err();
        assert!(e.what.contains("context"), "{e}");
        let e = parse_line("whosent\t1\tend\t5\tmatched=x\tseen=1").unwrap_err();
        assert!(e.what.contains("matched=x"), "{e}");
    }

    #[test]
    fn process_lines() {
        let Line::Proc(f) = parse_line("whosent\t2\tproc\t5\t1\t1\t0\t0\tinit").unwrap() else {
            panic!()
        };
        assert_eq!((f.tid, f.tgid, f.ppid, f.uid), (1, 1, 0, 0));
        assert_eq!((f.comm.as_str(), f.exe.as_deref()), ("init", None));
        let fork = parse_line("whosent\t2\tfork\t7\t10\t10\t12\t12\tsh").unwrap();
        let thread = parse_line("whosent\t2\tfork\t7\t10\t10\t13\t10\tsh").unwrap();
        let exec = parse_line("whosent\t2\texec\t8\t12\t12\tsig\\tx\t/bin/sig x").unwrap();
        let exit = parse_line("whosent\t2\texit\t9\t12\t12\tsleep").unwrap();
        let rename = parse_line("whosent\t2\tcomm\t8\t12\tsh").unwrap();
        let ev = |l: Line| match l {
            Line::Task { ts, events } => (ts, events),
            l => panic!("{l:?}"),
        };
        let nt = |tid, thread| TaskEvent::NewTask {
            parent_tid: 10,
            tid,
            comm: "sh".into(),
            thread,
        };
        assert_eq!(ev(fork), (7, vec![nt(12, false)]));
        assert_eq!(ev(thread), (7, vec![nt(13, true)]));
        assert_eq!(
            ev(exec),
            (
                8,
                vec![
                    TaskEvent::Exec {
                        tid: 12,
                        old_tid: 12,
                        filename: "/bin/sig x".into()
                    },
                    TaskEvent::Rename {
                        tid: 12,
                        comm: "sig\tx".into()
                    }
                ]
            )
        );
        assert_eq!(
            ev(rename),
            (
                8,
                vec![TaskEvent::Rename {
                    tid: 12,
                    comm: "sh".into()
                }]
            )
        );
        assert_eq!(
            ev(exit),
            (
                9,
                vec![TaskEvent::Exit {
                    tid: 12,
                    comm: "sleep".into(),
                    group_dead: None,
                }]
            )
        );
    }

    #[test]
    fn a_tracepoint_less_probe_has_no_result() {
        let l = "whosent\t1\tsig\t10\t0\ttask\t2\t2\t1\t0\tsh\t3\t3\tsleep\t9\t0\t0\t1\t-1";
        let Line::Signal(e) = parse_line(l).unwrap() else {
            panic!()
        };
        assert_eq!(e.result, None);
        assert_eq!(e.group, Some(true));
    }

    const SENDER: &str = include_str!("../../../tests/fixtures/stap/aarch64-6.1/sender.txt");
    const TIMER: &str = include_str!("../../../tests/fixtures/stap/aarch64-6.1/timer.txt");
    const SIGS: &str = include_str!("../../../tests/fixtures/stap/aarch64-6.1/sigs.txt");

    /// The lines but the process lines (see `recorded_process_lines`).
    fn all(text: &str) -> Vec<Line> {
        lines(text.as_bytes())
            .map(|l| l.unwrap())
            .filter(|l| !matches!(l, Line::Proc(_) | Line::Task { .. }))
            .collect()
    }

    /// `sigs P victim V utf8 U` and `segv G` from sigs.txt.
    fn pids() -> (i32, i32, i32, i32) {
        let w: Vec<i32> = SIGS
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (w[0], w[1], w[2], w[3])
    }

    #[test]
    fn board_recording_of_a_sender_session() {
        let (sigs, victim, utf8, segv) = pids();
        let l = all(SENDER);
        let Line::Ready(r) = &l[0] else {
            panic!("{:?}", l[0])
        };
        assert!(r.module.starts_with("whosent_"), "{}", r.module);
        assert_eq!(r.param("sender_comm"), Some("sigs"));
        assert_eq!(r.param("target_comm"), Some(""));
        assert_eq!(r.param("max_events"), Some("0"));
        let ev: Vec<&SignalEvent> = l
            .iter()
            .filter_map(|l| match l {
                Line::Signal(e) => Some(&**e),
                _ => None,
            })
            .collect();
        // (sig, code, group, result, sender pid, target pid, target comm)
        let want = [
            (12, 0, true, Outcome::Ignored, sigs, victim, "sig\tvictim"),
            (
                34,
                -1,
                true,
                Outcome::Delivered,
                sigs,
                victim,
                "sig\tvictim",
            ),
            (
                10,
                -6,
                false,
                Outcome::Delivered,
                sigs,
                victim,
                "sig\tvictim",
            ),
            (
                10,
                -6,
                false,
                Outcome::AlreadyPending,
                sigs,
                victim,
                "sig\tvictim",
            ),
            (11, 1, false, Outcome::Delivered, segv, segv, "sigs"),
            (17, 2, true, Outcome::Ignored, segv, sigs, "sigs"),
            (15, 0, true, Outcome::Delivered, sigs, utf8, "s\u{ef}g"),
            (9, 0, true, Outcome::Delivered, sigs, victim, "sig\tvictim"),
            (17, 1, true, Outcome::Delivered, sigs, 0, "sh"),
        ];
        assert_eq!(ev.len(), want.len());
        for (e, w) in ev.iter().zip(want) {
            let s = e.sender().expect("task context");
            let got = (
                e.sig,
                e.code,
                e.group.unwrap(),
                e.result.unwrap(),
                s.pid.unwrap(),
                e.target.pid.unwrap(),
                e.target.comm.as_str(),
            );
            let w = if w.5 == 0 {
                (w.0, w.1, w.2, w.3, w.4, got.5, w.6)
            } else {
                w
            };
            assert_eq!(got, w);
            assert_eq!(s.comm, "sigs");
            assert_eq!(s.uid, Some(0));
            assert_eq!(e.target.tid, e.target.pid.unwrap());
            assert!(
                e.ts_ns > 1_000_000_000 && e.ts_ns < 100_000_000_000,
                "since boot"
            );
        }
        assert!(ev.windows(2).all(|p| p[0].ts_ns <= p[1].ts_ns));
        let Some(Line::End(end)) = l.last() else {
            panic!("{:?}", l.last())
        };
        assert_eq!(end.matched, 9);
        assert!(end.seen > end.matched, "seen counts before filtering");
        assert!(end.ts_ns > ev[8].ts_ns);
    }

    /// The process lines of the sender session: the snapshot before
    /// `ready` (init among it), then `sigs` forked by its shell and
    /// exec'd (sigs.txt and shell.txt say the pids).
    #[test]
    fn recorded_process_lines() {
        let (sigs, ..) = pids();
        let shell: i32 = include_str!("../../../tests/fixtures/stap/aarch64-6.1/shell.txt")
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let l: Vec<Line> = lines(SENDER.as_bytes()).map(|l| l.unwrap()).collect();
        let ready = l.iter().position(|l| matches!(l, Line::Ready(_))).unwrap();
        assert!(ready > 10, "the snapshot comes first");
        assert!(l[..ready].iter().all(|l| matches!(l, Line::Proc(_))));
        assert!(l[..ready]
            .iter()
            .any(|l| matches!(l, Line::Proc(f) if f.tid == 1 && f.ppid == 0 && f.comm == "init")));
        let events: Vec<&TaskEvent> = l[ready..]
            .iter()
            .filter_map(|l| match l {
                Line::Task { events, .. } => Some(events),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(
            events.contains(&&TaskEvent::NewTask {
                parent_tid: shell,
                tid: sigs,
                comm: "sh".into(),
                thread: false
            }),
            "{events:#?}"
        );
        assert!(
            events.contains(&&TaskEvent::Exec {
                tid: sigs,
                old_tid: sigs,
                filename: "./sigs".into()
            }),
            "{events:#?}"
        );
    }

    #[test]
    fn board_recording_of_a_timer_in_hard_irq() {
        let (sigs, ..) = pids();
        let l = all(TIMER);
        let Line::Signal(e) = &l[1] else {
            panic!("{:?}", l[1])
        };
        assert_eq!((e.sig, e.code, e.context), (14, 128, Context::Hardirq));
        assert_eq!(e.origin(), whosent_proto::record::Origin::Timer);
        assert!(e.sender().is_none());
        assert_eq!(e.running.comm, "swapper/1");
        assert_eq!(e.target.pid, Some(sigs));
        assert!(matches!(l[2], Line::End(EndLine { matched: 1, .. })));
    }

    /// The record a `sig` line becomes, byte for byte: the keys (and
    /// their order) are the ftrace agent's, since the same encoder
    /// writes both.
    #[test]
    fn a_sig_line_as_a_record() {
        let line = SENDER
            .lines()
            .filter(|l| l.contains("\tsig\t"))
            .nth(7)
            .unwrap();
        let Line::Signal(e) = parse_line(line).unwrap() else {
            panic!()
        };
        let mut json = String::new();
        e.encode(&mut json);
        let (sigs, victim, ..) = pids();
        // ftrace's rounding to microseconds (ns2usecs).
        let us = (e.ts_ns + 500) / 1000;
        assert_eq!(
            json,
            format!(
                concat!(
                    r#"{{"type":"signal","ts":{t},"cpu":{c},"sig":9,"signame":"SIGKILL","code":0,"code_name":"SI_USER","errno":0,"#,
                    r#""group":true,"result":"delivered","context":"task","origin":"task","cause":null,"#,
                    r#""sender":{{"pid":{s},"tid":{s},"comm":"sigs","nspid":null,"uid":0,"cmdline":null,"cgroup_id":null,"lineage":null}},"running":null,"#,
                    r#""target":{{"pid":{v},"tid":{v},"comm":"sig\tvictim","nspid":null}},"oom":null}}"#,
                    "\n"
                ),
                t = format!("{}.{:06}", us / 1_000_000, us % 1_000_000),
                c = e.cpu,
                s = sigs,
                v = victim
            )
        );
    }
}
