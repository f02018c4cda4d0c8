//! signal_generate events from a trace.dat, as whosent's records.
//!
//! The record has no sender comm; like `trace-cmd report`, it comes from
//! the saved_cmdlines in the file, `<idle>` for pid 0 and `<...>` when
//! the kernel no longer had the task's name.

use super::records::{Record, Records};
use super::{TraceDat, TraceDatError};
use crate::signal_generate::SignalLayout;
use std::collections::HashMap;
use whosent_proto::record::{Outcome, SignalEvent, Task};

/// What one step of a trace.dat gave.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // reason: items are handed on one at a time, never stored in bulk; boxing would allocate per event
pub enum DatItem {
    Signal(SignalEvent),
    Lost { cpu: u32, count: Option<u64> },
}

pub struct Signals<'a> {
    records: Records<'a>,
    /// `None` when the file has no signal_generate format: then no
    /// record is a signal.
    layout: Option<SignalLayout>,
    cmdlines: &'a HashMap<i32, String>,
}

impl<'a> TraceDat<'a> {
    /// The signals and losses, in timestamp order. Damaged pages come
    /// as errors in their place; the iteration goes on after them.
    pub fn signals(&'a self) -> Result<Signals<'a>, TraceDatError> {
        let layout = match self.format("signal_generate") {
            Some(f) => Some(SignalLayout::new(f).map_err(|e| TraceDatError::Format {
                event: "signal/signal_generate".into(),
                msg: e.0,
            })?),
            None => None,
        };
        Ok(Signals {
            records: self.records(),
            layout,
            cmdlines: &self.cmdlines,
        })
    }
}

impl Signals<'_> {
    /// Whether the file can hold signals at all (it was recorded with
    /// `-e signal:signal_generate`).
    pub fn has_signal_format(&self) -> bool {
        self.layout.is_some()
    }

    fn comm(&self, tid: i32) -> String {
        match (tid, self.cmdlines.get(&tid)) {
            (0, _) => "<idle>".into(),
            (_, Some(c)) => c.clone(),
            (_, None) => "<...>".into(),
        }
    }
}

impl Iterator for Signals<'_> {
    type Item = Result<DatItem, TraceDatError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (cpu, event) = match self.records.next()? {
                Err(e) => return Some(Err(e)),
                Ok(Record::Lost { cpu, count, .. }) => {
                    return Some(Ok(DatItem::Lost { cpu, count }))
                }
                Ok(Record::Event { cpu, event, .. }) => (cpu, event),
            };
            let Some(layout) = &self.layout else { continue };
            if event.id() != Some(layout.id) {
                continue;
            }
            let Some(s) = layout.decode(event.data) else {
                return Some(Err(TraceDatError::Format {
                    event: "signal/signal_generate".into(),
                    msg: format!(
                        "a {}-byte record is too short for the format",
                        event.data.len()
                    ),
                }));
            };
            let running = self.comm(s.running_tid);
            return Some(Ok(DatItem::Signal(SignalEvent {
                ts_ns: event.ts,
                cpu,
                sig: s.sig,
                code: s.code,
                errno: s.errno,
                group: s.group,
                result: s.result.map(Outcome::from_raw),
                context: s.context,
                running: Task {
                    pid: None,
                    tid: s.running_tid,
                    comm: running,
                    ..Default::default()
                },
                target: Task {
                    pid: None,
                    tid: s.target_tid,
                    comm: s.target_comm,
                    ..Default::default()
                },
                cause: None,
                oom: None,
            })));
        }
    }
}
