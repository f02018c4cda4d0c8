//! `signal_storm`: a signal load generator for benchmarks.
//!
//! A forked receiver child installs a counting handler (`SA_RESTART`) for
//! the storm signal and sleeps in a blocking read of a control pipe; the
//! parent sends the signals with kill(2) as fast as it can. Signals are
//! neither blocked nor ignored, so every kill() fires signal_generate in
//! the kernel; with a non-RT signal many of them find the previous one
//! still pending (result=already_pending) while the receiver is not yet
//! scheduled, which is why `received` is usually lower than `sent`.
//! At the end the parent closes the control pipe, the receiver reports
//! how many times its handler ran and exits, and the parent reaps it.
//!
//! Output lines (stdout, flushed after each):
//!   `noise sender=<pid> receiver=<pid> sig=<n>`          (with --noise)
//!   `storm ready receiver=<pid>`                          (then reads a stdin line with --wait-stdin)
//!   `storm sent=<N> sig=<S> receiver=<pid> sender=<pid> elapsed_ns=<ns> rate_per_s=<r> received=<n>`
//!   `forks=<K> sent=<k> sig=<S> receiver=<pid> parent=<pid> elapsed_ns=<ns> rate_per_s=<r> received=<n>`
//!     (instead of the `storm sent` line, with --forks)
//!   `noise sent=<M> sig=<n> sender=<pid> receiver=<pid> received=<n>` (with --noise)
//! Exit status 0 when every signal was sent, 1 otherwise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use whosent_testbins::{
    close, emit, errno, errno_name, getpid, parse_num, parse_sig_arg, pipe, read_exact_fd,
    usage_exit, write_all_fd,
};

const PROG: &str = "signal_storm";
const USAGE: &str = "signal_storm (--count N | --forks K) [--sig S] [--noise M] [--wait-stdin]";

/// Handler runs in a receiver child.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_sig: libc::c_int) {
    RECEIVED.fetch_add(1, Ordering::Relaxed);
}

fn die(what: &str) -> ! {
    eprintln!("{PROG}: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(1);
}

/// In a long-lived forked child: close every inherited descriptor except
/// stdio and `keep`, so that the parent's closing of another child's
/// control pipe is not defeated by a copy held here.
fn close_inherited(keep: &[i32]) {
    for fd in 3..1024 {
        if !keep.contains(&fd) {
            close(fd);
        }
    }
}

fn fork() -> i32 {
    // SAFETY: this program is single-threaded whenever it forks, and the
    // children only make raw syscalls before _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        die("fork");
    }
    pid
}

fn exit_child(code: i32) -> ! {
    // SAFETY: _exit skips atexit handlers and stdio flushing, as a forked
    // child must.
    unsafe { libc::_exit(code) }
}

/// A forked child with two pipes to it: `ctl` (parent writes; closing it
/// tells the child to finish) and `res` (child writes its 8-byte result).
struct Child {
    pid: i32,
    ctl: i32,
    res: i32,
}

impl Child {
    /// Closes the control pipe, reads the child's result, reaps it.
    fn finish(self) -> u64 {
        close(self.ctl);
        let mut buf = [0u8; 8];
        let ok = read_exact_fd(self.res, &mut buf);
        close(self.res);
        if !ok {
            // SAFETY: kill of our own child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        reap(self.pid);
        if ok {
            u64::from_ne_bytes(buf)
        } else {
            0
        }
    }
}

fn reap(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r >= 0 || errno() != libc::EINTR {
            return status;
        }
    }
}

/// Forks a receiver that counts `sig` and returns once its handler is
/// installed.
fn spawn_receiver(sig: i32) -> Child {
    let (ctl_rd, ctl_wr) = pipe().unwrap_or_else(|_| die("pipe"));
    let (res_rd, res_wr) = pipe().unwrap_or_else(|_| die("pipe"));
    let pid = fork();
    if pid == 0 {
        close_inherited(&[ctl_rd, res_wr]);
        // SAFETY: installing an async-signal-safe handler (one atomic add).
        let ok = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0
        };
        if !ok {
            exit_child(1);
        }
        // Ready: the parent waits for this byte before sending anything.
        write_all_fd(res_wr, &[1]);
        let mut b = [0u8; 1];
        // Blocks (handlers run and the read restarts) until the parent
        // closes the control pipe.
        while read_exact_fd(ctl_rd, &mut b) {}
        let n = RECEIVED.load(Ordering::Relaxed) as u64;
        write_all_fd(res_wr, &n.to_ne_bytes());
        exit_child(0);
    }
    close(ctl_rd);
    close(res_wr);
    let mut b = [0u8; 1];
    if !read_exact_fd(res_rd, &mut b) {
        eprintln!("{PROG}: receiver {pid} failed to install its handler for sig={sig}");
        std::process::exit(1);
    }
    Child {
        pid,
        ctl: ctl_wr,
        res: res_rd,
    }
}

