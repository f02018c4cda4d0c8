//! Storm folding in the kernel (#15): with `--fold` the program sends a
//! key's first signal in full and only counts its repeats in the
//! `folds` map (ebpf/signal.bpf.c), keyed by (sender tgid, target tgid,
//! sig, code, result) as the host folds (host/src/fold.rs). This module
//! reads the counts: with `--stream` it sends each count that grew in a
//! REPEAT frame, for the host's pipeline; run alone it turns them into
//! `repeat` records itself (whosent_analysis::repeat, shared with the
//! host).
//!
//! The map is never written here: a count only grows, so the difference
//! from the last read is exact, with no repeat lost between a read and a
//! delete.

use aya::maps::{HashMap, MapData};
use aya::Ebpf;
use std::collections::HashMap as Map;
use whosent_analysis::repeat::{Count, Repeats};
use whosent_proto::record::SignalEvent;

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

#[derive(Default)]
pub struct Folds {
    /// The count last read of each key.
    read: Map<FoldKey, u64>,
    /// Run alone: the keys whose first signal was reported.
    pub repeats: Repeats,
}

impl Folds {
    /// A signal was reported (run alone).
    pub fn signal(&mut self, e: &SignalEvent) {
        self.repeats.signal(e);
    }

    /// The counts that grew since the last call.
    pub fn grown(&mut self, ebpf: &Ebpf) -> Vec<Count> {
        let mut out = Vec::new();
        let Some(map) = ebpf.map("folds") else {
            return out;
        };
        let Ok(folds) = HashMap::<&MapData, FoldKey, FoldValue>::try_from(map) else {
            return out;
        };
        for (k, v) in folds.iter().flatten() {
            let seen = self.read.entry(k).or_insert(0);
            if v.count > *seen {
                *seen = v.count;
                out.push(Count {
                    sender: k.sender,
                    target: k.target,
                    sig: k.sig,
                    code: k.code,
                    result: k.result,
                    count: v.count,
                    first: v.first,
                    last: v.last,
                });
            }
        }
        out
    }

    /// Run alone: a `repeat` record for each reported key whose count
    /// grew.
    pub fn drain(&mut self, ebpf: &Ebpf, out: &mut String) {
        for c in self.grown(ebpf) {
            self.repeats.count(c);
        }
        self.repeats.due(&mut |r| r.encode(out));
    }
}
