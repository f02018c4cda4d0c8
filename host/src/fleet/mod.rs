//! Many boards at once (issue #14): `--host` repeated and `--hosts
//! FILE`. Any per-board command runs through [`each`]: a thread per
//! board, each with its own connection, session and report, and output
//! that says which board it came from, line by line and never mixed
//! mid-line. One board stays exactly a single-board run: same thread,
//! same output, its error returned as is.
//!
//! - [`list`]: which boards (the hosts file);
//! - [`out`]: a board's stdout, line-atomic and prefixed;
//! - [`tag`]: a board's stderr, and its "I am up" for the progress line.
//!
//! A board that fails says so in one line with its name, and the others
//! go on; [`Outcome`] combines the statuses. Ctrl-C needs nothing here:
//! every board watches the same flag ([`crate::interrupt`]) and cleans
//! up as a single run does.

pub mod list;
pub mod out;
pub mod tag;

use crate::error::HostError;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

pub use list::boards;

/// How [`each`] shows the boards' output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Opts {
    /// Human output: stdout lines get `name: ` in front (JSON records
    /// carry `host`).
    pub human: bool,
    /// What the boards are doing once up, for the `whosent: N/M boards
    /// tracing` line on stderr; `None`: no such line (`--json` with
    /// nobody at stderr, or a command with nothing to start).
    pub progress: Option<&'static str>,
}

/// How many boards are up and how many failed: one stderr line each
/// time that changes, written while the count is held, so that the
/// lines come in the order of the counts (the last says it all).
pub struct Progress {
    n: usize,
    /// Up, failed.
    counts: Mutex<(usize, usize)>,
    doing: Option<&'static str>,
}

impl Progress {
    fn new(n: usize, doing: Option<&'static str>) -> Self {
        Progress {
            n,
            counts: Mutex::new((0, 0)),
            doing,
        }
    }

    pub(crate) fn up(&self) {
        self.count(|c| c.0 += 1);
    }

    fn failed(&self) {
        self.count(|c| c.1 += 1);
    }

    fn count(&self, f: impl FnOnce(&mut (usize, usize))) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c);
        let Some(doing) = self.doing else {
            return;
        };
        let failed = match c.1 {
            0 => String::new(),
            n => format!(", {n} failed"),
        };
        let line = format!("whosent: {}/{} boards {doing}{failed}\n", c.0, self.n);
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }
}

/// What each board's run returned: its status, or `None` for an error
/// (already reported, with the board's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome(pub Vec<Option<i32>>);

impl Outcome {
    /// A live run's rule: 0 if any board reported a signal, 2 if every
    /// board failed, else 1. One board: its own status.
    pub fn any_signal(&self) -> i32 {
        let ok = |s: &&Option<i32>| matches!(s, Some(0 | 1));
        match &self.0[..] {
            [Some(s)] => *s,
            all if all.contains(&Some(0)) => 0,
            all if !all.iter().any(|s| ok(&s)) => 2,
            _ => 1,
        }
    }

    /// For checks (doctor): the worst board's status, a failure 2.
    pub fn worst(&self) -> i32 {
        self.0.iter().map(|s| s.unwrap_or(2)).max().unwrap_or(2)
    }
}

