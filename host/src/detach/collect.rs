//! `collect`: prints what a capture has recorded so far, exactly as a
//! live run would have printed it (the same pipeline, over its
//! segments), and with `--follow` what it records next, until Ctrl-C.
//!
//! Every collect prints everything the board still holds, from the
//! oldest segment present: running it again gives the same records
//! and the new ones. It notes on the board (`collected` in the capture
//! directory) where the records it printed end, so that `stop` prints
//! only what no collect printed.

use super::segments::{self, Print};
use super::Board;
use crate::error::HostError;
use std::io::Write;
use std::sync::atomic::AtomicBool;

#[derive(Debug, Clone, Default)]
pub struct CollectOpts {
    pub id: Option<String>,
    pub print: Print,
    /// Ctrl-C's flag: keep printing new records until it is set.
    pub follow: bool,
}

/// Returns the exit status: 0 if a signal was printed, 1 if none was,
/// 2 if the capture's agent died (its `error` record says so).
pub fn collect(
    b: &Board<'_>,
    o: &CollectOpts,
    out: &mut dyn Write,
    ctrl_c: &AtomicBool,
) -> Result<i32, HostError> {
    let l = b.list()?;
    let c = b.choose(&l, o.id.as_deref())?;
    let state = l.state(c);
    let follow = o.follow.then_some(ctrl_c);
    let p = segments::print(b, c, state, &o.print, None, out, follow)?;
    segments::save_cursor(b, &c.id, &p.at)?;
    // The figures as they are now (after --follow, not at its start).
    let now = b.list().ok();
    let c = now
        .as_ref()
        .and_then(|l| l.captures.iter().find(|x| x.id == c.id))
        .unwrap_or(c);
    segments::summary(b, c, state, &p, o.print.json);
    Ok(p.status)
}
