//! How far a detached capture was collected: the point in its records
//! after the last one `collect` printed, kept on the board in the
//! capture directory (`collected`) so that `stop` prints only what was
//! not collected yet.
//!
//! Records come out of the pipeline in trace-time order (the merge,
//! whosent-analysis), and decoding the same segments again gives the
//! same records, so a point is a trace time and how many records at
//! that very time came before it (a storm may have several per
//! microsecond). It survives the deletion of old segments: the records
//! are found again by time, not by segment. Loss records carry no time:
//! they are skipped until the first record past the point. What it says
//! of segments is for counting the loss only: how far the recorder's
//! signal events were accounted for (crate::detach::segments).

/// A point in a capture's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The trace time of the last record before the point.
    pub ts_ns: u64,
    /// Records at exactly `ts_ns` before the point.
    pub at_ts: u64,
    /// The last segment read, and how many signal events (as the
    /// recorder counts them: stat's `signals`) were read of it.
    pub seg: u64,
    pub raw: u64,
    /// The recorder's signal events accounted for up to that read: all
    /// of them from the capture's start, printed or told lost
    /// (crate::detach::segments); `None` when the loss could not be
    /// known (the recorder's stat never matched its segments).
    pub accounted: Option<u64>,
    /// Those of them told lost (the deleted segments').
    pub lost: u64,
}

impl Cursor {
    /// `v2 ts=NS n=K seg=L raw=R acc=A lost=X`, the `collected` file's
    /// one line (without `acc` and `lost` when the loss is not known).
    pub fn line(&self) -> String {
        let mut l = format!(
            "v2 ts={} n={} seg={} raw={}",
            self.ts_ns, self.at_ts, self.seg, self.raw
        );
        if let Some(a) = self.accounted {
            l += &format!(" acc={a} lost={}", self.lost);
        }
        l
    }

    /// Reads [`Cursor::line`]; `None` for anything else (a file from
    /// another version is as good as none: everything is printed).
    pub fn parse(text: &str) -> Option<Cursor> {
        let mut words = text.split_whitespace();
        if words.next()? != "v2" {
            return None;
        }
        let mut c = Cursor::default();
        let (mut seen, mut lost) = (0, None);
        for w in words {
            let (k, v) = w.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "ts" => c.ts_ns = v,
                "n" => c.at_ts = v,
                "seg" => c.seg = v,
                "raw" => c.raw = v,
                "acc" => {
                    c.accounted = Some(v);
                    continue;
                }
                "lost" => {
                    lost = Some(v);
                    continue;
                }
                _ => continue,
            }
            seen += 1;
        }
        if c.accounted.is_some() != lost.is_some() {
            return None;
        }
        c.lost = lost.unwrap_or(0);
        (seen == 4).then_some(c)
    }
}

/// Follows the records as they are decoded: where they are, and
/// whether each is before a point to skip to.
#[derive(Debug, Default)]
pub struct Seen {
    /// Where the records decoded so far end.
    pub at: Cursor,
    /// Records up to this point are not printed.
    pub skip: Option<Cursor>,
    /// A record past `skip` came.
    pub past: bool,
}

impl Seen {
    /// A record at `ts_ns`: true if it is to be printed.
    pub fn record(&mut self, ts_ns: u64) -> bool {
        if ts_ns == self.at.ts_ns {
            self.at.at_ts += 1;
        } else {
            self.at.ts_ns = ts_ns;
            self.at.at_ts = 1;
        }
        let before = self
            .skip
            .is_some_and(|s| ts_ns < s.ts_ns || (ts_ns == s.ts_ns && self.at.at_ts <= s.at_ts));
        if !before {
            self.past = true;
        }
        !before
    }

    /// A record without a time (a loss): printed once past the point.
    pub fn timeless(&self) -> bool {
        self.skip.is_none() || self.past
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_reads_back_and_other_versions_are_none() {
        let mut c = Cursor {
            ts_ns: 601_358_583_000,
            at_ts: 2,
            seg: 7,
            raw: 4_100,
            accounted: Some(40_000),
            lost: 23_959,
        };
        assert_eq!(Cursor::parse(&c.line()), Some(c));
        c.accounted = None;
        c.lost = 0;
        assert_eq!(Cursor::parse(&c.line()), Some(c));
        for bad in [
            "",
            "v1 ts=1 n=1 dropped=0",
            "v2 ts=1 n=x seg=0 raw=0",
            "v2 ts=1 n=1 seg=0 raw=0 acc=5",
            "v2 ts=1",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    /// A second decode of the same records skips exactly the ones a
    /// first decode printed, ties at one time stamp included.
    #[test]
    fn a_second_pass_prints_only_what_follows_the_first() {
        let times = [5, 7, 7, 7, 9, 12, 12];
        for printed in 0..=times.len() {
            let mut first = Seen::default();
            for &t in &times[..printed] {
                assert!(first.record(t));
            }
            let mut second = Seen {
                skip: (printed > 0).then_some(first.at),
                ..Seen::default()
            };
            let again: Vec<bool> = times.iter().map(|&t| second.record(t)).collect();
            let want: Vec<bool> = (0..times.len()).map(|i| i >= printed).collect();
            assert_eq!(again, want, "after {printed}");
            assert_eq!(second.timeless(), printed < times.len());
        }
    }
}
