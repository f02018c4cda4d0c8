//! Storms folded in human mode (issue #11): a run of identical signals
//! (same sender, target, signal, code and result) is printed once, as
//! it starts, and closed by one line with its count and time span, e.g.
//! `  ×1000000 in 1.8 s`, so a storm does not bury the one kill the user
//! is looking for; the kill is printed as it comes, and a count that no
//! longer stands under its run's first line repeats that line. A few
//! runs stay open at once, so interleaved storms fold too. `--every`
//! prints each; `--json` is never folded.
//!
//! With `--backend ebpf` the program folds in the kernel (the agent's
//! `--fold`): only a key's first signal comes as a record, its repeats
//! as counts in `repeat` records ([`Fold::repeat`]), printed as the same
//! lines.

use whosent_proto::record::{Outcome, SignalEvent};

/// A `repeat` record's fields; `None` for any other line.
pub fn parse_repeat(line: &str) -> Option<Repeat> {
    if !line.contains(r#""type":"repeat""#) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["type"] != "repeat" {
        return None;
    }
    let int = |k: &str| v[k].as_i64().and_then(|x| i32::try_from(x).ok());
    // `ts` is seconds with microseconds, as in every record.
    let ts = v["ts"].as_f64().unwrap_or(0.0);
    Some(Repeat {
        sender: int("sender"),
        target: int("target")?,
        sig: int("sig")?,
        code: int("code")?,
        result: v["result"].as_str().and_then(Outcome::from_name),
        count: v["count"].as_u64()?,
        last: (ts * 1e9) as u64,
    })
}

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

/// How many runs stay open at once. A storm's results alternate
/// (`delivered`, then `already_pending` while the first is still
/// pending: kernel/signal.c `__send_signal_locked`), and two senders can
/// storm one target: interleaved runs fold as well as consecutive ones.
const OPEN: usize = 4;

struct Run {
    key: Key,
    first: u64,
    last: u64,
    n: u64,
    /// Lines printed when this run's first line was.
    at: u64,
    /// Its first line, to name it when other lines came in between.
    line: String,
}

#[derive(Default)]
pub struct Fold {
    runs: Vec<Run>,
    /// Lines printed so far (signals and counts).
    printed: u64,
    /// The first lines of runs pushed out or closed, for repeats of them
    /// that come later (kernel folding), at most [`KEPT`].
    closed: Vec<(Key, String)>,
}

/// First lines kept for later repeats: more distinct storms than this
/// at once get a count line naming the key in numbers.
const KEPT: usize = 256;

/// A `repeat` record: `count` more signals of one key, the last at
/// `last` (docs/json-schema.md).
pub struct Repeat {
    pub sender: Option<i32>,
    pub target: i32,
    pub sig: i32,
    pub code: i32,
    pub result: Option<Outcome>,
    pub count: u64,
    pub last: u64,
}

impl Fold {
    /// Whether `e` starts a new run (print it); the count line of a run
    /// it pushed out of the open ones, if that run folded more than one.
    pub fn signal(&mut self, e: &SignalEvent) -> (bool, Option<String>) {
        let key = Key::of(e);
        if let Some(i) = self.runs.iter().position(|r| r.key == key) {
            let mut r = self.runs.remove(i);
            r.last = e.ts_ns;
            r.n += 1;
            // Most recent last: the first is the one to push out.
            self.runs.push(r);
            return (false, None);
        }
        let closed = if self.runs.len() >= OPEN {
            let r = self.runs.remove(0);
            self.line(&r)
        } else {
            None
        };
        self.printed += 1;
        self.runs.push(Run {
            key,
            first: e.ts_ns,
            last: e.ts_ns,
            n: 1,
            at: self.printed,
            line: whosent_proto::render::signal_line(e),
        });
        (true, closed)
    }

    /// Repeats folded in the kernel: added to their open run; a run
    /// already closed opens again, under its first line's name.
    /// Returns the count line of a run this pushed out.
    pub fn repeat(&mut self, r: &Repeat) -> Option<String> {
        let key = Key {
            sender: r.sender,
            target: r.target,
            sig: r.sig,
            code: r.code,
            result: r.result,
        };
        if let Some(i) = self.runs.iter().position(|x| x.key == key) {
            let mut run = self.runs.remove(i);
            run.last = r.last;
            run.n += r.count;
            self.runs.push(run);
            return None;
        }
        let line = match self.closed.iter().find(|(k, _)| *k == key) {
            Some((_, l)) => l.clone(),
            None => format!(
                "signal {} from {} to {}, code {}",
                r.sig,
                r.sender.map_or("the kernel".into(), |p| p.to_string()),
                r.target,
                r.code
            ),
        };
        let closed = if self.runs.len() >= OPEN {
            let old = self.runs.remove(0);
            self.line(&old)
        } else {
            None
        };
        // Not right under its first line: the count names it.
        self.runs.push(Run {
            key,
            first: r.last,
            last: r.last,
            n: r.count + 1,
            at: u64::MAX,
            line,
        });
        // The +1 above makes the count line print for a single repeat
        // too; it is taken off in `line`.
        closed
    }

