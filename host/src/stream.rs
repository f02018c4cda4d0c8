//! The agent's capture stream on the host: bytes in (from SSH, the
//! local agent's pipe, or a saved file), typed records out into the one
//! [`Session`]. All decoding is whosent-analysis's; this module only
//! moves bytes, folds storms in human mode, keeps the `--save` copy and
//! says when the stream was cut.

use crate::detach::cursor::{Cursor, Seen};
use crate::died::{Death, Exit};
use crate::error::HostError;
use crate::fold::Fold;
use crate::session::Session;
use crate::transport::Flow;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use whosent_analysis::pipeline::{Lineage, Sink};
use whosent_analysis::session::{Records, Session as Decoding};
use whosent_proto::decode::Record;
use whosent_proto::query::Query;
use whosent_proto::record::{
    End, EndReason, ErrorRec, ExitRec, Lost, Ready, RepeatRec, SignalEvent,
};
use whosent_stream::decode::{Decoder, Ending};

pub use whosent_stream::decode::is_stream;

/// The `--save` file: written as the bytes arrive, removed if the
/// capture never started (nothing left behind on a failed run).
pub struct Save {
    path: PathBuf,
    file: File,
}

/// Creates the `--save` file up front, so a bad path fails before
/// anything runs on the board.
pub fn create_save(path: &Path) -> Result<Save, HostError> {
    let file = File::create(path)
        .map_err(|e| HostError::Io(format!("cannot create --save file {}", path.display()), e))?;
    Ok(Save {
        path: path.to_path_buf(),
        file,
    })
}

/// One capture stream being read.
pub struct Feed {
    decoding: Decoding,
    decoder: Decoder,
    /// Human mode without `--every`: storms are folded.
    fold: Option<Fold>,
    buf: String,
    /// The agent answered with JSON lines (an error before the stream
    /// started, or an agent without `--stream`): decoded as lines.
    lines: Option<Vec<u8>>,
    save: Option<Save>,
    failed: bool,
    gone: bool,
    detached: Detached,
}

/// What reading a detached capture adds (crate::detach): where the
/// records are, what to skip, and the loss of deleted segments.
#[derive(Default)]
struct Detached {
    seen: Seen,
    /// Signal events and segments deleted before the first segment
    /// read, told right after the ready record.
    lost_before: Option<(u64, u64)>,
    /// Signal events (`None`: not known how many) and segments deleted
    /// while they were read, told right before the end record.
    lost_after: Option<(Option<u64>, u64)>,
    /// The input's end is where the recorder has got to, not a cut.
    recording: bool,
    /// A signal not to report: (target pid, signal), `stop`'s own
    /// SIGTERM to the agent.
    ignore: Option<(i32, i32)>,
}

/// The records of one call, into the session.
struct Out<'x, 'a> {
    s: &'x mut Session<'a>,
    fold: &'x mut Option<Fold>,
    buf: &'x mut String,
    gone: &'x mut bool,
    d: &'x mut Detached,
}

impl Out<'_, '_> {
    fn flow(&mut self, f: Flow) {
        if f == Flow::Stop {
            *self.gone = true;
        }
    }

    /// Closes a folded run before any other line.
    fn close_run(&mut self) {
        let lines = self.fold.as_mut().map(Fold::close).unwrap_or_default();
        for line in lines {
            let f = self.s.note(&line);
            self.flow(f);
        }
    }

    fn record(&mut self, rec: Record) {
        if *self.gone {
            return;
        }
        let f = self.s.record(&rec, None);
        self.flow(f);
    }
}

impl Sink for Out<'_, '_> {
    fn signal(&mut self, e: &SignalEvent, lineage: Option<&Lineage>) {
        if *self.gone
            || self
                .d
                .ignore
                .is_some_and(|(p, sig)| e.target.pid == Some(p) && e.sig == sig)
            || !self.d.seen.record(e.ts_ns)
        {
            return;
        }
        if let Some(fold) = self.fold.as_mut() {
            let (print, closed) = fold.signal(e);
            if let Some(line) = closed {
                let f = self.s.note(&line);
                self.flow(f);
            }
            if !print {
                // Folded, but counted as reported.
                let f = self.s.folded_signal();
                self.flow(f);
                return;
            }
        }
        let f = if self.s.json() {
            // The lineage is encoded once per sender (whosent-analysis).
            self.buf.clear();
            e.encode_with(self.buf, lineage.map(|l| l.json.as_str()));
            self.s.signal_ref(e, Some(self.buf.trim_end()))
        } else {
            match lineage {
                Some(l) => {
                    let mut e = e.clone();
                    e.running.lineage = Some(l.list.clone());
                    self.s.signal_ref(&e, None)
                }
                None => self.s.signal_ref(e, None),
            }
        };
        self.flow(f);
    }

