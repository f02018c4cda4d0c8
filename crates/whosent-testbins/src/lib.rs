//! Small helpers shared by the whosent test programs.
//!
//! The binaries (`test_receiver`, `test_sender`, `signal_storm`) print
//! machine-readable `key=value` lines on stdout, one event per line, and
//! flush after each line so a test reading them through a pipe sees each
//! line as soon as it happens. Only std and libc are used so that the
//! programs cross-compile statically for the musl targets.

use std::io::Write;

/// Signal names accepted on command lines, in kernel numbering (the
/// generic Linux numbering used by x86, arm and aarch64).
const NAMES: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Highest signal number on Linux.
pub const SIG_MAX: i32 = 64;

/// Parses a signal given as a number (`10`), a name (`USR1`, `SIGUSR1`,
/// any case) or the number 0 (the "does it exist" probe of kill(2)).
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (0..=SIG_MAX).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    NAMES.iter().find(|(n, _)| *n == bare).map(|&(_, v)| v)
}

/// The calling thread's kernel thread id. Through the raw syscall rather
/// than `libc::gettid` because older musl releases lack the wrapper; the
/// syscall is also async-signal-safe, so handlers may call this.
pub fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// `getpid()`.
pub fn getpid() -> i32 {
    // SAFETY: cannot fail.
    unsafe { libc::getpid() }
}

/// `getuid()`.
pub fn getuid() -> u32 {
    // SAFETY: cannot fail.
    unsafe { libc::getuid() }
}

/// The current `errno`.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Symbolic name of an errno value (`ESRCH`), or `E<n>` for rare ones.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EINVAL => "EINVAL",
        libc::EPIPE => "EPIPE",
        libc::ENOSYS => "ENOSYS",
        _ => return format!("E{e}"),
    };
    name.to_string()
}

/// Sets the calling thread's name (its comm, what ftrace reports) with
/// `prctl(PR_SET_NAME)`; the kernel keeps the first 15 bytes. Used by
/// `--comm` to test hostile names. Exits with status 2 on a NUL.
pub fn set_comm(prog: &str, name: &str) {
    let Ok(c) = std::ffi::CString::new(name) else {
        eprintln!("{prog}: --comm cannot contain a NUL byte");
        std::process::exit(2);
    };
    // SAFETY: PR_SET_NAME reads a NUL-terminated string, which `c` is
    // and outlives the call.
    if unsafe { libc::prctl(libc::PR_SET_NAME, c.as_ptr()) } != 0 {
        eprintln!(
            "{prog}: prctl(PR_SET_NAME): {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
}

/// Writes one line to stdout and flushes it. If stdout is gone (the
/// reading test closed its end of the pipe) there is nobody left to
/// report to, so the process exits quietly with status 1.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(1);
    }
}

/// Prints a one-line usage error on stderr and exits with status 2.
pub fn usage_exit(prog: &str, problem: &str, usage: &str) -> ! {
    eprintln!("{prog}: {problem}; usage: {usage}");
    std::process::exit(2);
}

/// Parses a number argument or exits with a usage error.
pub fn parse_num<T: std::str::FromStr>(
    prog: &str,
    what: &str,
    s: Option<String>,
    usage: &str,
) -> T {
    match s {
        None => usage_exit(prog, &format!("{what} needs a value"), usage),
        Some(s) => s
            .parse()
            .unwrap_or_else(|_| usage_exit(prog, &format!("bad {what} value {s:?}"), usage)),
    }
}

/// Parses a signal argument or exits with a usage error.
pub fn parse_sig_arg(prog: &str, s: Option<String>, usage: &str) -> i32 {
    match s {
        None => usage_exit(prog, "missing signal", usage),
        Some(s) => parse_signal(&s)
            .unwrap_or_else(|| usage_exit(prog, &format!("bad signal {s:?}"), usage)),
    }
}

/// A pipe as (read end, write end), both close-on-exec.
pub fn pipe() -> std::io::Result<(i32, i32)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((fds[0], fds[1]))
}

/// Writes all of `buf` to `fd`, retrying on EINTR and short writes.
/// Only raw syscalls, so usable in a forked child.
pub fn write_all_fd(fd: i32, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// Reads exactly `buf.len()` bytes from `fd`, retrying on EINTR; false
/// on EOF or error. Only raw syscalls, so usable in a forked child.
pub fn read_exact_fd(fd: i32, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the tail of buf is valid for writing.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return false;
        }
        if n == 0 {
            return false;
        }
        got += n as usize;
    }
    true
}

/// `close(fd)`, ignoring errors.
pub fn close(fd: i32) {
    // SAFETY: closing a descriptor we own.
    unsafe {
        libc::close(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(parse_signal("10"), Some(10));
        assert_eq!(parse_signal("usr1"), Some(10));
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("0"), Some(0));
        assert_eq!(parse_signal("64"), Some(64));
        assert_eq!(parse_signal("65"), None);
        assert_eq!(parse_signal("-1"), None);
        assert_eq!(parse_signal("SIGFOO"), None);
        for (name, num) in NAMES {
            assert_eq!(parse_signal(name), Some(num));
        }
    }

    #[test]
    fn names_match_this_targets_numbering() {
        let libc_nums = [
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGABRT,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGKILL,
            libc::SIGUSR1,
            libc::SIGSEGV,
            libc::SIGUSR2,
            libc::SIGPIPE,
            libc::SIGALRM,
            libc::SIGTERM,
            libc::SIGSTKFLT,
            libc::SIGCHLD,
            libc::SIGCONT,
            libc::SIGSTOP,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGURG,
            libc::SIGXCPU,
            libc::SIGXFSZ,
            libc::SIGVTALRM,
            libc::SIGPROF,
            libc::SIGWINCH,
            libc::SIGIO,
            libc::SIGPWR,
            libc::SIGSYS,
        ];
        for ((_, num), want) in NAMES.iter().zip(libc_nums) {
            assert_eq!(*num, want);
        }
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::ESRCH), "ESRCH");
        assert_eq!(errno_name(9999), "E9999");
    }
}
