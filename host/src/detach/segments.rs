//! A capture's segments read from the board and decoded here, by the
//! live run's pipeline ([`crate::stream::Feed`] into one
//! [`crate::session::Session`]): what `collect` and `stop` print.
//!
//! The segments are read with `cat` and `tail -c +N` over the transport
//! (a board may have neither scp nor sftp). The oldest one present is
//! decoded as a fresh stream; each later one continues it (its preamble
//! skipped, the process table carried on). Segments deleted before it
//! (the storage filled) are a loss: stat's `dropped`, told in a `lost`
//! record after the ready (docs/json-schema.md). Segments deleted while
//! they are read (the recorder goes on, and the board's processes,
//! collect's own commands among them, fill it) are counted once they are
//! read, from stat again ([`Loss`]): a second `lost` record before the
//! end.

use super::cursor::Cursor;
use super::listing::{Capture, Stat, State};
use super::Board;
use crate::error::HostError;
use crate::report::Report;
use crate::session::{Limits, Session, Stop};
use crate::ssh::upload::quote;
use crate::stream::Feed;
use crate::transport::Flow;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use whosent_proto::decode::Record;
use whosent_proto::record::{EndReason, ErrorRec};

/// How `collect` and `stop` print.
#[derive(Debug, Clone, Default)]
pub struct Print {
    pub json: bool,
    /// Every signal of a storm (no folding).
    pub every: bool,
    /// `stop`'s SIGTERM to this pid (the agent) is its own doing: not
    /// reported.
    pub stopped: Option<i32>,
}

/// What was printed: the exit status, and where the records ended.
pub struct Printed {
    pub status: i32,
    pub at: Cursor,
    pub signals: u64,
}

/// A segment's file name.
pub fn name(index: u64) -> String {
    format!("seg.{index:08}")
}

/// The capture's query, from its `meta`.
pub fn query(c: &Capture) -> Result<whosent_proto::query::Query, HostError> {
    let words = shlex::split(c.meta("query").unwrap_or("")).unwrap_or_default();
    let pairs: Vec<(&str, &str)> = words
        .chunks(2)
        .filter_map(|w| Some((w[0].as_str(), w.get(1)?.as_str())))
        .collect();
    crate::query::from_pairs(pairs).map_err(|e| {
        HostError::other(
            format!("capture {}: its query cannot be read back: {e}", c.id),
            "stop it and start it again with this whosent-deploy",
        )
    })
}

/// Where reading is: the segment and the bytes of it read.
struct Pos {
    seg: Option<u64>,
    offset: u64,
}

struct Reader<'b, 'x, 'a> {
    b: &'b Board<'b>,
    dir: String,
    feed: Feed,
    s: &'x mut Session<'a>,
    pos: Pos,
    gone: bool,
    /// Each segment read (from its start): its signal events read, as
    /// the recorder counts them.
    read: Vec<(u64, u64)>,
}

