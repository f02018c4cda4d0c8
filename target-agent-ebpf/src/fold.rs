//! Storm folding in the kernel (#15): with `--fold` the
//! program sends a key's first signal in full and only counts its
//! repeats in the `folds` map (ebpf/signal.bpf.c), keyed by (sender
//! tgid, target tgid, sig, code, result) as the host folds
//! (host/src/fold.rs). This module reads the counts and writes what grew
//! since the last read as `repeat` records (docs/json-schema.md).
//!
//! The map is never written here: a count only grows, so the difference
//! from the last read is exact, with no repeat lost between a read and a
//! delete. A key's repeats are reported only once its first signal was
//! (the first may still wait in a perf buffer, or not match the query).

use aya::maps::{HashMap, MapData};
use aya::Ebpf;
use std::collections::HashMap as Map;
use whosent_proto::json::Obj;
use whosent_proto::record::{Context, Outcome, SignalEvent};

/// `struct fold_key` (ebpf/event.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FoldKey {
    pub sender: i32,
    pub target: i32,
    pub sig: i32,
    pub code: i32,
    /// -1 where the event has no result field.
    pub result: i32,
}
// SAFETY: five i32s, no padding.
unsafe impl aya::Pod for FoldKey {}

/// `struct fold_value` (ebpf/event.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FoldValue {
    pub count: u64,
    pub first: u64,
    pub last: u64,
}
// SAFETY: three u64s, no padding.
unsafe impl aya::Pod for FoldValue {}

impl FoldKey {
    /// The key the program gave `e`, if it could have folded it: sent in
    /// task context (by the running task, or by the kernel in its
    /// context: a SIGCHLD, a SIGPIPE), to a known process.
    pub fn of(e: &SignalEvent) -> Option<Self> {
        if e.context != Context::Task || e.sig == 9 {
            return None;
        }
        Some(FoldKey {
            sender: e.running.pid?,
            target: e.target.pid?,
            sig: e.sig,
            code: e.code,
            result: e.result.map_or(-1, Outcome::as_raw),
        })
    }
}

#[derive(Default)]
pub struct Folds {
    /// Keys whose first signal was reported: the repeats reported, and
    /// whether it had a sender (not one the kernel sent).
    reported: Map<FoldKey, (u64, bool)>,
    /// Repeats reported in all.
    pub repeats: u64,
}

impl Folds {
    /// A signal was reported.
    pub fn signal(&mut self, e: &SignalEvent) {
        if let Some(k) = FoldKey::of(e) {
            self.reported.entry(k).or_insert((0, e.sender().is_some()));
        }
    }

    /// Writes a `repeat` record for each reported key whose count grew.
    pub fn drain(&mut self, ebpf: &Ebpf, out: &mut String) {
        let Some(map) = ebpf.map("folds") else {
            return;
        };
        let Ok(folds) = HashMap::<&MapData, FoldKey, FoldValue>::try_from(map) else {
            return;
        };
        for (k, v) in folds.iter().flatten() {
            let Some((seen, sender)) = self.reported.get_mut(&k) else {
                continue;
            };
            if v.count > *seen {
                repeat(&k, &v, *sender, v.count - *seen, out);
                self.repeats += v.count - *seen;
                *seen = v.count;
            }
        }
    }
}

/// `{"type":"repeat",...}`: `count` more signals like the first of the
/// key, the last at `ts`. `sender` is null, as the host folds, when the
/// kernel sent the first in the running task's context.
fn repeat(k: &FoldKey, v: &FoldValue, sender: bool, count: u64, out: &mut String) {
    let mut o = Obj::new(out);
    o.str("type", "repeat")
        .secs("ts", v.last)
        .secs("first_ts", v.first);
    match sender {
        true => o.int("sender", k.sender as i64),
        false => o.null("sender"),
    };
    o.int("running", k.sender as i64)
        .int("target", k.target as i64)
        .int("sig", k.sig as i64)
        .int("code", k.code as i64);
    match (k.result >= 0)
        .then(|| Outcome::from_raw(k.result).name())
        .flatten()
    {
        Some(r) => o.str("result", r),
        None => o.null("result"),
    };
    o.int("count", count as i64);
    o.close();
    out.push('\n');
}
