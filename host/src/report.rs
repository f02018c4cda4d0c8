//! Turning records into what the user sees: JSON Lines on stdout with
//! `--json` (schema v1, docs/json-schema.md), else one line per signal
//! on stdout and progress on stderr. Counting and the exit status are
//! [`crate::session::Session`]'s.

use std::io::{self, Write};
use whosent_proto::decode::Record;
use whosent_proto::escape::escape;
use whosent_proto::record::Lost;
use whosent_proto::render;

pub struct Report<W: Write> {
    out: W,
    json: bool,
    /// Added to each JSON record as `"host"` when the agent ran remotely.
    host: Option<String>,
    /// Human progress goes to stderr, and only when someone reads it.
    pub quiet: bool,
    /// Records are flushed by [`Report::flush`], not one by one: a
    /// storm's records then leave in large writes, not a syscall each
    /// (1M records: 6 s of system time one by one).
    pub batch: bool,
    /// What is not written yet; `out` gets it unbuffered (e.g.
    /// [`crate::stdout::Raw`]), so that what a write returns is what
    /// left.
    buf: Vec<u8>,
    /// Where signals end in `buf`, and how many each line stands for
    /// (a folded storm's count line stands for the signals it folded).
    ends: Vec<(usize, u64)>,
    written: u64,
}

/// A record's JSON text, as whosent-proto encodes it.
fn encode(rec: &Record) -> Option<String> {
    let mut s = String::new();
    match rec {
        Record::Ready(r) => r.encode(&mut s),
        Record::Signal(e) => e.encode(&mut s),
        Record::Lost(l) => l.encode(&mut s),
        Record::End(e) => e.encode(&mut s),
        Record::Error(e) => e.encode(&mut s),
        Record::Exit(x) => x.encode(&mut s),
        Record::Other(_) => return None,
    }
    Some(s.trim_end().to_string())
}

impl<W: Write> Report<W> {
    pub fn json(&self) -> bool {
        self.json
    }

    /// A signal record, without building a [`Record`] for it (the hot
    /// path of a storm); `wire` as for [`Report::write`].
    pub fn write_signal(
        &mut self,
        e: &whosent_proto::record::SignalEvent,
        wire: Option<&str>,
    ) -> io::Result<()> {
        if self.json {
            let mut own = String::new();
            let text = match wire {
                Some(w) => w,
                None => {
                    e.encode(&mut own);
                    own.trim_end()
                }
            };
            return self.json_line(text, 1);
        }
        // A Vec takes all: these writes cannot fail.
        let _ = writeln!(self.buf, "{}", render::signal_line(e));
        self.ends.push((self.buf.len(), 1));
        self.flush_unless_batch()
    }

    /// A signal whose source renders it itself (audit's records carry
    /// an `audit` object and say how the call ended): `json` is its
    /// record, `human` its line.
    pub fn write_rendered(&mut self, json: &str, human: &str) -> io::Result<()> {
        if self.json {
            return self.json_line(json.trim_end(), 1);
        }
        let _ = writeln!(self.buf, "{human}");
        self.ends.push((self.buf.len(), 1));
        self.flush_unless_batch()
    }

    fn flush_unless_batch(&mut self) -> io::Result<()> {
        if self.batch {
            return Ok(());
        }
        self.flush()
    }