impl Reader<'_, '_, '_> {
    /// Bytes of segment `index` from `offset` on; `None` if it is gone.
    fn read(&self, index: u64, offset: u64) -> Result<Option<Vec<u8>>, HostError> {
        let path = quote(&format!("{}/{}", self.dir, name(index)));
        let cmd = if offset == 0 {
            format!("cat {path}")
        } else {
            format!("tail -c +{} {path}", offset + 1)
        };
        let out = self.b.run(&cmd)?;
        Ok((out.status == 0).then_some(out.stdout))
    }

    /// Feeds segment `index` (from where it was left, if it is the
    /// current one).
    fn segment(&mut self, index: u64) -> Result<(), HostError> {
        if self.gone {
            return Ok(());
        }
        let offset = match self.pos.seg {
            Some(cur) if cur == index => self.pos.offset,
            _ => 0,
        };
        let Some(bytes) = self.read(index, offset)? else {
            // Deleted before it was read (or its rest): its signal
            // events are counted lost at the end (Loss).
            return Ok(());
        };
        if let Some(prev) = self.pos.seg.filter(|_| offset == 0) {
            // Deleted in between (signal-free ones go first, and a
            // segment can go while it is read).
            let pending = self.feed.next_segment(index != prev + 1);
            if pending > 0 {
                say!(
                    "whosent-deploy: warning: capture segment {} ended inside a frame ({pending} bytes dropped)",
                    name(self.pos.seg.unwrap_or(0))
                );
            }
        }
        self.pos = Pos {
            seg: Some(index),
            offset: offset + bytes.len() as u64,
        };
        let before = self.feed.generated();
        for chunk in bytes.chunks(1 << 16) {
            if self.feed.bytes(chunk, self.s) == Flow::Stop {
                self.gone = true;
                break;
            }
        }
        let n = self.feed.generated() - before;
        match self.read.last_mut() {
            Some(l) if l.0 == index => l.1 += n,
            _ => self.read.push((index, n)),
        }
        Ok(())
    }

    /// The stat and the segments present, once they agree: no segment
    /// with a signal was deleted between the stat's writing and the
    /// listing of the segments, read after it. The recorder deletes the
    /// oldest segment whenever none without a signal is there to go
    /// first, so while the oldest segment present is the stat's `first`
    /// none with a signal went (target-agent/src/segments.rs
    /// `Segments::put`): its `dropped` is then all the deleted ones'.
    /// The stat is written at most once a second, so a listing after a
    /// deletion may come before it: while the agent records (`live`)
    /// tried again for up to 10 s (a loaded board's agent is slow to
    /// write it); `None` if they never agree.
    fn settled(&self, live: bool) -> Result<Option<Stat>, HostError> {
        let d = quote(&self.dir);
        let script = format!(
            r#"s=; [ -f {d}/stat ] && read -r s <{d}/stat && echo "stat $s"
for f in {d}/seg.*; do [ -f "$f" ] && echo "seg ${{f##*/seg.}}"; done
true"#
        );
        let t0 = std::time::Instant::now();
        loop {
            let out = self.b.run(&script)?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut stat = None;
            let mut oldest: Option<u64> = None;
            for line in text.lines() {
                match line.split_once(' ') {
                    Some(("stat", v)) => stat = Stat::parse(v),
                    Some(("seg", v)) => {
                        if let Ok(i) = v.trim().parse::<u64>() {
                            oldest = Some(oldest.map_or(i, |o| o.min(i)));
                        }
                    }
                    _ => {}
                }
            }
            let Some(mut stat) = stat else {
                return Ok(None);
            };
            // A stat without `first` (not written by a recorder of this
            // version) is taken as it is, with the segments present.
            stat.first = stat.first.or(oldest);
            if oldest.is_none() || stat.first == oldest {
                return Ok(Some(stat));
            }
            if !live || t0.elapsed() > Duration::from_secs(10) {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The loss of a capture's deleted segments, exactly: signal events in
/// them that no collect read.
///
/// The recorder numbers its signal events in order, across segments
/// (stat's `signals`), and deletes those with a signal oldest first:
/// stat's `dropped` is the number of those in the segments before its
/// `first`. A reader reads each segment from its start, maybe only
/// part of it (the current one, or one deleted before the rest was
/// read), and counts the events it read there as the recorder does
/// (`signal_generate` events, matched or not). So of the segments
/// before `first` it missed `dropped` minus what it read of them; and
/// of the capture it has accounted for `dropped` plus what it read of
/// the segments from `first` on. A later reader (`stop`) starts from
/// there ([`Cursor`]): what was accounted for before is not lost again,
/// nor what was read of the segment the earlier one read last.
struct Loss {
    /// Accounted for by an earlier reader (its cursor): all events up
    /// to `accounted`, `raw` events of segment `seg`, `lost` told lost.
    accounted: Option<u64>,
    seg: u64,
    raw: u64,
    lost: u64,
}

impl Loss {
    fn after(c: Option<Cursor>) -> Loss {
        match c {
            Some(c) => Loss {
                accounted: c.accounted,
                seg: c.seg,
                raw: c.raw,
                lost: c.lost,
            },
            None => Loss {
                accounted: Some(0),
                seg: 0,
                raw: 0,
                lost: 0,
            },
        }
    }

    /// Events read of segment `s` (`n` of them from its start) that
    /// the earlier reader had not read.
    fn new_of(&self, s: u64, n: u64) -> u64 {
        match s.cmp(&self.seg) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Equal => n.saturating_sub(self.raw),
            std::cmp::Ordering::Greater => n,
        }
    }

    /// The loss known at the listing (stat's `dropped`): told after the
    /// ready record.
    fn before(&self, dropped: u64) -> u64 {
        self.accounted.map_or(0, |a| dropped.saturating_sub(a))
    }

    /// With the stat read after the segments (`None`: it never agreed
    /// with them) and what was read of each: all the loss since the
    /// earlier reader, and where this one leaves the accounting.
    fn total(&self, stat: Option<&Stat>, read: &[(u64, u64)]) -> Option<(u64, u64)> {
        let (a, st) = (self.accounted?, stat?);
        let first = st.first.unwrap_or(0);
        let seen: u64 = read
            .iter()
            .filter(|r| r.0 < first)
            .map(|r| self.new_of(r.0, r.1))
            .sum();
        let lost = st.dropped.saturating_sub(a).saturating_sub(seen);
        let on: u64 = read.iter().filter(|r| r.0 >= first).map(|r| r.1).sum();
        Some((lost, (st.dropped + on).max(a)))
    }
}

/// Prints capture `c` (in state `state`) to `out`: its records past
/// `skip`, as a live run prints them. With `follow` (Ctrl-C's flag) it
/// then prints new records as they are recorded, until the flag is set
/// or the capture ends.
pub fn print(
    b: &Board<'_>,
    c: &Capture,
    state: State,
    how: &Print,
    skip: Option<Cursor>,
    out: &mut dyn Write,
    follow: Option<&AtomicBool>,
) -> Result<Printed, HostError> {
    let q = query(c)?;
    let stat = c.stat.clone().unwrap_or_default();
    let recording = matches!(state, State::Alive | State::Starting);
    // Deleted segments: the ones before the oldest present. Only the
    // loss since the cursor is told again; the end counts all of it.
    let deleted = c.segments.first().copied().unwrap_or(0);
    let loss = Loss::after(skip);
    let told = loss.before(stat.dropped);
    let mut feed = Feed::new(q, None, None, !how.json && !how.every);
    if let Some(pid) = how.stopped {
        feed = feed.ignore(pid, libc::SIGTERM);
    }
    let feed = feed.detached(
        recording,
        skip,
        told,
        stat.dropped_segments.max(deleted),
        loss.lost + told,
    );
    let mut report = Report::new(&mut *out as &mut dyn Write, how.json, b.label());
    // The live run's "tracing…" and summary lines are not collect's.
    report.quiet = true;
    let halt = Stop::default();
    let mut s = Session::new(report, Limits::default(), &halt);
    let mut r = Reader {
        b,
        dir: b.path(&c.id),
        feed,
        s: &mut s,
        pos: Pos {
            seg: None,
            offset: 0,
        },
        gone: false,
        read: Vec::new(),
    };
    for &i in &c.segments {
        r.segment(i)?;
    }
    let mut state = state;
    if let Some(ctrl_c) = follow.filter(|_| recording) {
        state = follow_on(&mut r, c, ctrl_c)?;
    }
    // What was deleted while it was read: the stat again, once it
    // agrees with the segments present (a finished capture's at once).
    // Without a stat (a starting agent's) nothing was deleted.
    let settled = match c.stat {
        Some(_) => r.settled(matches!(state, State::Alive | State::Starting))?,
        None => Some(Stat::default()),
    };
    let total = loss.total(settled.as_ref(), &r.read);
    let during = settled.as_ref().map_or(0, |n| {
        n.dropped_segments.saturating_sub(stat.dropped_segments)
    });
    let last = r.read.last().copied();
    let Reader { mut feed, s, .. } = r;
    feed.lost_at_end(total.map(|t| t.0.saturating_sub(told)), during);
    let cut = match state {
        State::Died => {
            s.record(
                &Record::Error(ErrorRec {
                    kind: "agent_died".into(),
                    message: format!(
                        "the agent of capture {} on {} died during the capture (kill -9, the OOM killer), without its end record",
                        c.id, b.host
                    ),
                    help: "the signals it recorded before are reported; look for why in the board's kernel log (dmesg); `whosent-deploy stop` removes what it left".into(),
                }),
                None,
            );
            EndReason::Error
        }
        State::Rebooted => {
            say!(
                "whosent-deploy: warning: {} rebooted since capture {} started: the capture ended then; this is what its storage kept",
                b.host, c.id
            );
            EndReason::Eof
        }
        _ if follow.is_some_and(|f| f.load(Ordering::SeqCst)) => crate::interrupt::reason(),
        _ => EndReason::Eof,
    };
    feed.finish(cut, None, s);
    if let Some(e) = s.output_error() {
        return Err(e);
    }
    let mut at = feed.position();
    (at.seg, at.raw) = last.unwrap_or((loss.seg, loss.raw));
    at.accounted = total.map(|t| t.1);
    at.lost = total.map_or(0, |t| loss.lost + t.0);
    Ok(Printed {
        status: s.status(0),
        at,
        signals: s.written(),
    })
}

/// `--follow`: new bytes of the current segment and new segments, about
/// twice a second, until Ctrl-C or the capture's end; returns its state
/// then.
fn follow_on(
    r: &mut Reader<'_, '_, '_>,
    c: &Capture,
    ctrl_c: &AtomicBool,
) -> Result<State, HostError> {
    loop {
        for _ in 0..10 {
            if ctrl_c.load(Ordering::SeqCst) || r.gone {
                return Ok(State::Alive);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let l = r.b.list()?;
        let Some(now) = l.captures.iter().find(|x| x.id == c.id) else {
            say!(
                "whosent-deploy: capture {} on {} was stopped by someone else",
                c.id,
                r.b.host
            );
            return Ok(State::Ended);
        };
        let state = l.state(now);
        // The current segment's rest first (complete once a newer one
        // exists), then the newer ones.
        if let Some(cur) = r.pos.seg {
            if now.segments.contains(&cur) {
                r.segment(cur)?;
            }
        }
        let newer: Vec<u64> = now
            .segments
            .iter()
            .copied()
            .filter(|&i| r.pos.seg.is_none_or(|c| i > c))
            .collect();
        for i in newer {
            r.segment(i)?;
        }
        if !matches!(state, State::Alive | State::Starting) {
            return Ok(state);
        }
    }
}

/// Saves where the records printed end, for `stop` (`collected`).
pub fn save_cursor(b: &Board<'_>, id: &str, at: &Cursor) -> Result<(), HostError> {
    let path = format!("{}/collected", b.path(id));
    let out = b.run(&format!(
        "printf '%s\\n' {} >{}",
        quote(&at.line()),
        quote(&path)
    ))?;
    if out.status != 0 {
        say!(
            "whosent-deploy: warning: cannot note on {} how far capture {id} was collected: {}; `stop` will print all of it",
            b.host,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The one-line summary on stderr, for a person.
pub fn summary(b: &Board<'_>, c: &Capture, state: State, p: &Printed, json: bool) {
    if json && !io::stderr().is_terminal() {
        return;
    }
    let stat = c.stat.clone().unwrap_or_default();
    // The loss this collect counted: stat's `dropped` also has the
    // segments deleted after they were read (and printed).
    let lost = match p.at.accounted {
        Some(_) => p.at.lost.to_string(),
        None => "an unknown number".into(),
    };
    say!(
        "whosent: capture {} on {}: {} signal(s) reported; {} recorded, {} lost; {} used; {}",
        c.id,
        b.host,
        p.signals,
        stat.signals,
        lost,
        super::size::human(stat.bytes),
        state.as_str()
    );
}
