//! `whosent-deploy parse`: recorded ftrace text into the same records
//! and lines as a live capture, for traces users already have.

use crate::error::HostError;
use crate::report::Report;
use crate::session::{Limits, Session, Stop};
use crate::transport::Flow;
use std::io::{BufRead, Write};
use whosent_ftrace::text::{self, TextItem};
use whosent_proto::decode::Record;
use whosent_proto::query::Query;
use whosent_proto::record::{EndReason, Lost};

/// Parses `input`, writing records to `out` (JSON Lines with `json`);
/// returns the exit status. Malformed signal_generate lines are reported
/// on stderr and skipped.
pub fn parse<R: BufRead>(
    input: R,
    q: &Query,
    out: &mut dyn Write,
    json: bool,
) -> Result<i32, HostError> {
    let mut report = Report::new(&mut *out as &mut dyn Write, json, None);
    report.quiet = true;
    let stop = Stop::default();
    let mut session = Session::new(report, Limits::default(), &stop);
    for item in text::parse(input) {
        let flow = match item {
            Ok(TextItem::Signal(s)) => {
                let e = s.into_event();
                if !q.matches(&e) {
                    continue;
                }
                session.signal(e)
            }
            Ok(TextItem::Lost { cpu, count }) => {
                let lost = Lost {
                    cpu: cpu.unwrap_or(0),
                    count,
                };
                session.record(&Record::Lost(lost), None)
            }
            Err(e) => {
                // The line may hold names from the board.
                eprintln!(
                    "whosent-deploy: warning: {}",
                    whosent_proto::escape::escape(&e.to_string())
                );
                continue;
            }
        };
        if flow == Flow::Stop {
            return Ok(session.status(0));
        }
    }
    session.end(EndReason::Eof);
    Ok(session.status(0))
}