/// Runs `f(board, stdout)` for every board. One board: here, on fd 1
/// unchanged, an error returned as it is. Several: in parallel, each in
/// its thread with its stdout and stderr marked ([`out`], [`tag`]), its
/// error printed as one line with its name; `f` calls [`tag::up`] once
/// its board is live (the deploy flow does, at the capture's `ready`).
pub fn each<F>(boards: &[String], opts: Opts, f: F) -> Result<Outcome, HostError>
where
    F: Fn(&str, &mut dyn Write) -> Result<i32, HostError> + Sync,
{
    if let [one] = boards {
        return Ok(Outcome(vec![Some(f(one, &mut crate::stdout::Raw)?)]));
    }
    let progress = Arc::new(Progress::new(boards.len(), opts.progress));
    let statuses = std::thread::scope(|sc| {
        let threads: Vec<_> = boards
            .iter()
            .map(|b| {
                let (f, progress) = (&f, Arc::clone(&progress));
                std::thread::Builder::new()
                    .name(format!("board {b}"))
                    .spawn_scoped(sc, move || one(b, opts, progress, f))
                    .expect("a thread for the board")
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or(None))
            .collect()
    });
    Ok(Outcome(statuses))
}

/// One board of several, in its own thread.
fn one<F>(board: &str, opts: Opts, progress: Arc<Progress>, f: &F) -> Option<i32>
where
    F: Fn(&str, &mut dyn Write) -> Result<i32, HostError> + Sync,
{
    // As typed, but a hosts file may hold anything: escaped for the
    // terminal as the board's own words are.
    let name = whosent_proto::escape::escape(board);
    let _mark = tag::Board::enter(&name, Some(Arc::clone(&progress)));
    let prefix = if opts.human {
        format!("{name}: ")
    } else {
        String::new()
    };
    let mut out = out::Lines::new(crate::stdout::Raw, &prefix);
    let res = f(board, &mut out);
    let _ = out.finish();
    // The progress line is about starting: a board that failed once up
    // (its error is its own line) changes no count.
    let failed = |p: &Progress| {
        if !tag::was_up() {
            p.failed();
        }
    };
    match res {
        Ok(s) => {
            // Its source's error (the agent's), already told.
            if s == 2 {
                failed(&progress);
            }
            Some(s)
        }
        Err(e) => {
            tag::line(format_args!("{}", e.line()));
            failed(&progress);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_is_0_for_any_signal_2_when_all_failed_else_1() {
        let o = |v: &[Option<i32>]| Outcome(v.to_vec());
        assert_eq!(o(&[Some(0), None]).any_signal(), 0);
        assert_eq!(o(&[Some(1), Some(0)]).any_signal(), 0);
        assert_eq!(o(&[Some(1), None]).any_signal(), 1);
        assert_eq!(o(&[Some(1), Some(1)]).any_signal(), 1);
        assert_eq!(o(&[None, None]).any_signal(), 2);
        // A board whose source reported an error exits 2 alone.
        assert_eq!(o(&[Some(2), None]).any_signal(), 2);
        assert_eq!(o(&[Some(2), Some(1)]).any_signal(), 1);
        // One board is a single run: its status as it is.
        assert_eq!(o(&[Some(2)]).any_signal(), 2);
        assert_eq!(o(&[Some(0), Some(1)]).worst(), 1);
        assert_eq!(o(&[Some(0), None]).worst(), 2);
    }

    /// The progress counts boards up and boards that failed before
    /// they were up; a failure once up is the board's own line only.
    #[test]
    fn progress_counts_starts_not_later_failures() {
        let p = Arc::new(Progress::new(4, None));
        let run = |name: &str, f: &(dyn Fn() -> Result<i32, HostError> + Sync)| {
            let p = Arc::clone(&p);
            std::thread::scope(|sc| {
                sc.spawn(|| one(name, Opts::default(), p, &|_: &str, _: &mut dyn Write| f()))
                    .join()
                    .unwrap()
            })
        };
        let down = || Err(HostError::Usage("down".into()));
        assert_eq!(
            run("up-ok", &|| {
                tag::up();
                tag::up();
                Ok(1)
            }),
            Some(1)
        );
        assert_eq!(run("down", &down), None);
        assert_eq!(
            run("up-then-down", &|| {
                tag::up();
                down()
            }),
            None
        );
        assert_eq!(run("agent-error", &|| Ok(2)), Some(2));
        assert_eq!(*p.counts.lock().unwrap(), (2, 2));
    }

    #[test]
    fn each_board_runs_in_its_own_marked_thread_and_errors_do_not_stop_the_others() {
        let boards: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let o = each(&boards, Opts::default(), |b, _| {
            assert_eq!(tag::current().as_deref(), Some(b));
            match b {
                "b" => Err(HostError::Usage("down".into())),
                _ => Ok(1),
            }
        })
        .unwrap();
        assert_eq!(o.0, [Some(1), None, Some(1)]);
        // One board: this thread, unmarked, the error as it was.
        let e = each(&boards[..1], Opts::default(), |_, _| {
            assert!(!tag::in_fleet());
            Err(HostError::Usage("down".into()))
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "down");
    }
}
