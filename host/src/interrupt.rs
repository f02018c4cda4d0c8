//! Ctrl-C, SIGTERM and SIGHUP on the host: they set a flag instead of
//! killing the process (signal-hook), so that the agent is stopped
//! through its stdin and the board is cleaned up before whosent-deploy
//! exits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use whosent_proto::record::EndReason;

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// What set the flag: the signal's number, or [`OUTPUT_CLOSED`].
static WHY: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
const OUTPUT_CLOSED: usize = usize::MAX;

fn flag() -> &'static Arc<AtomicBool> {
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

fn why() -> &'static Arc<AtomicUsize> {
    WHY.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

pub fn install() -> &'static AtomicBool {
    let stop = flag();
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        // The reason first: handlers run in the order registered, so
        // whoever sees the flag set finds the reason there too. Fails
        // only for signals that may not be caught (SIGKILL...).
        let _ = signal_hook::flag::register_usize(sig, Arc::clone(why()), sig as usize);
        let _ = signal_hook::flag::register(sig, Arc::clone(stop));
    }
    stop
}

/// Why the flag was set, as the `end` record says it: the last signal
/// (INT, TERM, HUP) or stdout's reader going away; `interrupted` when
/// no one said (a flag set by a test).
pub fn reason() -> EndReason {
    match why().load(Ordering::SeqCst) {
        OUTPUT_CLOSED => EndReason::OutputClosed,
        n if n == signal_hook::consts::SIGTERM as usize => EndReason::Terminated,
        n if n == signal_hook::consts::SIGHUP as usize => EndReason::Hangup,
        _ => EndReason::Interrupted,
    }
}

/// Sets the stop flag when our stdout's reader goes away (`| head -1`):
/// the next write would fail with EPIPE, but with no signal coming there
/// may be no next write, and the capture would run on for nobody.
pub fn stop_when_stdout_closes() {
    let stop = flag();
    std::thread::spawn(move || loop {
        let mut p = libc::pollfd {
            fd: 1,
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd; events 0 still reports POLLERR/POLLHUP.
        let n = unsafe { libc::poll(&mut p, 1, 100) };
        if n > 0 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            // Unless a signal came first.
            let _ = why().compare_exchange(0, OUTPUT_CLOSED, Ordering::SeqCst, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
            return;
        }
        if n < 0 {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
    });
}
