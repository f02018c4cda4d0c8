//! `whosent-deploy parse`: recorded ftrace text into the same records
//! and lines as a live capture, for traces users already have.

use crate::error::HostError;
use crate::report::Report;
use std::io::{BufRead, Write};
use whosent_ftrace::text::{self, TextItem};
use whosent_proto::query::Query;
use whosent_proto::record::{End, EndReason, Lost};

/// Parses `input`, writing records through `report`. Malformed
/// signal_generate lines are reported on stderr and skipped.
pub fn parse<R: BufRead, W: Write>(
    input: R,
    q: &Query,
    report: &mut Report<W>,
) -> Result<(), HostError> {
    let mut buf = String::new();
    let (mut signals, mut lost) = (0u64, 0u64);
    for item in text::parse(input) {
        buf.clear();
        match item {
            Ok(TextItem::Signal(s)) => {
                let e = s.into_event();
                let keep = q.matches(&e);
                if !keep {
                    continue;
                }
                signals += 1;
                e.encode(&mut buf);
            }
            Ok(TextItem::Lost { cpu, count }) => {
                lost += count.unwrap_or(0);
                Lost {
                    cpu: cpu.unwrap_or(0),
                    count,
                }
                .encode(&mut buf);
            }
            Err(e) => {
                eprintln!("whosent-deploy: warning: {e}");
                continue;
            }
        }
        if report.line(buf.as_bytes()).is_err() {
            return Ok(());
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
    Ok(())
}
