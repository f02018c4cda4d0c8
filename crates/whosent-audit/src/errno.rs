//! The errno values the signal calls return (kill(2), tgkill(2),
//! rt_sigqueueinfo(2), pidfd_send_signal(2)), as numbers in raw records
//! (`exit=-1`) and as names in interpreted ones (`exit=EPERM(...)`).
//! The numbers are include/uapi/asm-generic/errno-base.h and errno.h,
//! which x86, arm, arm64 and riscv all use.

const NAMES: [(i64, &str); 10] = [
    (1, "EPERM"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (9, "EBADF"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (14, "EFAULT"),
    (22, "EINVAL"),
    (38, "ENOSYS"),
    (95, "EOPNOTSUPP"),
];

pub fn name(errno: i64) -> Option<&'static str> {
    NAMES.iter().find(|(n, _)| *n == errno).map(|(_, s)| *s)
}

/// `exit` as written: `-1`, or ausearch -i's `EPERM(Operation not
/// permitted)`; the call's return value.
pub fn parse_exit(v: &str) -> Option<i64> {
    if let Ok(n) = v.parse() {
        return Some(n);
    }
    let n = v.split('(').next()?;
    NAMES.iter().find(|(_, s)| *s == n).map(|(e, _)| -e)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exits() {
        assert_eq!(super::parse_exit("-3"), Some(-3));
        assert_eq!(super::parse_exit("0"), Some(0));
        assert_eq!(
            super::parse_exit("EPERM(Operation not permitted)"),
            Some(-1)
        );
        assert_eq!(super::parse_exit("EWHAT(x)"), None);
        assert_eq!(super::name(3), Some("ESRCH"));
    }
}
