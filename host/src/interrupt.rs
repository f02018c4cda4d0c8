//! Ctrl-C, SIGTERM and SIGHUP on the host: they set a flag instead of
//! killing the process, so that the agent is stopped through its stdin
//! and the board is cleaned up before whosent-deploy exits.

use std::sync::atomic::{AtomicBool, Ordering};

pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

pub fn install() -> &'static AtomicBool {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    &STOP
}

/// Sets [`STOP`] when our stdout's reader goes away (`| head -1`): the
/// next write would fail with EPIPE, but with no signal coming there
/// may be no next write, and the capture would run on for nobody.
pub fn stop_when_stdout_closes() {
    std::thread::spawn(|| loop {
        let mut p = libc::pollfd {
            fd: 1,
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd; events 0 still reports POLLERR/POLLHUP.
        let n = unsafe { libc::poll(&mut p, 1, 100) };
        if n > 0 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            STOP.store(true, Ordering::SeqCst);
            return;
        }
        if n < 0 || STOP.load(Ordering::SeqCst) {
            if n < 0 {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            if STOP.load(Ordering::SeqCst) {
                return;
            }
        }
    });
}
