//! Storms folded in the kernel (the eBPF backend's `--fold`, issue #15):
//! the program sends a key's first signal in full and only counts its
//! repeats, keyed by (sender tgid, target tgid, sig, code, result) as
//! the host folds (host/src/fold.rs). The counts come from its `folds`
//! map, read by the agent on the board; here they become `repeat`
//! records, on the board (the agent run alone) or on the host (REPEAT
//! frames of the capture stream).
//!
//! A count only grows, so what it grew by since the last record is
//! exact. A key's repeats are reported only once its first signal was
//! (the first may still be held back, or not match the query).

use std::collections::HashMap;
use whosent_proto::record::{Context, Outcome, RepeatRec, SignalEvent};
pub use whosent_stream::frame::Repeat as Count;

/// A fold key, as the program's `struct fold_key` (ebpf/event.h).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Key {
    pub sender: i32,
    pub target: i32,
    pub sig: i32,
    pub code: i32,
    /// -1 where the event has no result field.
    pub result: i32,
}

impl Key {
    /// The key the program gave `e`, if it could have folded it: sent in
    /// task context (by the running task, or by the kernel in its
    /// context: a SIGCHLD, a SIGPIPE), to a known process, not a SIGKILL
    /// (ebpf/signal.bpf.c).
    pub fn of(e: &SignalEvent) -> Option<Self> {
        if e.context != Context::Task || e.sig == 9 {
            return None;
        }
        Some(Key {
            sender: e.running.pid?,
            target: e.target.pid?,
            sig: e.sig,
            code: e.code,
            result: e.result.map_or(-1, Outcome::as_raw),
        })
    }

    pub fn of_count(c: &Count) -> Self {
        Key {
            sender: c.sender,
            target: c.target,
            sig: c.sig,
            code: c.code,
            result: c.result,
        }
    }
}

#[derive(Debug, Default)]
pub struct Repeats {
    /// Keys whose first signal was reported: the repeats reported, and
    /// whether it had a sender (not one the kernel sent).
    reported: HashMap<Key, (u64, bool)>,
    /// The kernel's latest count of each key not yet reported in full.
    counts: HashMap<Key, Count>,
    /// Repeats reported in all.
    pub repeats: u64,
}

impl Repeats {
    /// A signal was reported.
    pub fn signal(&mut self, e: &SignalEvent) {
        if let Some(k) = Key::of(e) {
            self.reported.entry(k).or_insert((0, e.sender().is_some()));
        }
    }

    /// The kernel's count so far of one key.
    pub fn count(&mut self, c: Count) {
        self.counts.insert(Key::of_count(&c), c);
    }

    /// A `repeat` record for each reported key whose count grew.
    pub fn due(&mut self, f: &mut dyn FnMut(&RepeatRec)) {
        let reported = &mut self.reported;
        let repeats = &mut self.repeats;
        self.counts.retain(|k, c| {
            let Some((seen, sender)) = reported.get_mut(k) else {
                return true;
            };
            if c.count > *seen {
                f(&RepeatRec {
                    ts_ns: c.last,
                    first_ns: c.first,
                    // As the host folds: no sender when the kernel sent
                    // the first in the running task's context.
                    sender: sender.then_some(c.sender),
                    running: c.sender,
                    target: c.target,
                    sig: c.sig,
                    code: c.code,
                    result: (c.result >= 0).then(|| Outcome::from_raw(c.result)),
                    count: c.count - *seen,
                });
                *repeats += c.count - *seen;
                *seen = c.count;
            }
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whosent_proto::record::Task;

    fn signal(sender: i32, target: i32) -> SignalEvent {
        SignalEvent {
            ts_ns: 1,
            cpu: 0,
            sig: 10,
            code: 0,
            errno: 0,
            group: Some(true),
            result: Some(Outcome::Delivered),
            context: Context::Task,
            running: Task {
                pid: Some(sender),
                tid: sender,
                ..Default::default()
            },
            target: Task {
                pid: Some(target),
                tid: target,
                ..Default::default()
            },
            cause: None,
            oom: None,
        }
    }

    fn count(sender: i32, n: u64) -> Count {
        Count {
            sender,
            target: 650,
            sig: 10,
            code: 0,
            result: 0,
            count: n,
            first: 1,
            last: 100 + n,
        }
    }

    #[test]
    fn a_repeat_waits_for_its_first_and_then_counts_what_grew() {
        let mut r = Repeats::default();
        let mut got = Vec::new();
        r.count(count(812, 5));
        r.due(&mut |x| got.push(x.clone()));
        assert!(got.is_empty(), "its first is not reported yet");
        r.signal(&signal(812, 650));
        r.due(&mut |x| got.push(x.clone()));
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].count, got[0].sender, got[0].ts_ns),
            (5, Some(812), 105)
        );
        r.count(count(812, 5));
        r.count(count(812, 12));
        r.due(&mut |x| got.push(x.clone()));
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].count, 7);
        assert_eq!(r.repeats, 12);
        // Another sender's key is its own.
        r.count(count(900, 3));
        r.due(&mut |x| got.push(x.clone()));
        assert_eq!(got.len(), 2);
    }
}
