//! One capture as the host sees it, whatever produced the records (the
//! agent's stdout, a stap module's lines, a recorded trace): it counts
//! signals and lost events, applies a host-side `--count`, knows why
//! the host stopped, writes the `end` record when the source has none
//! of its own, and gives the exit status: 0 when a signal was reported,
//! 1 when none was, 2 when the source reported an error.

use crate::report::Report;
use crate::transport::Flow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use whosent_proto::decode::{parse_line, Record};
use whosent_proto::record::{End, EndReason, SignalEvent};

/// How a capture is stopped from outside its stream: the first reason
/// given wins, and `halt` is the stream's stop flag.
#[derive(Default)]
pub struct Stop {
    pub halt: AtomicBool,
    why: Mutex<Option<EndReason>>,
}

impl Stop {
    /// Notes `why` (unless a reason came first) and, with `halt`, stops
    /// the stream.
    pub fn request(&self, why: EndReason, halt: bool) {
        let mut w = self.why.lock().unwrap_or_else(|p| p.into_inner());
        w.get_or_insert(why);
        if halt {
            self.halt.store(true, Ordering::SeqCst);
        }
    }

    pub fn why(&self) -> Option<EndReason> {
        *self.why.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the host enforces itself; a source that counts and times itself
/// (the agent) leaves these empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub count: Option<u64>,
    pub duration: Option<f64>,
    /// Stop the stream when the count is reached; a source that stops
    /// by itself at the count (stap's `max_events`) would only race it.
    pub halt_on_count: bool,
}

pub struct Session<'a> {
    report: Report<&'a mut dyn Write>,
    limits: Limits,
    stop: &'a Stop,
    pub signals: u64,
    pub lost: u64,
    pub ready: bool,
    /// The source's `end` came: nothing more will.
    pub ended: bool,
    error: bool,
    out_gone: bool,
}

impl<'a> Session<'a> {
    pub fn new(report: Report<&'a mut dyn Write>, limits: Limits, stop: &'a Stop) -> Self {
        Session {
            report,
            limits,
            stop,
            signals: 0,
            lost: 0,
            ready: false,
            ended: false,
            error: false,
            out_gone: false,
        }
    }

    /// Why the host stopped the capture, if it did.
    pub fn why(&self) -> Option<EndReason> {
        self.stop.why()
    }

    /// One record; `wire` is its text when it came as JSON (see
    /// [`Report::write`]). Signals past a host-side `--count` are
    /// dropped. `Stop` once stdout is gone.
    pub fn record(&mut self, rec: &Record, wire: Option<&str>) -> Flow {
        if self.out_gone {
            return Flow::Stop;
        }
        match rec {
            Record::Signal(e) => return self.signal_ref(e, wire),
            Record::Lost(l) => self.lost += l.count.unwrap_or(0),
            Record::Ready(_) => self.ready = true,
            Record::Error(_) => self.error = true,
            Record::End(_) => self.ended = true,
            Record::Exit(_) | Record::Other(_) => {}
        }
        if self.report.write(rec, wire).is_err() {
            self.out_gone = true;
            return Flow::Stop;
        }
        Flow::Continue
    }

    pub fn signal(&mut self, e: SignalEvent) -> Flow {
        self.record(&Record::Signal(e), None)
    }

    /// Counts a signal against a host-side `--count`; false if it is
    /// past it (dropped).
    fn count_signal(&mut self) -> bool {
        let count = self.limits.count;
        if count.is_some_and(|c| self.signals >= c) {
            return false;
        }
        self.signals += 1;
        if count.is_some_and(|c| self.signals >= c) {
            self.stop
                .request(EndReason::Count, self.limits.halt_on_count);
        }
        true
    }

