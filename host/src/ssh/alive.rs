//! Knowing that the board is still there, as ssh's `ServerAliveInterval`
//! and `ServerAliveCountMax` do: when nothing has come from the board for
//! an interval, a keepalive that wants a reply is sent, once per
//! interval; when `count` of them went unanswered and one more interval
//! passed, the link is dead ([`super::watch`] then drops it). With the
//! defaults (10 s, 2) that is 30 s of silence.
//!
//! "Nothing has come" is the kernel's count: `TCP_INFO`'s
//! `tcpi_last_data_recv`, the time since the last segment with data
//! (include/uapi/linux/tcp.h; set from `icsk_ack.lrcvtime` in
//! net/ipv4/tcp.c `tcp_get_info`). Bare ACKs do not count, so a peer
//! whose kernel still acknowledges but whose SSH server is stopped, or a
//! middlebox that swallows the traffic, is seen as silent. libssh2 reads
//! the keepalive replies itself and does not tell.
//!
//! During a stream the host also writes a newline to the command's
//! stdin every half interval: the agent answers it (an empty round in
//! the capture stream) and ends by itself when it stops coming
//! (`--alive-timeout`), so a dead link leaves no agent on the board.

use std::os::fd::RawFd;
use std::time::Duration;

/// How often to ask and how many unanswered asks kill the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alive {
    pub interval: Duration,
    pub count: u32,
}

/// `ServerAliveInterval` when neither ssh_config nor `-o` set it. ssh's
/// own default is 0 (never), which is how whosent-deploy hung forever
/// on a dead link.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// `ServerAliveCountMax` when unset (ssh's default is 3).
pub const DEFAULT_COUNT: u32 = 2;

impl Default for Alive {
    fn default() -> Self {
        Alive {
            interval: DEFAULT_INTERVAL,
            count: DEFAULT_COUNT,
        }
    }
}

impl Alive {
    /// From ssh_config's or `-o`'s values; `ServerAliveInterval 0` would
    /// switch keepalives off in ssh, which is refused by the caller.
    pub fn new(interval: Option<u32>, count: Option<u32>) -> Alive {
        let d = Alive::default();
        Alive {
            interval: interval.map_or(d.interval, |s| Duration::from_secs(s.into())),
            count: count.unwrap_or(d.count),
        }
    }

    /// Silence after which the link counts as dead.
    pub fn dead_after(&self) -> Duration {
        self.interval * (self.count + 1)
    }

    /// How often a stream's command gets a heartbeat on its stdin: often
    /// enough that its answer keeps the link from looking idle, so no
    /// keepalive (whose replies libssh2 keeps in a list for the whole
    /// session, libssh2 `packet.c`) is needed while the agent runs.
    pub fn heartbeat(&self) -> Duration {
        (self.interval / 2).max(Duration::from_millis(200))
    }
}

/// Time since the peer last sent data on `fd`; `None` if the kernel
/// does not say (then only the operation's own age counts).
pub(crate) fn quiet(fd: RawFd) -> Option<Duration> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len`
    // bytes into it and fails harmlessly on a closed or non-TCP fd.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| Duration::from_millis(info.tcpi_last_data_recv.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_declare_a_dead_link_after_about_30_s() {
        assert_eq!(Alive::default().dead_after(), Duration::from_secs(30));
        let a = Alive::new(Some(15), None);
        assert_eq!((a.interval, a.count), (Duration::from_secs(15), 2));
        assert_eq!(
            Alive::new(None, Some(5)).dead_after(),
            Duration::from_secs(60)
        );
        assert_eq!(
            Alive::new(Some(1), Some(0)).heartbeat(),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn the_kernel_counts_the_silence_of_a_tcp_peer() {
        use std::io::Write;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        use std::os::fd::AsRawFd;
        s.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let q = quiet(c.as_raw_fd()).expect("TCP_INFO");
        assert!(
            q >= Duration::from_millis(250) && q < Duration::from_secs(5),
            "{q:?}"
        );
        s.write_all(b"y").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(quiet(c.as_raw_fd()).unwrap() < Duration::from_millis(250));
        assert_eq!(quiet(-1), None);
    }
}
