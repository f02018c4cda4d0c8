//! A thread beside each connection that ends it from outside when it
//! must not wait for libssh2: on Ctrl-C before the remote command can be
//! stopped through its stdin (TCP connect, handshake, login, the probe,
//! the upload, starting the agent), and when the link is dead
//! ([`super::alive`]).
//!
//! Ending it is `shutdown(2)` of the socket: libssh2's blocking calls
//! wait in `poll` for that socket, which then reports EOF at once, so
//! whatever was running fails within a poll tick; the descriptor stays
//! open (no reuse race) until the session drops it. The board cleans up
//! after a dropped connection by itself (see `deploy::dir`), as after a
//! `kill -9` of whosent-deploy.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::alive;

/// Why the watch ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fired {
    Interrupted,
    /// Silent for this long.
    Dead(Duration),
}

#[derive(Default)]
struct State {
    /// The socket was closed (the connection dropped): stop watching.
    closed: bool,
    /// Ctrl-C drops the connection (until a stream can stop gracefully).
    armed: bool,
    /// An operation waits for the board since then.
    busy_since: Option<Instant>,
    fired: Option<Fired>,
}

struct Shared {
    fd: RawFd,
    stop: Option<&'static AtomicBool>,
    dead_after: Duration,
    state: Mutex<State>,
}

pub(crate) struct Watch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// How often the thread looks: well inside the 1 s a Ctrl-C may take.
const TICK: Duration = Duration::from_millis(25);

impl Watch {
    /// Starts watching `fd`; armed for `stop` from the start.
    pub(crate) fn start(
        fd: RawFd,
        stop: Option<&'static AtomicBool>,
        dead_after: Duration,
    ) -> Watch {
        let shared = Arc::new(Shared {
            fd,
            stop,
            dead_after,
            state: Mutex::new(State {
                armed: true,
                ..State::default()
            }),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ssh-watch".into())
            .spawn(move || s.run())
            .ok();
        Watch { shared, thread }
    }

    /// From now on Ctrl-C is the caller's to handle (a stream stops its
    /// command through stdin and reads its last records).
    pub(crate) fn disarm(&self) {
        self.shared.lock().armed = false;
    }

    /// An operation waiting for the board starts; the returned guard
    /// ends it.
    pub(crate) fn busy(&self) -> Busy<'_> {
        self.shared.lock().busy_since = Some(Instant::now());
        Busy(self)
    }

    /// How long the board has been silent while we waited for it.
    pub(crate) fn quiet(&self) -> Duration {
        self.shared.quiet(&self.shared.lock())
    }

    pub(crate) fn fired(&self) -> Option<Fired> {
        self.shared.lock().fired
    }

    /// The connection is being taken down: watch no more.
    pub(crate) fn closing(&self) {
        let mut st = self.shared.lock();
        st.armed = false;
        st.busy_since = None;
    }
}

/// See [`Watch::busy`].
pub(crate) struct Busy<'a>(&'a Watch);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.shared.lock().busy_since = None;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Silence since the later of the board's last data and the start of
    /// the current wait: a connection left idle while the agent built is
    /// not dead.
    fn quiet(&self, st: &State) -> Duration {
        let Some(since) = st.busy_since else {
            return Duration::ZERO;
        };
        let waited = since.elapsed();
        // Without the kernel's count (through a jump host the socket is
        // local) there is no telling silence from a slow command.
        alive::quiet(self.fd).map_or(Duration::ZERO, |q| q.min(waited))
    }

    fn run(&self) {
        loop {
            {
                let mut st = self.lock();
                if st.closed {
                    return;
                }
                let fire = if st.armed && self.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                    Some(Fired::Interrupted)
                } else {
                    let q = self.quiet(&st);
                    (q >= self.dead_after).then_some(Fired::Dead(q))
                };
                if let Some(f) = fire {
                    st.fired = Some(f);
                    // SAFETY: the fd stays open while `closed` is false
                    // (the session closes it after Watch is dropped).
                    unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
                    return;
                }
            }
            std::thread::sleep(TICK);
        }
    }
}
