//! Which board the current thread works for, so that what it says on
//! stderr says so too. Progress, warnings and the agent's own stderr
//! are written from deep in the deploy flow; rather than passing a
//! board name down every call, each board's thread is marked here
//! ([`Board::enter`]) and every stderr line of whosent-deploy goes
//! through [`line`] or [`bytes`] (the crate's `say!`). Unmarked (a
//! single board, `parse`, `build`) they write exactly what they were
//! given.
//!
//! Each line leaves in one write under std's stderr lock, whole, so
//! lines of two boards never interleave mid-line; a chunk without its
//! newline (the agent's stderr, as SSH delivers it) waits for the rest.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use super::Progress;

struct Mark {
    /// `name: `.
    prefix: String,
    /// A line not finished yet.
    pending: Vec<u8>,
    progress: Option<Arc<Progress>>,
    /// [`up`] was called.
    up: bool,
}

thread_local! {
    static MARK: RefCell<Option<Mark>> = const { RefCell::new(None) };
}

/// The mark of one board's thread; unmarked again when dropped, after
/// an unfinished line is written out.
pub struct Board(());

impl Board {
    pub(crate) fn enter(name: &str, progress: Option<Arc<Progress>>) -> Board {
        MARK.with(|m| {
            *m.borrow_mut() = Some(Mark {
                prefix: format!("{name}: "),
                pending: Vec::new(),
                progress,
                up: false,
            })
        });
        Board(())
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        if let Some(m) = MARK.with(|m| m.borrow_mut().take()) {
            if !m.pending.is_empty() {
                let mut out = m.prefix.into_bytes();
                out.extend_from_slice(&m.pending);
                out.push(b'\n');
                write_err(&out);
            }
        }
    }
}

/// The board this thread works for, if it is one of several.
pub fn current() -> Option<String> {
    MARK.with(|m| {
        m.borrow()
            .as_ref()
            .map(|m| m.prefix.trim_end_matches(": ").to_string())
    })
}

/// Whether this thread is one board of several: no progress bars, no
/// password prompt (several boards would draw and ask at once).
pub fn in_fleet() -> bool {
    MARK.with(|m| m.borrow().is_some())
}

/// Tells the fleet that this board is up (its capture is live); does
/// nothing for a single board.
pub fn up() {
    let p = MARK.with(|m| {
        let mut m = m.borrow_mut();
        let m = m.as_mut()?;
        // Once: a board is up or not.
        (!std::mem::replace(&mut m.up, true))
            .then(|| m.progress.clone())
            .flatten()
    });
    if let Some(p) = p {
        p.up();
    }
}

/// Whether this thread's board said it was up.
pub(crate) fn was_up() -> bool {
    MARK.with(|m| m.borrow().as_ref().is_some_and(|m| m.up))
}

/// One line on stderr (`say!`), marked with the board.
pub fn line(args: fmt::Arguments<'_>) {
    let mut text = fmt::format(args).into_bytes();
    text.push(b'\n');
    bytes(&text);
}

/// Bytes for stderr, marked line by line with the board; an unfinished
/// last line waits for its end (or for the board's thread to end).
pub fn bytes(chunk: &[u8]) {
    let out = MARK.with(|m| {
        let mut m = m.borrow_mut();
        let Some(m) = m.as_mut() else {
            return chunk.to_vec();
        };
        m.pending.extend_from_slice(chunk);
        let Some(last) = m.pending.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let whole: Vec<u8> = m.pending.drain(..=last).collect();
        let mut out = Vec::with_capacity(whole.len() + 16);
        for l in whole.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(m.prefix.as_bytes());
            out.extend_from_slice(l);
        }
        out
    });
    if !out.is_empty() {
        write_err(&out);
    }
}

/// A stderr that is gone (a closed terminal) loses the line, and must
/// not panic as eprintln! does.
fn write_err(b: &[u8]) {
    let mut e = io::stderr().lock();
    let _ = e.write_all(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_threads_know_their_board_and_unmarked_ones_do_not() {
        assert_eq!(current(), None);
        std::thread::spawn(|| {
            let _b = Board::enter("board-a", None);
            assert_eq!(current().as_deref(), Some("board-a"));
            assert!(in_fleet());
            // Buffered until its newline: nothing is written by this.
            bytes(b"half a li");
            MARK.with(|m| assert_eq!(m.borrow().as_ref().unwrap().pending, b"half a li"));
            bytes(b"ne\nnext");
            MARK.with(|m| assert_eq!(m.borrow().as_ref().unwrap().pending, b"next"));
        })
        .join()
        .unwrap();
        assert!(!in_fleet());
    }
}
