//! Ctrl-C, SIGTERM and SIGHUP on the host: they set a flag instead of
//! killing the process (signal-hook), so that the agent is stopped
//! through its stdin and the board is cleaned up before whosent-deploy
//! exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn flag() -> &'static Arc<AtomicBool> {
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

pub fn install() -> &'static AtomicBool {
    let stop = flag();
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        // Fails only for signals that may not be caught (SIGKILL...).
        let _ = signal_hook::flag::register(sig, Arc::clone(stop));
    }
    stop
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