    fn lost(&mut self, l: &Lost) {
        if !self.d.seen.timeless() {
            return;
        }
        self.close_run();
        self.record(Record::Lost(l.clone()));
    }

    fn exit(&mut self, x: &ExitRec) {
        if !self.d.seen.record(x.ts_ns) {
            return;
        }
        self.close_run();
        self.record(Record::Exit(x.clone()));
    }
}

impl Records for Out<'_, '_> {
    fn ready(&mut self, r: &Ready) {
        self.record(Record::Ready(r.clone()));
        if let Some((signals, segments)) = self.d.lost_before.take() {
            if !*self.gone {
                let f = self.s.storage_lost(Some(signals), segments);
                self.flow(f);
            }
        }
    }
    fn end(&mut self, e: &End) {
        self.close_run();
        if let Some((signals, segments)) = self.d.lost_after.take() {
            if !*self.gone {
                let f = self.s.storage_lost(signals, segments);
                self.flow(f);
            }
        }
        self.record(Record::End(e.clone()));
    }
    fn error(&mut self, e: &ErrorRec) {
        self.close_run();
        self.record(Record::Error(e.clone()));
    }
    /// Signals the eBPF agent's program folded in the kernel: added to
    /// their storm's run in human mode, else a `repeat` record.
    fn repeat(&mut self, r: &RepeatRec) {
        if *self.gone {
            return;
        }
        let Some(fold) = self.fold.as_mut() else {
            let mut text = String::new();
            r.encode(&mut text);
            let f = self.s.repeat(text.trim_end(), &repeat_line(r), r.count);
            return self.flow(f);
        };
        let line = fold.repeat(&crate::fold::Repeat {
            sender: r.sender,
            target: r.target,
            sig: r.sig,
            code: r.code,
            result: r.result,
            count: r.count,
            last: r.ts_ns,
        });
        if let Some(line) = line {
            let f = self.s.note(&line);
            self.flow(f);
        }
        for _ in 0..r.count {
            let f = self.s.folded_signal();
            if f == Flow::Stop {
                return self.flow(f);
            }
        }
    }
}

/// A `repeat` record in human output that does not fold (`--every`):
/// the pids, as the record has them.
fn repeat_line(r: &RepeatRec) -> String {
    let by = r
        .sender
        .map_or_else(|| "the kernel".to_string(), |p| format!("pid {p}"));
    let result = r.result.and_then(|o| o.name()).unwrap_or("unknown");
    format!(
        "  ×{} more: {}: {by} -> pid {}  {result}",
        r.count,
        whosent_proto::signal::name(r.sig),
        r.target
    )
}

/// A JSON line of an agent that writes records (the eBPF agent), in
/// human mode without `--every`: its signals folded as the stream's
/// are, and its `repeat` records (storms folded in the kernel) added to
/// their runs.
fn folded_line(fold: &mut Fold, raw: &[u8], s: &mut Session<'_>) -> Flow {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_end();
    if let Some(r) = crate::fold::parse_repeat(text) {
        let mut flow = Flow::Continue;
        if let Some(line) = fold.repeat(&r) {
            flow = s.note(&line);
        }
        for _ in 0..r.count {
            if s.folded_signal() == Flow::Stop {
                return Flow::Stop;
            }
        }
        return flow;
    }
    match whosent_proto::decode::parse_line(text) {
        Ok(Record::Signal(e)) => {
            let (print, closed) = fold.signal(&e);
            if let Some(line) = closed {
                if s.note(&line) == Flow::Stop {
                    return Flow::Stop;
                }
            }
            if !print {
                return s.folded_signal();
            }
        }
        _ => {
            for line in fold.close() {
                if s.note(&line) == Flow::Stop {
                    return Flow::Stop;
                }
            }
        }
    }
    s.agent_line(raw)
}