/// Forks a noise sender that, once a byte arrives on its control pipe,
/// sends `count` `sig`s to `target` and reports how many succeeded.
fn spawn_noise_sender(sig: i32, target: i32, count: u64) -> Child {
    let (ctl_rd, ctl_wr) = pipe().unwrap_or_else(|_| die("pipe"));
    let (res_rd, res_wr) = pipe().unwrap_or_else(|_| die("pipe"));
    let pid = fork();
    if pid == 0 {
        close_inherited(&[ctl_rd, res_wr]);
        let mut b = [0u8; 1];
        let mut sent = 0u64;
        if read_exact_fd(ctl_rd, &mut b) {
            for _ in 0..count {
                // SAFETY: plain syscall.
                if unsafe { libc::kill(target, sig) } == 0 {
                    sent += 1;
                }
            }
        }
        write_all_fd(res_wr, &sent.to_ne_bytes());
        exit_child(0);
    }
    close(ctl_rd);
    close(res_wr);
    Child {
        pid,
        ctl: ctl_wr,
        res: res_rd,
    }
}

/// Sends `count` signals from this process; returns how many succeeded.
fn storm(sig: i32, target: i32, count: u64) -> u64 {
    let mut sent = 0;
    for _ in 0..count {
        // SAFETY: plain syscall.
        if unsafe { libc::kill(target, sig) } == 0 {
            sent += 1;
        } else {
            eprintln!("{PROG}: kill({target}, {sig}): {}", errno_name(errno()));
            break;
        }
    }
    sent
}

/// Forks `k` children that each send one signal and exit; returns how
/// many exited reporting success. Only these children are counted: the
/// noise sender, which may exit meanwhile, is reaped here too but ignored.
fn fork_storm(sig: i32, target: i32, k: u64) -> u64 {
    let mut ok = 0;
    let mut live = std::collections::HashSet::new();
    // Reaps one child; false when there is none left to wait for.
    let mut wait_one = |live: &mut std::collections::HashSet<i32>| loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return false;
        }
        if live.remove(&r) {
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                ok += 1;
            }
            return true;
        }
    };
    let mut i = 0;
    while i < k {
        // SAFETY: single-threaded; the child only makes raw syscalls.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: plain syscall.
            let r = unsafe { libc::kill(target, sig) };
            exit_child(if r == 0 { 0 } else { 1 });
        }
        if pid < 0 {
            // Out of processes: let one finish, then retry.
            if live.is_empty() || !wait_one(&mut live) {
                die("fork");
            }
            continue;
        }
        live.insert(pid);
        i += 1;
    }
    while !live.is_empty() && wait_one(&mut live) {}
    ok
}

fn rate(n: u64, ns: u128) -> u128 {
    n as u128 * 1_000_000_000 / ns.max(1)
}

fn main() {
    let mut count: Option<u64> = None;
    let mut forks: Option<u64> = None;
    let mut sig = libc::SIGUSR1;
    let mut noise: Option<u64> = None;
    let mut wait_stdin = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--count" => count = Some(parse_num(PROG, "--count", args.next(), USAGE)),
            "--forks" => forks = Some(parse_num(PROG, "--forks", args.next(), USAGE)),
            "--sig" => sig = parse_sig_arg(PROG, args.next(), USAGE),
            "--noise" => noise = Some(parse_num(PROG, "--noise", args.next(), USAGE)),
            "--wait-stdin" => wait_stdin = true,
            s => usage_exit(PROG, &format!("unexpected argument {s:?}"), USAGE),
        }
    }
    if count.is_some() == forks.is_some() {
        usage_exit(PROG, "give exactly one of --count and --forks", USAGE);
    }
    if [0, libc::SIGKILL, libc::SIGSTOP].contains(&sig) {
        usage_exit(PROG, &format!("sig={sig} cannot be caught"), USAGE);
    }
    let me = getpid();

    let receiver = spawn_receiver(sig);
    let noise_pair = noise.map(|m| {
        let nsig = if sig == libc::SIGUSR2 {
            libc::SIGUSR1
        } else {
            libc::SIGUSR2
        };
        let nrecv = spawn_receiver(nsig);
        let nsend = spawn_noise_sender(nsig, nrecv.pid, m);
        emit(&format!(
            "noise sender={} receiver={} sig={nsig}",
            nsend.pid, nrecv.pid
        ));
        (nsig, m, nsend, nrecv)
    });

    emit(&format!("storm ready receiver={}", receiver.pid));
    if wait_stdin {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    if let Some((_, _, nsend, _)) = &noise_pair {
        write_all_fd(nsend.ctl, &[1]);
    }

    let start = Instant::now();
    let (sent, wanted) = match (count, forks) {
        (Some(n), _) => (storm(sig, receiver.pid, n), n),
        (_, Some(k)) => (fork_storm(sig, receiver.pid, k), k),
        _ => unreachable!(),
    };
    let ns = start.elapsed().as_nanos();
    let rpid = receiver.pid;
    let received = receiver.finish();
    let r = rate(sent, ns);
    if forks.is_some() {
        emit(&format!(
            "forks={wanted} sent={sent} sig={sig} receiver={rpid} parent={me} elapsed_ns={ns} rate_per_s={r} received={received}"
        ));
    } else {
        emit(&format!(
            "storm sent={sent} sig={sig} receiver={rpid} sender={me} elapsed_ns={ns} rate_per_s={r} received={received}"
        ));
    }

    let mut all_ok = sent == wanted;
    if let Some((nsig, m, nsend, nrecv)) = noise_pair {
        let (spid, rpid) = (nsend.pid, nrecv.pid);
        let nsent = nsend.finish();
        let nreceived = nrecv.finish();
        emit(&format!(
            "noise sent={nsent} sig={nsig} sender={spid} receiver={rpid} received={nreceived}"
        ));
        all_ok &= nsent == m;
    }
    std::process::exit(if all_ok { 0 } else { 1 });
}
