//! `whosent-deploy parse`: a recorded trace into the same records and
//! lines as a live capture, for traces users already have. The format
//! is told by content (`whosent_ftrace::detect`, the capture stream's
//! magic, `whosent_audit::is_audit`); the decoding is in whosent-ftrace
//! (`text`, `tracedat`), whosent-analysis (a stream saved with
//! `--save`) and whosent-audit (audit logs), this is glue.

use crate::error::HostError;
use crate::report::Report;
use crate::session::{Limits, Session, Stop};
use crate::stream::{self, Feed};
use crate::transport::Flow;
use std::io::{BufRead, BufReader, Read, Write};
use whosent_ftrace::detect::Format;
use whosent_ftrace::text::{self, TextItem};
use whosent_ftrace::tracedat::signals::DatItem;
use whosent_ftrace::tracedat::TraceDat;
use whosent_proto::decode::Record;
use whosent_proto::query::Query;
use whosent_proto::record::{EndReason, Lost};

/// Parses `input` (named `name` in messages), writing records to `out`
/// (JSON Lines with `json`; storms of a saved stream folded unless
/// `every`); returns the exit status. Damage that leaves the rest
/// readable (a malformed text line, a truncated page, a cut stream) is
/// a warning on stderr.
pub fn parse<R: Read>(
    mut input: R,
    name: &str,
    q: &Query,
    out: &mut dyn Write,
    json: bool,
    every: bool,
) -> Result<i32, HostError> {
    let read_err = |e| HostError::Io(format!("cannot read {name}"), e);
    let mut prefix = Vec::with_capacity(Format::PREFIX_LEN);
    (&mut input)
        .take(Format::PREFIX_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(read_err)?;
    if stream::is_stream(&prefix) {
        return saved_stream(prefix.as_slice().chain(input), name, q, out, json, every);
    }
    if whosent_audit::is_audit(&prefix) {
        let r = BufReader::new(prefix.as_slice().chain(input));
        return audit_log(r, name, q, out, json);
    }
    match Format::detect(&prefix) {
        Format::Text => {
            let r = BufReader::new(prefix.as_slice().chain(input));
            emit(text_items(r), q, out, json)
        }
        Format::NotATrace(kind) => Err(HostError::other(
            format!("not a trace this tool reads: {name} is {kind}"),
            "give ftrace text (trace, trace_pipe, `trace-cmd report`), a trace-cmd trace.dat, \
             or a stream saved with --save (docs/parse.md)",
        )),
        Format::TraceDat => {
            let mut buf = prefix;
            input.read_to_end(&mut buf).map_err(read_err)?;
            let dat_err = |e: whosent_ftrace::tracedat::TraceDatError| HostError::Other {
                message: format!("{name}: {e}"),
                help: e.help().into(),
            };
            let dat = TraceDat::parse(&buf).map_err(dat_err)?;
            for w in &dat.warnings {
                warn(&format!("{name}: {w} (help: {})", w.help()));
            }
            let signals = dat.signals().map_err(dat_err)?;
            if !signals.has_signal_format() {
                warn(&format!(
                    "{name} has no signal:signal_generate events (help: record with \
                     `trace-cmd record -e signal:signal_generate`)"
                ));
            }
            emit(
                signals.map(|i| i.map_err(|e| format!("{name}: {e}"))),
                q,
                out,
                json,
            )
        }
    }
}

/// A stream saved with `--save`: the same decoding as a live capture.
fn saved_stream(
    mut input: impl Read,
    name: &str,
    q: &Query,
    out: &mut dyn Write,
    json: bool,
    every: bool,
) -> Result<i32, HostError> {
    let mut report = Report::new(&mut *out as &mut dyn Write, json, None);
    report.quiet = true;
    let stop = Stop::default();
    let mut session = Session::new(report, Limits::default(), &stop);
    let mut feed = Feed::new(q.clone(), None, None, !json && !every);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HostError::Io(format!("cannot read {name}"), e)),
        };
        if feed.bytes(&buf[..n], &mut session) == Flow::Stop {
            break;
        }
    }
    feed.finish(EndReason::Eof, None, &mut session);
    if let Some(e) = session.output_error() {
        return Err(e);
    }
    Ok(session.status(0))
}

/// An audit log (or ausearch's output): read whole, since the records
/// of an event may be anywhere in it, then written in time order.
fn audit_log(
    mut r: impl BufRead,
    name: &str,
    q: &Query,
    out: &mut dyn Write,
    json: bool,
) -> Result<i32, HostError> {
    let mut parser = whosent_audit::Parser::new();
    let mut items = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => parser.line(&line, &mut items),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HostError::Io(format!("cannot read {name}"), e)),
        }
    }
    parser.finish(&mut items);
    let mut report = Report::new(&mut *out as &mut dyn Write, json, None);
    report.quiet = true;
    let stop = Stop::default();
    let mut session = Session::new(report, Limits::default(), &stop);
    let mut text = String::new();
    for item in items {
        let s = match item {
            Ok(s) => s,
            Err(e) => {
                warn(&format!("{name}: {e} (help: {})", e.help()));
                continue;
            }
        };
        if !q.matches(&s.event) {
            continue;
        }
        text.clear();
        s.encode(&mut text);
        if session.rendered_signal(&text, &s.human_line()) == Flow::Stop {
            return Ok(session.status(0));
        }
    }
    session.end(EndReason::Eof);
    Ok(session.status(0))
}

/// Text items in the shape trace.dat's come in.
fn text_items(r: impl BufRead) -> impl Iterator<Item = Result<DatItem, String>> {
    text::parse(r).map(|i| match i {
        Ok(TextItem::Signal(s)) => Ok(DatItem::Signal(s.into_event())),
        Ok(TextItem::Lost { cpu, count }) => Ok(DatItem::Lost {
            cpu: cpu.unwrap_or(0),
            count,
        }),
        Err(e) => Err(e.to_string()),
    })
}

/// Warnings quote the recorded trace, names from the board included:
/// escaped as the signal lines are.
fn warn(msg: &str) {
    eprintln!(
        "whosent-deploy: warning: {}",
        whosent_proto::escape::escape(msg)
    );
}

/// Writes the records that match `q` through one session, then the
/// `end` record; returns the exit status, or the error of a stdout
/// that failed other than by its reader going away.
fn emit(
    items: impl Iterator<Item = Result<DatItem, String>>,
    q: &Query,
    out: &mut dyn Write,
    json: bool,
) -> Result<i32, HostError> {
    let mut report = Report::new(&mut *out as &mut dyn Write, json, None);
    report.quiet = true;
    let stop = Stop::default();
    let mut session = Session::new(report, Limits::default(), &stop);
    for item in items {
        let flow = match item {
            Ok(DatItem::Signal(mut e)) => {
                // From the event alone: a recorded trace gives no
                // process table, and mark_victim is not read from it.
                e.classify(Default::default());
                if !q.matches(&e) {
                    continue;
                }
                session.signal(e)
            }
            Ok(DatItem::Lost { cpu, count }) => {
                session.record(&Record::Lost(Lost { cpu, count }), None)
            }
            Err(e) => {
                warn(&e);
                continue;
            }
        };
        if flow == Flow::Stop {
            break;
        }
    }
    session.end(session.why().unwrap_or(EndReason::Eof));
    match session.output_error() {
        Some(e) => Err(e),
        None => Ok(session.status(0)),
    }
}