impl Feed {
    /// `fold`: fold storms (human mode without `--every`); `count`:
    /// stop after that many signals (the agent does not count when it
    /// records).
    pub fn new(query: Query, count: Option<u64>, save: Option<Save>, fold: bool) -> Self {
        Feed {
            decoding: Decoding::new(query, count),
            decoder: Decoder::new(),
            fold: fold.then(Fold::default),
            buf: String::new(),
            lines: None,
            save,
            failed: false,
            gone: false,
            detached: Detached::default(),
        }
    }

    /// Reads a detached capture (crate::detach): `recording` while its
    /// agent still writes it; `skip` the records up to a point already
    /// printed; `lost` the signal events in deleted segments: `told`
    /// of them in a `lost` record after the ready, `segments` deleted,
    /// and `total` counted in the end record.
    pub fn detached(
        mut self,
        recording: bool,
        skip: Option<Cursor>,
        told: u64,
        segments: u64,
        total: u64,
    ) -> Self {
        self.decoding.recording = recording;
        self.decoding.lost_before = total;
        self.detached = Detached {
            seen: Seen {
                skip,
                ..Seen::default()
            },
            lost_before: (told > 0).then_some((told, segments)),
            lost_after: None,
            recording,
            ignore: self.detached.ignore,
        };
        self
    }

    /// Does not report signal `sig` to process `pid`: `stop`'s own
    /// SIGTERM to the capture's agent.
    pub fn ignore(mut self, pid: i32, sig: i32) -> Self {
        self.detached.ignore = Some((pid, sig));
        self
    }

    /// The current segment of a detached capture is over: the next
    /// bytes are the next segment, a stream of its own continuing this
    /// one (whosent_analysis::session::Session::next_segment). Returns
    /// the bytes of an unfinished frame the segment ended with (none
    /// from a recorder that finished it).
    /// `after_gap`: the segments before it were deleted, not read.
    pub fn next_segment(&mut self, after_gap: bool) -> usize {
        let pending = match self.decoder.finish() {
            Ending::Cut { pending, .. } => pending,
            Ending::Complete => 0,
        };
        self.decoder = Decoder::new();
        self.decoding.next_segment(after_gap);
        pending
    }

    /// The loss of a detached capture found once its segments were
    /// read: `signals` signal events (`None`: not known how many) in
    /// `segments` segments deleted while they were read. A `lost`
    /// record right before the end record, and counted in it.
    pub fn lost_at_end(&mut self, signals: Option<u64>, segments: u64) {
        if signals == Some(0) {
            return;
        }
        self.decoding.lost_before += signals.unwrap_or(0);
        self.detached.lost_after = Some((signals, segments));
    }

    /// signal_generate events decoded so far, matched or not: as the
    /// recorder counts them in a detached capture's stat.
    pub fn generated(&self) -> u64 {
        self.decoding.generated()
    }

    /// Where the records decoded so far end (for the next collect).
    pub fn position(&self) -> Cursor {
        self.detached.seen.at
    }

    /// Takes bytes as they arrive. `Stop` once stdout is gone or the
    /// stream is bad; at `--count` the session is asked to stop the
    /// agent, and its last frames are still taken.
    /// Ends the capture once every `--pid` target has ended.
    pub fn until_exit(mut self, on: bool) -> Self {
        self.decoding.until_exit = on;
        self
    }

