//! `whosent-deploy parse`: a recorded trace into the same records and
//! lines as a live capture, for traces users already have. The format
//! is told by content (`whosent_ftrace::detect`); the decoding is in
//! whosent-ftrace (`text`, `tracedat`), this is glue.

use crate::error::HostError;
use crate::report::Report;
use std::io::{BufRead, BufReader, Read, Write};
use whosent_ftrace::detect::Format;
use whosent_ftrace::text::{self, TextItem};
use whosent_ftrace::tracedat::signals::DatItem;
use whosent_ftrace::tracedat::TraceDat;
use whosent_proto::query::Query;
use whosent_proto::record::{End, EndReason, Lost};

/// Parses `input` (named `name` in messages), writing records through
/// `report`. Damage that leaves the rest readable (a malformed text
/// line, a truncated page) is a warning on stderr.
pub fn parse<R: Read, W: Write>(
    mut input: R,
    name: &str,
    q: &Query,
    report: &mut Report<W>,
) -> Result<(), HostError> {
    let read_err = |e| HostError::Io(format!("cannot read {name}"), e);
    let mut prefix = Vec::with_capacity(Format::PREFIX_LEN);
    (&mut input)
        .take(Format::PREFIX_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(read_err)?;
    match Format::detect(&prefix) {
        Format::Text => {
            let r = BufReader::new(prefix.as_slice().chain(input));
            emit(text_items(r), q, report);
        }
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
                report,
            );
        }
    }
    Ok(())
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

fn warn(msg: &str) {
    eprintln!("whosent-deploy: warning: {msg}");
}

/// Writes the records that match `q`, then the `end` record.
fn emit<W: Write>(
    items: impl Iterator<Item = Result<DatItem, String>>,
    q: &Query,
    report: &mut Report<W>,
) {
    let mut buf = String::new();
    let (mut signals, mut lost) = (0u64, 0u64);
    for item in items {
        buf.clear();
        match item {
            Ok(DatItem::Signal(e)) => {
                if !q.matches(&e) {
                    continue;
                }
                signals += 1;
                e.encode(&mut buf);
            }
            Ok(DatItem::Lost { cpu, count }) => {
                lost += count.unwrap_or(0);
                Lost { cpu, count }.encode(&mut buf);
            }
            Err(e) => {
                warn(&e);
                continue;
            }
        }
        // A closed stdout (`| head`) ends the output, not as an error.
        if report.line(buf.as_bytes()).is_err() {
            return;
        }
    }
    buf.clear();
    End {
        reason: EndReason::Eof,
        signals,
        lost,
    }
    .encode(&mut buf);
    let _ = report.line(buf.as_bytes());
}
