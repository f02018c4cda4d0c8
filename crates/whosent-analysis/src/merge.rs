//! The per-CPU runs of events merged into one time order, and how far
//! that order is final.
//!
//! Each CPU's events arrive in time order, but the CPUs are read one
//! after another, so a CPU read early may still get events older than
//! ones already read from a later CPU (a fork on CPU 0 after it was
//! read, its child's kill on CPU 1 before that was read; the agent may
//! even be stopped between the two). Applying those out of order would
//! name the child before its fork is known, so a round's `horizon` says
//! how far the merged order is final: a CPU read to empty has given
//! every event older than any event read before it, one cut at the
//! round's page limit every event up to its last. A round that read
//! nothing releases what is left.

/// Sorts `items` by `key`, stably, by merging its ascending runs: each
/// CPU's events arrive in time order, so there are about as many runs as
/// CPUs. Equal keys keep their order (one CPU can stamp two events with
/// the same time), as `sort_by_key` would, without the ~5 KB that the
/// std stable sort adds to the agent (docs/agent-size.md).
pub fn merge_runs<T>(items: &mut Vec<T>, key: impl Fn(&T) -> u64 + Copy) {
    let mut runs: Vec<Vec<T>> = Vec::new();
    for item in items.drain(..) {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|l| key(l) <= key(&item)) => run.push(item),
            _ => runs.push(vec![item]),
        }
    }
    while runs.len() > 1 {
        let mut pairs = runs.into_iter();
        runs = Vec::new();
        while let Some(a) = pairs.next() {
            runs.push(match pairs.next() {
                Some(b) => merge(a, b, key),
                None => a,
            });
        }
    }
    *items = runs.pop().unwrap_or_default();
}

/// Merges two sorted runs; on a tie the item from `a` (the earlier run) comes first.
fn merge<T>(a: Vec<T>, b: Vec<T>, key: impl Fn(&T) -> u64) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let from_b = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => key(y) < key(x),
            (x, _) => x.is_none(),
        };
        match if from_b { b.next() } else { a.next() } {
            Some(item) => out.push(item),
            None => return out,
        }
    }
}

/// The horizon of drain rounds, fed as the pages of a round are read.
#[derive(Debug, Default)]
pub struct Horizon {
    /// The latest event time read so far.
    seen: u64,
    /// This round's: last event time per CPU (in the order read), events.
    last: Vec<(u32, u64)>,
    events: usize,
}

impl Horizon {
    /// An event read from `cpu` at `ts`.
    pub fn event(&mut self, cpu: u32, ts: u64) {
        self.events += 1;
        match self.last.iter_mut().find(|(c, _)| *c == cpu) {
            Some(l) => l.1 = ts,
            None => self.last.push((cpu, ts)),
        }
    }

    /// Ends a round that read `cpus` in this order, `cut` of them only
    /// up to the page limit; returns the time up to which every event
    /// has been read.
    pub fn end_round(&mut self, cpus: &[u32], cut: &[u32]) -> u64 {
        let mut horizon = u64::MAX;
        for cpu in cpus {
            let last = self.last.iter().find(|(c, _)| c == cpu).map_or(0, |l| l.1);
            self.seen = self.seen.max(last);
            horizon = horizon.min(if cut.contains(cpu) { last } else { self.seen });
        }
        let read = std::mem::take(&mut self.events);
        self.last.clear();
        if read == 0 {
            u64::MAX
        } else {
            horizon
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_runs_is_a_stable_sort() {
        // (time, arrival order): per-CPU runs, ties within and across runs.
        let cases: [&[u64]; 6] = [
            &[],
            &[5],
            &[1, 3, 3, 7, 2, 3, 8, 0, 3, 9],
            &[4, 3, 2, 1, 0],
            &[1, 1, 1, 1],
            &[10, 20, 30, 5, 15, 25, 35, 1, 2, 3, 40, 0],
        ];
        for ts in cases {
            let mut got: Vec<(u64, usize)> = ts.iter().copied().zip(0..).collect();
            let mut want = got.clone();
            want.sort_by_key(|i| i.0);
            merge_runs(&mut got, |i| i.0);
            assert_eq!(got, want, "{ts:?}");
        }
    }

    #[test]
    fn the_horizon_holds_back_what_an_earlier_cpu_may_still_get() {
        let mut h = Horizon::default();
        // CPU 0 read to empty with nothing, CPU 1 gave up to 50: CPU 0
        // may still get events from before 50, so nothing is final.
        h.event(1, 40);
        h.event(1, 50);
        assert_eq!(h.end_round(&[0, 1], &[]), 0);
        // Now CPU 0 gives 45 and is read to empty after CPU 1's 50.
        h.event(0, 45);
        assert_eq!(h.end_round(&[0, 1], &[]), 50);
        // A CPU cut at the page limit is final only up to its last.
        h.event(0, 60);
        h.event(1, 70);
        assert_eq!(h.end_round(&[0, 1], &[0]), 60);
        assert_eq!(
            h.end_round(&[0, 1], &[]),
            u64::MAX,
            "an empty round releases all"
        );
    }
}