    pub fn bytes(&mut self, chunk: &[u8], s: &mut Session<'_>) -> Flow {
        if let Some(sv) = &mut self.save {
            if let Err(e) = sv.file.write_all(chunk) {
                say!(
                    "whosent-deploy: warning: cannot write {}: {e}; no longer saving",
                    sv.path.display()
                );
                self.save = None;
            }
        }
        if self.lines.is_none() && self.decoder.offset() == 0 && chunk.first() == Some(&b'{') {
            self.lines = Some(Vec::new());
        }
        if let Some(pending) = &mut self.lines {
            pending.extend_from_slice(chunk);
            while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                let flow = match &mut self.fold {
                    Some(fold) => folded_line(fold, &line, s),
                    None => s.agent_line(&line),
                };
                if flow == Flow::Stop {
                    self.gone = true;
                    return Flow::Stop;
                }
            }
            return Flow::Continue;
        }
        if self.failed || self.gone {
            return Flow::Stop;
        }
        // A chunk's records leave together, at its end.
        s.batch();
        let flow = self.decode(chunk, s);
        if s.flush() == Flow::Stop {
            self.gone = true;
            return Flow::Stop;
        }
        flow
    }

    fn decode(&mut self, chunk: &[u8], s: &mut Session<'_>) -> Flow {
        self.decoder.push(chunk);
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let e = e.to_string();
                    self.fail(&e, s);
                    return Flow::Stop;
                }
            };
            let mut out = Out {
                s: &mut *s,
                fold: &mut self.fold,
                buf: &mut self.buf,
                gone: &mut self.gone,
                d: &mut self.detached,
            };
            if let Err(e) = self.decoding.frame(frame, &mut out) {
                self.fail(&e.to_string(), s);
                return Flow::Stop;
            }
        }
        if self.gone {
            return Flow::Stop;
        }
        if self.decoding.done() {
            s.halt(self.decoding.done_reason());
        }
        Flow::Continue
    }

    fn fail(&mut self, message: &str, s: &mut Session<'_>) {
        self.failed = true;
        say!("whosent-deploy: error: {message}");
        let mut out = Out {
            s,
            fold: &mut self.fold,
            buf: &mut self.buf,
            gone: &mut self.gone,
            d: &mut self.detached,
        };
        out.error(&ErrorRec {
            kind: "bad_stream".into(),
            message: message.into(),
            help: "report this with the saved stream (--save FILE) and both versions".into(),
        });
    }

    /// The agent's END (or ERROR) frame came: nothing follows.
    pub fn ended(&self) -> bool {
        self.decoding.ended
    }

    /// The input has ended: the rest of the records and the `end`.
    /// `cut` is the end reason if the stream stopped before its END
    /// (`hangup` for a dropped link, `eof` for a file). `exit` is how
    /// the agent ended when it is known to have exited: without its
    /// END or ERROR that is its death, reported (an `error` record,
    /// end reason `error`) and returned.
    pub fn finish(
        &mut self,
        cut: EndReason,
        exit: Option<Exit>,
        s: &mut Session<'_>,
    ) -> Option<Death> {
        if let Some(rest) = self.lines.take() {
            if !rest.is_empty() {
                s.agent_line(&rest);
            }
            self.discard_save();
            let death = exit.and_then(|x| x.death(s.ended, self.gone, s.ready));
            if let Some(d) = &death {
                s.record(&Record::Error(d.record()), None);
                if s.json() || s.ready {
                    s.end(EndReason::Error);
                }
            }
            return death;
        }
        let ending = self.decoder.finish();
        let _ = s.flush();
        let unread = self.gone || self.failed;
        let death = exit.and_then(|x| x.death(self.decoding.ended || s.ended, unread, s.ready));
        if let Ending::Cut { offset, pending } = ending {
            if !self.failed
                && !self.gone
                && !self.decoding.done()
                && death.is_none()
                && !self.detached.recording
            {
                say!(
                    "whosent-deploy: warning: the capture stream was cut after {offset} bytes{}; what came before is reported, what followed is lost",
                    if pending > 0 { format!(" ({pending} bytes of an unfinished frame dropped)") } else { String::new() }
                );
            }
        }
        let started = s.ready;
        let mut out = Out {
            s,
            fold: &mut self.fold,
            buf: &mut self.buf,
            gone: &mut self.gone,
            d: &mut self.detached,
        };
        let cut = match &death {
            Some(d) => {
                out.error(&d.record());
                EndReason::Error
            }
            None => cut,
        };
        self.decoding.finish(&ending, cut, &mut out);
        if death.is_some() && !started && s.json() {
            // Nothing decoded, so no end record came: one of our own
            // (a human needs no "0 signals" line after the error).
            s.end(EndReason::Error);
        }
        let _ = s.flush();
        if !started {
            self.discard_save();
        }
        death
    }

    fn discard_save(&mut self) {
        if let Some(sv) = self.save.take() {
            drop(sv.file);
            let _ = std::fs::remove_file(&sv.path);
        }
    }
}
