//! One capture as the host sees it, whatever produced the records (the
//! agent's stdout, a stap module's lines, a recorded trace): it counts
//! signals and lost events, applies a host-side `--count`, knows why
//! the host stopped, writes the `end` record when the source has none
//! of its own, and gives the exit status: 0 when a signal was reported,
//! 1 when none was, 2 when the source reported an error.

use crate::error::HostError;
use crate::report::Report;
use crate::transport::Flow;
use std::io::{self, Write};
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
    /// Signals taken (for a host-side `--count`); [`Session::written`]
    /// is how many were reported.
    pub signals: u64,
    pub lost: u64,
    pub ready: bool,
    /// The `ready` came before the stream was asked to stop: the
    /// capture was live (a Ctrl-C during the agent's start still sees
    /// its `ready` come, on the way out).
    pub live_before_stop: bool,
    /// An `end` or `error` record came from the source.
    pub ended: bool,
    error: bool,
    /// Why stdout failed; nothing more is written to it.
    out_err: Option<io::Error>,
    /// Folded signals whose count line is not written yet.
    folded: u64,
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
            live_before_stop: false,
            ended: false,
            error: false,
            out_err: None,
            folded: 0,
        }
    }

    /// stdout failed: the capture stops, as `output_closed` when the
    /// reader went away, else as an error ([`Session::output_error`]).
    fn out_failed(&mut self, e: io::Error) -> Flow {
        let why = if crate::stdout::reader_gone(&e) {
            EndReason::OutputClosed
        } else {
            EndReason::Error
        };
        self.stop.request(why, true);
        self.out_err.get_or_insert(e);
        Flow::Stop
    }

    fn out_gone(&self) -> bool {
        self.out_err.is_some()
    }

    /// A write to stdout that failed other than by its reader going
    /// away: the run must end with this error (exit 2), once the
    /// capture is stopped and cleaned up.
    pub fn output_error(&mut self) -> Option<HostError> {
        match self.out_err.take() {
            Some(e) if !crate::stdout::reader_gone(&e) => Some(crate::stdout::error(e)),
            e => {
                self.out_err = e;
                None
            }
        }
    }

    /// Signals reported: their records (or lines) were written out.
    pub fn written(&self) -> u64 {
        self.report.written()
    }

    /// The `end` record as this host saw the capture: the signals it
    /// wrote out, and its own reason for stopping when the source only
    /// saw the consequence (its stdin closed, its stream cut).
    fn own_end(&self, e: &End) -> Option<End> {
        let reason = match (e.reason, self.why()) {
            (EndReason::StdinClosed | EndReason::Hangup, Some(why)) => why,
            (r, _) => r,
        };
        let signals = self.written();
        (reason != e.reason || signals != e.signals).then_some(End {
            reason,
            signals,
            lost: e.lost,
        })
    }

    /// Why the host stopped the capture, if it did.
    pub fn why(&self) -> Option<EndReason> {
        self.stop.why()
    }

    /// One record; `wire` is its text when it came as JSON (see
    /// [`Report::write`]). Signals past a host-side `--count` are
    /// dropped. `Stop` once stdout is gone.
    pub fn record(&mut self, rec: &Record, wire: Option<&str>) -> Flow {
        if matches!(rec, Record::End(_) | Record::Error(_)) {
            self.ended = true;
        }
        if let Record::End(e) = rec {
            // What batch mode holds is written first: the end counts it.
            if !self.out_gone() {
                let _ = self.flush();
            }
            return match self.own_end(e) {
                Some(own) => self.end_record(&Record::End(own), None),
                None => self.end_record(rec, wire),
            };
        }
        if self.out_gone() {
            return Flow::Stop;
        }
        match rec {
            Record::Signal(e) => return self.signal_ref(e, wire),
            Record::Lost(l) => self.lost += l.count.unwrap_or(0),
            Record::Ready(_) => {
                self.ready = true;
                self.live_before_stop = !self.stop.halt.load(Ordering::SeqCst);
            }
            Record::Error(_) => self.error = true,
            Record::End(_) => self.ended = true,
            Record::Exit(_) | Record::Other(_) => {}
        }
        if let Err(e) = self.report.write(rec, wire) {
            return self.out_failed(e);
        }
        if let Record::Ready(_) = rec {
            // The `N/M boards tracing` line, when one of several, after
            // this board's own `tracing on` line.
            crate::fleet::tag::up();
        }
        Flow::Continue
    }

    /// The `end` record; in human mode it goes to stderr, so it is
    /// still told when stdout's reader went away.
    fn end_record(&mut self, rec: &Record, wire: Option<&str>) -> Flow {
        let reader_gone = self
            .out_err
            .as_ref()
            .is_some_and(crate::stdout::reader_gone);
        if self.out_gone() && (self.json() || !reader_gone) {
            return Flow::Stop;
        }
        if let Err(e) = self.report.write(rec, wire) {
            return self.out_failed(e);
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
        if self.out_gone() {
            return Flow::Stop;
        }
        if !self.count_signal() {
            return Flow::Continue;
        }
        if let Err(e) = self.report.write_signal(e, wire) {
            return self.out_failed(e);
        }
        Flow::Continue
    }

    /// A signal its source rendered itself ([`Report::write_rendered`]),
    /// counted as any other.
    pub fn rendered_signal(&mut self, json: &str, human: &str) -> Flow {
        if self.out_gone() {
            return Flow::Stop;
        }
        if !self.count_signal() {
            return Flow::Continue;
        }
        if let Err(e) = self.report.write_rendered(json, human) {
            return self.out_failed(e);
        }
        Flow::Continue
    }

    /// A signal folded into the storm line before it (human mode): it
    /// counts as reported, and its line is the fold's count.
    pub fn folded_signal(&mut self) -> Flow {
        if self.out_gone() {
            return Flow::Stop;
        }
        if self.count_signal() {
            self.folded += 1;
        }
        Flow::Continue
    }

    /// A `repeat` record written as it is: `json`, or in human output
    /// that does not fold (`--every`) the line `human`. It stands for
    /// `count` signals, which count as reported (the `end` record's
    /// `signals`) and against `--count`.
    pub fn repeat(&mut self, json: &str, human: &str, count: u64) -> Flow {
        if self.out_gone() {
            return Flow::Stop;
        }
        let mut counted = 0;
        while counted < count && self.count_signal() {
            counted += 1;
        }
        if let Err(e) = self.report.repeat(json, human, counted) {
            return self.out_failed(e);
        }
        Flow::Continue
    }

    /// A line of human output of its own (a folded storm's count): the
    /// folded signals count as reported once it is written.
    pub fn note(&mut self, text: &str) -> Flow {
        if self.out_gone() {
            return Flow::Stop;
        }
        let folded = std::mem::take(&mut self.folded);
        if let Err(e) = self.report.note(text, folded) {
            return self.out_failed(e);
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
        if self.out_gone() {
            return Flow::Stop;
        }
        if let Err(e) = self.report.flush() {
            return self.out_failed(e);
        }
        Flow::Continue
    }

    /// Stops the stream for `why` (the source keeps delivering its last
    /// records until it exits).
    pub fn halt(&self, why: EndReason) {
        self.stop.request(why, true);
    }

    /// Signal events a detached capture lost when its storage filled
    /// and `segments` were deleted ([`Report::storage_lost`]); `None`:
    /// not known how many.
    pub fn storage_lost(&mut self, signals: Option<u64>, segments: u64) -> Flow {
        if self.out_gone() {
            return Flow::Stop;
        }
        self.lost += signals.unwrap_or(0);
        if let Err(e) = self.report.storage_lost(signals, segments) {
            return self.out_failed(e);
        }
        Flow::Continue
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
            signals: self.written(),
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
                say!(
                    "whosent-deploy: warning: {}",
                    whosent_proto::escape::escape(&e.to_string())
                );
                Flow::Continue
            }
        }
    }

    fn output_failed(&self) -> bool {
        self.out_err
            .as_ref()
            .is_some_and(|e| !crate::stdout::reader_gone(e))
    }

    /// The exit status for what was seen; `source_status` is the
    /// agent's (or stapio's) own.
    /// An `error` record came from the source.
    pub fn errored(&self) -> bool {
        self.error
    }

    pub fn status(&self, source_status: i32) -> i32 {
        if self.error
            || source_status == 2
            || (!self.ready && source_status != 0)
            || self.output_failed()
        {
            2
        } else if self.written() > 0 {
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