    /// Ends every open run (before any other record, and at the end):
    /// their count lines, in the order their first lines came.
    pub fn close(&mut self) -> Vec<String> {
        let mut runs = std::mem::take(&mut self.runs);
        runs.sort_by_key(|r| r.at);
        runs.iter().filter_map(|r| self.line(r)).collect()
    }

    fn line(&mut self, r: &Run) -> Option<String> {
        if !self.closed.iter().any(|(k, _)| *k == r.key) {
            if self.closed.len() >= KEPT {
                self.closed.remove(0);
            }
            self.closed.push((r.key.clone(), r.line.clone()));
        }
        if r.n < 2 {
            return None;
        }
        // A reopened run (`at` MAX) counts only its repeats.
        let (n, span) = if r.at == u64::MAX {
            (r.n - 1, String::new())
        } else {
            (r.n, format!(" in {}", span(r.last.saturating_sub(r.first))))
        };
        // Right under its first line the count needs no name.
        let text = if self.printed == r.at {
            format!("  ×{n}{span}")
        } else if r.at == u64::MAX {
            format!("  ×{n} more: {}", r.line)
        } else {
            format!("  ×{n}{span}: {}", r.line)
        };
        self.printed += 1;
        Some(text)
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
            cause: None,
            oom: None,
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
        // The one kill after the storm is printed at once; the storm's
        // count, when it ends, names it (a line came in between).
        let (print, closed) = f.signal(&ev(1_800_000_000, 8, 9));
        assert!(print);
        assert_eq!(closed, None);
        assert_eq!(
            f.close(),
            vec![
                "  ×1000000 in 1.8 s: SIGUSR1: x(7) -> x(650)  code=SI_USER  delivered".to_string()
            ],
            "a run of one needs no count"
        );
        f.signal(&ev(5, 7, 10));
        f.signal(&ev(2_000_005, 7, 10));
        assert_eq!(f.close(), vec!["  ×2 in 2 ms".to_string()]);
    }

    /// A storm whose results alternate between delivered and
    /// already_pending folds into two lines and two counts, not a line
    /// per change.
    #[test]
    fn alternating_results_fold_too() {
        let mut f = Fold::default();
        let mut printed = 0;
        for i in 0..100_000u64 {
            let mut e = ev(i * 1000, 7, 10);
            if i % 3 == 1 {
                e.result = Some(Outcome::AlreadyPending);
            }
            let (print, closed) = f.signal(&e);
            printed += print as u32 + closed.is_some() as u32;
        }
        assert_eq!(printed, 2);
        let counts = f.close();
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert!(
            counts[0].starts_with("  ×66667 in 99 ms: SIGUSR1"),
            "{counts:?}"
        );
        assert!(
            counts[1].starts_with("  ×33333 in 99 ms: SIGUSR1")
                && counts[1].ends_with("already_pending"),
            "{counts:?}"
        );
    }

    /// More senders than open runs: the oldest run is closed with its
    /// count when a new one pushes it out.
    #[test]
    fn the_oldest_run_is_pushed_out() {
        let mut f = Fold::default();
        for s in 1..=OPEN as i32 {
            f.signal(&ev(0, s, 10));
            f.signal(&ev(10_000, s, 10));
        }
        let (print, closed) = f.signal(&ev(20_000, 99, 10));
        assert!(print);
        assert_eq!(
            closed.as_deref(),
            Some("  ×2 in 10 µs: SIGUSR1: x(1) -> x(650)  code=SI_USER  delivered")
        );
    }

    /// Storms folded in the kernel: the first signals come as records,
    /// the rest as `repeat` counts, and print as the stream's storms do;
    /// a repeat of a run already closed names its first line.
    #[test]
    fn repeats_from_the_kernel_fold_into_the_same_lines() {
        let mut f = Fold::default();
        assert_eq!(f.signal(&ev(0, 7, 10)), (true, None));
        let line = r#"{"type":"repeat","ts":1.800000,"first_ts":0.000000,"sender":7,"running":7,"target":650,"sig":10,"code":0,"result":"delivered","count":999999}"#;
        let r = parse_repeat(line).unwrap();
        assert_eq!(f.repeat(&r), None);
        assert_eq!(f.close(), vec!["  ×1000000 in 1.8 s".to_string()]);
        let more = Repeat { count: 5, ..r };
        assert_eq!(f.repeat(&more), None);
        assert_eq!(
            f.close(),
            vec!["  ×5 more: SIGUSR1: x(7) -> x(650)  code=SI_USER  delivered".to_string()]
        );
        // Another sender's key is not merged into it.
        let other = Repeat {
            sender: Some(8),
            count: 3,
            ..more
        };
        f.repeat(&other);
        let c = f.close();
        assert!(
            c[0].starts_with("  ×3 more: signal 10 from 8 to 650"),
            "{c:?}"
        );
        assert_eq!(parse_repeat(r#"{"type":"signal"}"#).map(|r| r.count), None);
    }
}