    /// Writes out what batch mode held back, and counts the signals
    /// whose lines were written whole, also when the write failed
    /// part way.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut done = 0;
        let res = loop {
            if done == self.buf.len() {
                break self.out.flush();
            }
            match self.out.write(&self.buf[done..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let whole = self.ends.partition_point(|&(end, _)| end <= done);
        self.written += self.ends.drain(..whole).map(|(_, n)| n).sum::<u64>();
        self.buf.drain(..done);
        for (end, _) in &mut self.ends {
            *end -= done;
        }
        res
    }

    /// Signals whose lines (or records) were written out.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// A line of its own in human output, such as the count that closes
    /// a folded storm (crate::fold), standing for `signals` folded
    /// signals; nothing in JSON mode.
    pub fn note(&mut self, text: &str, signals: u64) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        let _ = writeln!(self.buf, "{text}");
        self.ends.push((self.buf.len(), signals));
        self.flush_unless_batch()
    }

    /// A `repeat` record (docs/json-schema.md), standing for `signals`
    /// signals folded in the kernel: `json`, or the line `human`.
    pub fn repeat(&mut self, json: &str, human: &str, signals: u64) -> io::Result<()> {
        if self.json {
            return self.json_line(json, signals);
        }
        let _ = writeln!(self.buf, "{human}");
        self.ends.push((self.buf.len(), signals));
        self.flush_unless_batch()
    }

    /// The loss of a detached capture whose storage filled: `signals`
    /// signal events (`None`: not known how many) in `segments`
    /// segments, deleted. A `lost` record with `cpu` null
    /// (docs/json-schema.md), or a warning on stderr.
    pub fn storage_lost(&mut self, signals: Option<u64>, segments: u64) -> io::Result<()> {
        if self.json {
            let count = signals.map_or("null".to_string(), |n| n.to_string());
            let text = format!(
                "{{\"type\":\"lost\",\"cpu\":null,\"count\":{count},\"segments\":{segments}}}"
            );
            return self.json_line(&text, 0);
        }
        match signals {
            Some(n) => say!(
                "whosent: warning: {n} signal event(s) lost: the capture's storage filled \
                 (--max-size) and {segments} of its segments were deleted before they were read"
            ),
            None => say!(
                "whosent: warning: signal events lost, how many is not known: the capture's storage \
                 filled (--max-size) and segments were deleted while they were read"
            ),
        }
        Ok(())
    }

    /// One JSON record, standing for `signals` signals (1 or 0).
    fn json_line(&mut self, text: &str, signals: u64) -> io::Result<()> {
        match &self.host {
            Some(h) => {
                let mut tagged = String::from("{\"host\":");
                whosent_proto::json::string(&mut tagged, h);
                tagged.push(',');
                tagged.push_str(&text[1..]);
                let _ = writeln!(self.buf, "{tagged}");
            }
            None => {
                let _ = writeln!(self.buf, "{text}");
            }
        }
        if signals > 0 {
            self.ends.push((self.buf.len(), signals));
        }
        self.flush_unless_batch()
    }

    pub fn new(out: W, json: bool, host: Option<String>) -> Self {
        Report {
            out,
            json,
            host,
            quiet: false,
            batch: false,
            buf: Vec::new(),
            ends: Vec::new(),
            written: 0,
        }
    }

    /// Writes one record. `wire` is its JSON text when it came as text
    /// (the agent's stdout): `--json` passes that on as it is, so that
    /// fields this host does not know survive. An `Err` means stdout is
    /// gone (e.g. a closed pipe): the caller should stop quietly.
    pub fn write(&mut self, rec: &Record, wire: Option<&str>) -> io::Result<()> {
        if let Record::Signal(e) = rec {
            return self.write_signal(e, wire);
        }
        if self.json {
            let Some(text) = wire.map(str::to_string).or_else(|| encode(rec)) else {
                return Ok(());
            };
            return self.json_line(&text, 0);
        }
        match rec {
            Record::Ready(r) if !self.quiet => {
                // All of it comes from the board (the filter echoes
                // --comm names): escaped as the signal lines are.
                let on = self
                    .host
                    .as_deref()
                    .map(|h| format!(" on {}", escape(h)))
                    .unwrap_or_default();
                let filter = if r.filter.is_empty() {
                    "none"
                } else {
                    r.filter.as_str()
                };
                // A stderr that is gone (a closed terminal) loses the
                // progress lines, and must not panic as eprintln! does.
                say!(
                    "whosent: tracing{on}: Linux {} ({}), {} backend, kernel filter: {}; waiting for signals (Ctrl-C to stop)",
                    escape(&r.kernel),
                    escape(&r.arch),
                    escape(&r.backend),
                    escape(filter)
                );
            }
            Record::Lost(l) if l.cpu == Lost::NOT_RUN => {
                let n = l.count.map_or("some".to_string(), |n| n.to_string());
                say!("whosent: warning: the kernel did not run the eBPF program for {n} signal events, matched or not (another BPF program was running on that CPU); --backend ftrace has no such loss");
            }
            Record::Lost(l) => {
                match l.count {
                    Some(n) => say!(
                        "whosent: warning: the kernel dropped {n} events on cpu {}",
                        l.cpu
                    ),
                    None => say!(
                        "whosent: warning: the kernel dropped events on cpu {}",
                        l.cpu
                    ),
                };
            }
            Record::Exit(x) => {
                let _ = writeln!(self.buf, "{}", render::exit_line(x));
                self.flush_unless_batch()?;
            }
            Record::End(e) if !self.quiet => {
                say!(
                    "whosent: {} signal(s), {} lost; stopped: {}",
                    e.signals,
                    e.lost,
                    e.reason.as_str().replace('_', " ")
                );
            }
            // The agent's stderr already told the user.
            _ => {}
        }
        Ok(())
    }
}
