//! A whole capture stream to records: the formats build the layouts,
//! READY starts the pipeline, pages and rounds feed it, PROC frames are
//! the /proc facts, and the end (END, ERROR, or a cut) becomes the
//! `end` record with the loss accounted for.

use crate::facts::Received;
use crate::pipeline::{Layouts, Lineage, Pipeline, Sink};
use crate::repeat::Repeats;
use whosent_ftrace::fate_events::FateLayouts;
use whosent_ftrace::format::EventFormat;
use whosent_ftrace::header_page::PageLayout;
use whosent_ftrace::signal_generate::SignalLayout;
use whosent_ftrace::task_events::TaskLayouts;
use whosent_ftrace::uid_events::UidLayouts;
use whosent_proto::query::Query;
use whosent_proto::record::{
    End, EndReason, ErrorRec, ExitRec, Lost, Ready, RepeatRec, SignalEvent,
};
use whosent_proto::SCHEMA_VERSION;
use whosent_stream::decode::Ending;
use whosent_stream::frame::{reason, role, Frame, ProcFacts};

/// Everything a session reports, in order.
pub trait Records: Sink {
    fn ready(&mut self, r: &Ready);
    fn end(&mut self, e: &End);
    fn error(&mut self, e: &ErrorRec);
    /// Signals folded in the kernel (the eBPF agent's `--fold`).
    fn repeat(&mut self, r: &RepeatRec);
}

/// The records, with each reported signal noted for the repeats that
/// may follow it.
struct Noting<'a> {
    out: &'a mut dyn Records,
    repeats: &'a mut Repeats,
}

impl Sink for Noting<'_> {
    fn signal(&mut self, e: &SignalEvent, lineage: Option<&Lineage>) {
        self.repeats.signal(e);
        self.out.signal(e, lineage);
    }
    fn lost(&mut self, l: &Lost) {
        self.out.lost(l);
    }
    fn exit(&mut self, x: &ExitRec) {
        self.out.exit(x);
    }
}

/// What the eBPF program read of the running task, for the pipeline.
#[cfg(feature = "kernel-facts")]
fn kernel(f: Option<whosent_stream::frame::Facts>) -> crate::pipeline::Kernel {
    f.map(|f| Box::new(f.into()))
}