    /// A signal by reference (a storm's hot path); `wire` as for
    /// [`Session::record`].
    pub fn signal_ref(&mut self, e: &SignalEvent, wire: Option<&str>) -> Flow {
        if self.out_gone {
            return Flow::Stop;
        }
        if !self.count_signal() {
            return Flow::Continue;
        }
        if self.report.write_signal(e, wire).is_err() {
            self.out_gone = true;
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// A signal its source rendered itself ([`Report::write_rendered`]),
    /// counted as any other.
    pub fn rendered_signal(&mut self, json: &str, human: &str) -> Flow {
        if self.out_gone {
            return Flow::Stop;
        }
        if !self.count_signal() {
            return Flow::Continue;
        }
        if self.report.write_rendered(json, human).is_err() {
            self.out_gone = true;
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// A signal folded into the storm line before it (human mode): it
    /// counts as reported, and its line is the fold's count.
    pub fn folded_signal(&mut self) -> Flow {
        if self.out_gone {
            return Flow::Stop;
        }
        self.count_signal();
        Flow::Continue
    }

    /// A line of human output of its own (a folded storm's count).
    pub fn note(&mut self, text: &str) -> Flow {
        if self.out_gone || self.report.note(text).is_err() {
            self.out_gone = true;
            return Flow::Stop;
        }
        Flow::Continue
    }

    pub fn json(&self) -> bool {
        self.report.json()
    }

    /// From now on records are written out by [`Session::flush`] (after
    /// each chunk of a stream), not one by one.
    pub fn batch(&mut self) {
        self.report.batch = true;
    }

    /// Writes out what batch mode held back; `Stop` once stdout is gone.
    pub fn flush(&mut self) -> Flow {
        if self.out_gone || self.report.flush().is_err() {
            self.out_gone = true;
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// Stops the stream for `why` (the source keeps delivering its last
    /// records until it exits).
    pub fn halt(&self, why: EndReason) {
        self.stop.request(why, true);
    }

    /// Events the source says it lost without a `lost` record of its own
    /// (stap's warnings on stderr).
    pub fn lost_events(&mut self, n: u64) {
        self.lost += n;
    }

    /// Writes the `end` record with this session's counts.
    pub fn end(&mut self, reason: EndReason) -> Flow {
        let end = End {
            reason,
            signals: self.signals,
            lost: self.lost,
        };
        self.record(&Record::End(end), None)
    }

    /// One line of the agent's JSON Lines stdout: decoded here, once.
    pub fn agent_line(&mut self, raw: &[u8]) -> Flow {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end();
        if text.is_empty() {
            return Flow::Continue;
        }
        match parse_line(text) {
            Ok(rec) => self.record(&rec, Some(text)),
            Err(e) => {
                // The line may hold names from the board.
                eprintln!(
                    "whosent-deploy: warning: {}",
                    whosent_proto::escape::escape(&e.to_string())
                );
                Flow::Continue
            }
        }
    }

    /// The exit status for what was seen; `source_status` is the
    /// agent's (or stapio's) own.
    pub fn status(&self, source_status: i32) -> i32 {
        if self.error || source_status == 2 || (!self.ready && source_status != 0) {
            2
        } else if self.signals > 0 {
            0
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &[u8] = br#"{"type":"ready","v":1,"agent":"0.1.0","backend":"ftrace","kernel":"6.1","arch":"aarch64","instance":"whosent-1-2","filter":""}"#;
    const SIGNAL: &[u8] = br#"{"type":"signal","ts":1.5,"cpu":0,"sig":9,"signame":"SIGKILL","code":0,"code_name":"SI_USER","errno":0,"group":true,"result":"delivered","context":"task","sender":{"pid":6993,"tid":6993,"comm":"test_sender","uid":0,"cmdline":null},"running":null,"target":{"pid":6985,"tid":6985,"comm":"test_receiver"}}"#;

    fn session<'a>(
        out: &'a mut Vec<u8>,
        json: bool,
        host: Option<&str>,
        stop: &'a Stop,
    ) -> Session<'a> {
        let mut r = Report::new(out as &mut dyn Write, json, host.map(String::from));
        r.quiet = true;
        Session::new(r, Limits::default(), stop)
    }

    #[test]
    fn renders_and_counts() {
        let (mut out, stop) = (Vec::new(), Stop::default());
        let mut s = session(&mut out, false, None, &stop);
        s.agent_line(READY);
        s.agent_line(SIGNAL);
        s.agent_line(br#"{"type":"end","reason":"count","signals":1,"lost":0}"#);
        assert_eq!(s.status(0), 0);
        drop(s);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SIGKILL: test_sender(6993) -> test_receiver(6985)  code=SI_USER  delivered\n"
        );
    }

    #[test]
    fn json_is_tagged_with_the_host_and_errors_exit_2() {
        let (mut out, stop) = (Vec::new(), Stop::default());
        let mut s = session(&mut out, true, Some("board"), &stop);
        s.agent_line(br#"{"type":"error","kind":"not_root","message":"m","help":"h"}"#);
        assert_eq!(s.status(2), 2);
        assert_eq!(s.signals, 0);
        drop(s);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "{\"host\":\"board\",\"type\":\"error\",\"kind\":\"not_root\",\"message\":\"m\",\"help\":\"h\"}\n");
    }

    #[test]
    fn no_signal_is_status_1() {
        let (mut out, stop) = (Vec::new(), Stop::default());
        let mut s = session(&mut out, true, None, &stop);
        s.agent_line(br#"{"type":"ready","v":1,"agent":"0","backend":"ftrace","kernel":"k","arch":"a","instance":"i","filter":""}"#);
        s.agent_line(br#"{"type":"end","reason":"duration","signals":0,"lost":0}"#);
        assert_eq!(s.status(1), 1);
    }

    #[test]
    fn the_agents_text_passes_through_verbatim() {
        // The agent's fields, as it wrote them, even those this host's
        // model does not have.
        let (mut out, stop) = (Vec::new(), Stop::default());
        let mut s = session(&mut out, true, Some("h"), &stop);
        s.agent_line(br#"{"type":"signal","ts":1.5,"cpu":0,"sig":9,"code":0,"context":"task","sender":{"pid":1,"tid":1,"comm":"a"},"target":{"pid":2,"tid":2,"comm":"b"},"future":1}"#);
        drop(s);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"host\":\"h\",\"type\":\"signal\",\"ts\":1.5,\"cpu\":0,\"sig\":9,\"code\":0,\"context\":\"task\",\"sender\":{\"pid\":1,\"tid\":1,\"comm\":\"a\"},\"target\":{\"pid\":2,\"tid\":2,\"comm\":\"b\"},\"future\":1}\n"
        );
    }

    #[test]
    fn a_host_side_count_drops_the_rest_and_halts() {
        let (mut out, stop) = (Vec::new(), Stop::default());
        let mut r = Report::new(&mut out as &mut dyn Write, true, None);
        r.quiet = true;
        let limits = Limits {
            count: Some(1),
            halt_on_count: true,
            ..Limits::default()
        };
        let mut s = Session::new(r, limits, &stop);
        s.agent_line(SIGNAL);
        s.agent_line(SIGNAL);
        s.end(s.why().unwrap_or(EndReason::Error));
        drop(s);
        assert!(stop.halt.load(Ordering::SeqCst));
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.ends_with("{\"type\":\"end\",\"reason\":\"count\",\"signals\":1,\"lost\":0}\n"));
    }
}
