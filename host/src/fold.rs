//! Storms folded in human mode (issue #11): a run of identical signals
//! (same sender, target, signal, code and result) is printed once, as
//! it starts, and closed by one line with its count and time span, e.g.
//! `  ×1000000 in 1.8 s`, so a storm does not bury the one kill the user
//! is looking for. `--every` prints each; `--json` is never folded.

use whosent_proto::record::{Outcome, SignalEvent};

/// What makes two signals "the same" for folding.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    sender: Option<i32>,
    target: i32,
    sig: i32,
    code: i32,
    result: Option<Outcome>,
}

impl Key {
    fn of(e: &SignalEvent) -> Self {
        Key {
            sender: e.sender().map(|s| s.pid.unwrap_or(s.tid)),
            target: e.target.pid.unwrap_or(e.target.tid),
            sig: e.sig,
            code: e.code,
            result: e.result,
        }
    }
}

#[derive(Debug, Default)]
pub struct Fold {
    run: Option<(Key, u64, u64, u64)>,
}

impl Fold {
    /// Whether `e` starts a new run (print it); the line that closes the
    /// run before it, if that run folded more than one signal.
    pub fn signal(&mut self, e: &SignalEvent) -> (bool, Option<String>) {
        let key = Key::of(e);
        match &mut self.run {
            Some((k, _, last, n)) if *k == key => {
                *last = e.ts_ns;
                *n += 1;
                (false, None)
            }
            _ => {
                let closed = self.close();
                self.run = Some((key, e.ts_ns, e.ts_ns, 1));
                (true, closed)
            }
        }
    }

    /// Ends the current run (before any other line, and at the end).
    pub fn close(&mut self) -> Option<String> {
        let (_, first, last, n) = self.run.take()?;
        (n > 1).then(|| format!("  ×{n} in {}", span(last.saturating_sub(first))))
    }
}

fn span(ns: u64) -> String {
    match ns {
        0..=999_999 => format!("{} µs", ns / 1000),
        1_000_000..=999_999_999 => format!("{} ms", ns / 1_000_000),
        _ => format!("{:.1} s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whosent_proto::record::{Context, Task};

    fn ev(ts: u64, sender: i32, sig: i32) -> SignalEvent {
        let t = |pid| Task {
            pid: Some(pid),
            tid: pid,
            comm: "x".into(),
            ..Default::default()
        };
        SignalEvent {
            ts_ns: ts,
            cpu: 0,
            sig,
            code: 0,
            errno: 0,
            group: Some(true),
            result: Some(Outcome::Delivered),
            context: Context::Task,
            running: t(sender),
            target: t(650),
        }
    }

    #[test]
    fn a_storm_is_one_line_and_its_count() {
        let mut f = Fold::default();
        assert_eq!(f.signal(&ev(0, 7, 10)), (true, None));
        for i in 1..1_000_000u64 {
            assert_eq!(f.signal(&ev(i * 1800, 7, 10)), (false, None));
        }
        // The one kill after the storm is printed, after the storm's count.
        let (print, closed) = f.signal(&ev(1_800_000_000, 8, 9));
        assert!(print);
        assert_eq!(closed.as_deref(), Some("  ×1000000 in 1.8 s"));
        assert_eq!(f.close(), None, "a run of one needs no count");
        f.signal(&ev(5, 7, 10));
        f.signal(&ev(2_000_005, 7, 10));
        assert_eq!(f.close().as_deref(), Some("  ×2 in 2 ms"));
    }
}