/// Without the feature the facts are not used: the host, which reads
/// the eBPF agent's streams, has it.
#[cfg(not(feature = "kernel-facts"))]
fn kernel(_: Option<whosent_stream::frame::Facts>) -> crate::pipeline::Kernel {
    None
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError(pub String);

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SessionError {}

fn bad(what: &str, e: impl std::fmt::Display) -> SessionError {
    SessionError(format!("the capture stream's {what}: {e}"))
}

pub struct Session {
    query: Query,
    count: Option<u64>,
    page: Option<PageLayout>,
    signal: Option<SignalLayout>,
    tasks: TaskLayouts,
    uid: UidLayouts,
    fate: FateLayouts,
    /// End when every `--pid` target has ended.
    pub until_exit: bool,
    snapshot: Vec<ProcFacts>,
    facts: Received,
    pipeline: Option<Pipeline>,
    repeats: Repeats,
    cpus: Vec<u32>,
    stats: Vec<(u32, u64)>,
    reason: Option<EndReason>,
    /// An END or ERROR frame was read.
    pub ended: bool,
    /// The capture is still being recorded (a detached capture read so
    /// far): the end of the input is where the recorder has got to, not
    /// a cut.
    pub recording: bool,
    /// Events lost before this stream's first frame, added to the `end`
    /// record's `lost`: a detached capture's deleted segments.
    pub lost_before: u64,
    /// The next frames are a continuing segment's preamble (its
    /// FORMAT, snapshot PROC and READY frames): skipped, up to its READY.
    continuing: bool,
    /// With `continuing`, after deleted segments: the snapshot is
    /// learned, not skipped.
    relearn: bool,
}

fn end_reason(r: u8) -> EndReason {
    match r {
        reason::COUNT => EndReason::Count,
        reason::DURATION => EndReason::Duration,
        reason::INTERRUPTED => EndReason::Interrupted,
        reason::TERMINATED => EndReason::Terminated,
        reason::HANGUP => EndReason::Hangup,
        reason::STDIN_CLOSED => EndReason::StdinClosed,
        reason::OUTPUT_CLOSED => EndReason::OutputClosed,
        _ => EndReason::Error,
    }
}

impl Session {
    /// A session matching `query` (its pids as the user gave them: the
    /// READY frame replaces them with the board's resolution).
    pub fn new(query: Query, count: Option<u64>) -> Self {
        Session {
            query,
            count,
            page: None,
            signal: None,
            tasks: TaskLayouts::default(),
            uid: UidLayouts::default(),
            fate: FateLayouts::default(),
            until_exit: false,
            snapshot: Vec::new(),
            facts: Received::default(),
            pipeline: None,
            repeats: Repeats::default(),
            cpus: Vec::new(),
            stats: Vec::new(),
            reason: None,
            ended: false,
            recording: false,
            lost_before: 0,
            continuing: false,
            relearn: false,
        }
    }

    /// The next frames come from the next segment of the same detached
    /// capture (docs/detached.md): a complete stream of its own whose
    /// preamble repeats what this session already has. Its FORMAT,
    /// snapshot PROC and READY frames are skipped, and the process table
    /// carries on: the snapshot was taken later than the events this
    /// table followed, and would replace what they told (the parents a
    /// process had when it started) with what /proc says now. Before any
    /// READY (the first segment was cut short) nothing is skipped.
    ///
    /// `after_gap`: segments between the last one read and this one were
    /// deleted (the recorder drops segments without a signal first, so
    /// holes are usual on an idle board). Then the table missed their
    /// task events, and this segment's snapshot is the better word on
    /// every process alive at its start: it is learned over the table.
    pub fn next_segment(&mut self, after_gap: bool) {
        self.continuing = self.pipeline.is_some();
        self.relearn = after_gap;
    }

    /// Signals reported so far.
    pub fn signals(&self) -> u64 {
        self.pipeline.as_ref().map_or(0, |p| p.signals) + self.repeats.repeats
    }

    /// signal_generate events read so far, matched or not
    /// ([`Pipeline::generated`]).
    pub fn generated(&self) -> u64 {
        self.pipeline.as_ref().map_or(0, |p| p.generated)
    }

    /// `--count` was reached: the caller may stop the agent.
    pub fn done(&self) -> bool {
        self.pipeline.as_ref().is_some_and(|p| p.done)
    }

    /// Why the session is done: `--count`, or `--until-exit`.
    pub fn done_reason(&self) -> EndReason {
        match &self.pipeline {
            Some(p) if p.targets_exited => EndReason::TargetsExited,
            _ => EndReason::Count,
        }
    }

    fn format(&mut self, role_: u8, text: &[u8]) -> Result<(), SessionError> {
        if role_ == role::HEADER_PAGE {
            self.page = Some(PageLayout::parse(text).map_err(|e| bad("header_page", e))?);
            return Ok(());
        }
        let f = EventFormat::parse(text).map_err(|e| bad("format", e))?;
        match role_ {
            role::SIGNAL => {
                self.signal = Some(SignalLayout::new(&f).map_err(|e| bad("format", e))?)
            }
            role::ARGV => self.tasks.add_argv(&f).map_err(|e| bad("format", e))?,
            // Without one of them fewer deaths and OOM kills are told.
            role::FATE => {
                let _ = self.fate.add(&f);
            }
            // A task or uid event this reader cannot use names fewer
            // exited tasks; it does not stop the capture.
            _ if f.name.starts_with("sys_") => {
                let _ = self.uid.add(&f);
            }
            _ => {
                let _ = self.tasks.add(&f);
            }
        }
        Ok(())
    }

    /// Takes one frame.
    pub fn frame(&mut self, f: Frame<'_>, out: &mut dyn Records) -> Result<(), SessionError> {
        if self.continuing {
            match f {
                Frame::Format { .. } => return Ok(()),
                Frame::Proc(p) if p.why == whosent_stream::frame::why::SNAPSHOT => {
                    if self.relearn {
                        if let Some(pl) = &mut self.pipeline {
                            pl.table.learn(p);
                        }
                    }
                    return Ok(());
                }
                Frame::Ready(_) => {
                    self.continuing = false;
                    return Ok(());
                }
                _ => self.continuing = false,
            }
        }
        match f {
            Frame::Format { role, text } => self.format(role, text)?,
            Frame::Ready(r) => {
                let (Some(page), Some(signal)) = (self.page, self.signal.clone()) else {
                    return Err(SessionError("the capture stream has no header_page or signal_generate format before READY".into()));
                };
                let mut q = self.query.clone();
                if q.pid_ns.is_some() || !r.pids.is_empty() || !r.sender_pids.is_empty() {
                    (q.pids, q.sender_pids, q.pid_ns) =
                        (r.pids.clone(), r.sender_pids.clone(), None);
                }
                let layouts = Layouts {
                    page,
                    signal,
                    tasks: std::mem::take(&mut self.tasks),
                    uid: if r.uid_events {
                        std::mem::take(&mut self.uid)
                    } else {
                        UidLayouts::default()
                    },
                    fate: std::mem::take(&mut self.fate),
                };
                let mut p = Pipeline::new(layouts, q, r.lineage, self.count);
                p.until_exit = self.until_exit;
                for s in self.snapshot.drain(..) {
                    p.table.learn(s);
                }
                self.pipeline = Some(p);
                self.cpus = r.cpus.clone();
                out.ready(&Ready {
                    v: SCHEMA_VERSION,
                    agent: r.agent,
                    backend: if r.ebpf { "ebpf" } else { "ftrace" }.into(),
                    kernel: r.kernel,
                    arch: r.arch,
                    instance: r.instance,
                    filter: r.filter,
                });
            }
            Frame::Proc(p) => match &mut self.pipeline {
                None => self.snapshot.push(p),
                Some(pl) if p.why == whosent_stream::frame::why::SNAPSHOT => pl.table.learn(p),
                Some(_) => self.facts.add(p),
            },
            Frame::Page { cpu, data } => {
                let p = self
                    .pipeline
                    .as_mut()
                    .ok_or_else(|| SessionError("a page before READY".into()))?;
                p.page(cpu, data, out)
                    .map_err(|e| bad(&format!("page from cpu {cpu}"), e))?;
            }
            Frame::Event {
                cpu,
                ts,
                facts,
                record,
            } => {
                let p = self
                    .pipeline
                    .as_mut()
                    .ok_or_else(|| SessionError("an event before READY".into()))?;
                p.record(cpu, ts, record, kernel(facts));
            }
            Frame::Round { cut } => {
                if let Some(p) = &mut self.pipeline {
                    let mut sink = Noting {
                        out: &mut *out,
                        repeats: &mut self.repeats,
                    };
                    p.end_round(&self.cpus, &cut, &mut self.facts, &mut sink);
                    self.repeats.due(&mut |r| out.repeat(r));
                }
            }
            Frame::Repeat(c) => {
                self.repeats.count(c);
                self.repeats.due(&mut |r| out.repeat(r));
            }
            Frame::Stats(s) => self.stats = s,
            Frame::End { reason } => {
                self.ended = true;
                self.reason = Some(end_reason(reason));
            }
            Frame::Error {
                kind,
                message,
                help,
            } => {
                self.ended = true;
                out.error(&ErrorRec {
                    kind,
                    message,
                    help,
                });
            }
            Frame::Unknown { .. } => {}
        }
        Ok(())
    }

    /// Ends the session: what is held back is applied, the kernel's loss
    /// counters are reconciled with what the pages said, and the `end`
    /// record is written. A cut stream (`cut_reason` names why: a
    /// dropped link, the end of a file) reports its loss as unknown on
    /// every CPU, since what it would have carried is gone.
    pub fn finish(&mut self, ending: &Ending, cut_reason: EndReason, out: &mut dyn Records) {
        let Some(p) = &mut self.pipeline else {
            return;
        };
        let mut sink = Noting {
            out: &mut *out,
            repeats: &mut self.repeats,
        };
        p.finish(&mut self.facts, &mut sink);
        self.repeats.due(&mut |r| out.repeat(r));
        let mut lost = 0;
        for &(cpu, by_stats) in &self.stats {
            let reported = p
                .lost_reported
                .iter()
                .find(|l| l.0 == cpu)
                .map_or(0, |l| l.1);
            if by_stats > reported {
                out.lost(&Lost {
                    cpu,
                    count: Some(by_stats - reported),
                });
            }
            lost += by_stats.max(reported);
        }
        if self.stats.is_empty() {
            lost = p.lost_reported.iter().map(|l| l.1).sum();
        }
        lost += self.lost_before;
        let cut = !self.recording && (matches!(ending, Ending::Cut { .. }) || !self.ended);
        if cut {
            for &cpu in &self.cpus {
                out.lost(&Lost { cpu, count: None });
            }
        }
        let reason = if p.targets_exited {
            EndReason::TargetsExited
        } else if p.done {
            EndReason::Count
        } else if cut || (self.recording && !self.ended) {
            cut_reason
        } else {
            self.reason.unwrap_or(cut_reason)
        };
        out.end(&End {
            reason,
            // Folded repeats are signals reported, in their records.
            signals: p.signals + self.repeats.repeats,
            lost,
        });
    }
}

/// Collects records, for tests and for callers that want them typed.
#[derive(Debug, Default)]
pub struct Collect {
    pub ready: Vec<Ready>,
    pub signals: Vec<SignalEvent>,
    pub lost: Vec<Lost>,
    pub end: Vec<End>,
    pub errors: Vec<ErrorRec>,
    pub exits: Vec<ExitRec>,
    pub repeats: Vec<RepeatRec>,
}

impl Sink for Collect {
    fn signal(&mut self, e: &SignalEvent, lineage: Option<&Lineage>) {
        let mut e = e.clone();
        e.running.lineage = lineage.map(|l| l.list.clone());
        self.signals.push(e);
    }
    fn lost(&mut self, l: &Lost) {
        self.lost.push(l.clone());
    }
    fn exit(&mut self, x: &ExitRec) {
        self.exits.push(x.clone());
    }
}

impl Records for Collect {
    fn ready(&mut self, r: &Ready) {
        self.ready.push(r.clone());
    }
    fn end(&mut self, e: &End) {
        self.end.push(e.clone());
    }
    fn error(&mut self, e: &ErrorRec) {
        self.errors.push(e.clone());
    }
    fn repeat(&mut self, r: &RepeatRec) {
        self.repeats.push(r.clone());
    }
}

#[cfg(test)]
mod tests;
