//! Signal names and numbers, following `kill -l`.
//!
//! The numbers are Linux's generic ones, shared by x86, arm and arm64
//! (`include/uapi/asm-generic/signal.h`). MIPS, SPARC and Alpha number
//! some signals differently; whosent does not target them.

use std::fmt;

/// The classic signals 1..=31, index = number - 1.
const CLASSIC: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// The first real-time signal a program can use. The kernel's is 32,
/// but glibc keeps 32 and 33 for itself, and `kill -l` (bash,
/// procps) calls 34 `SIGRTMIN`; users type what `kill -l` shows.
pub const RTMIN: i32 = 34;
pub const RTMAX: i32 = 64;

/// The numbers the cause rules and the exit record name
/// (`include/uapi/asm-generic/signal.h`).
pub const SIGHUP: i32 = 1;
pub const SIGILL: i32 = 4;
pub const SIGTRAP: i32 = 5;
pub const SIGBUS: i32 = 7;
pub const SIGFPE: i32 = 8;
pub const SIGKILL: i32 = 9;
pub const SIGSEGV: i32 = 11;
pub const SIGPIPE: i32 = 13;
pub const SIGCHLD: i32 = 17;
pub const SIGCONT: i32 = 18;
pub const SIGXCPU: i32 = 24;
pub const SIGXFSZ: i32 = 25;

/// Aliases `kill -l` and older programs accept.
const ALIASES: [(&str, i32); 3] = [("IOT", 6), ("POLL", 29), ("CLD", 17)];

/// The error when a signal spec names nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSignal(pub String);

impl fmt::Display for UnknownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown signal '{}': use a name or number as `kill -l` lists them (KILL, SIGTERM, 9, RTMIN+3), 1..=64",
            self.0
        )
    }
}

impl std::error::Error for UnknownSignal {}

/// Parses `KILL`, `SIGKILL`, `kill`, `9`, `RTMIN+3`, `SIGRTMAX-1`, and
/// each of them after one `-`, as `kill -9` and `kill -KILL` write them
/// (`--sig=-9`). Signal 0 is refused: it is a permission probe, never
/// generated.
pub fn parse(spec: &str) -> Result<i32, UnknownSignal> {
    let err = || UnknownSignal(spec.to_string());
    let s = spec.trim();
    let s = s.strip_prefix('-').unwrap_or(s);
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=RTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(err())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(i) = CLASSIC.iter().position(|c| *c == name) {
        return Ok(i as i32 + 1);
    }
    if let Some(&(_, n)) = ALIASES.iter().find(|(a, _)| *a == name) {
        return Ok(n);
    }
    let rt = |rest: &str, base: i32, sign: i32| -> Option<i32> {
        let off = if rest.is_empty() {
            0
        } else {
            let digits = rest.strip_prefix(if sign > 0 { '+' } else { '-' })?;
            digits.parse::<i32>().ok()?
        };
        let n = base + sign * off;
        (RTMIN..=RTMAX).contains(&n).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(rest, RTMIN, 1).ok_or_else(err);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(rest, RTMAX, -1).ok_or_else(err);
    }
    Err(err())
}

/// The `SIG…` name of a number, as `kill -l` prints it; numbers with
/// no name (32, 33, out of range) come out as `SIG<n>`.
pub fn name(sig: i32) -> String {
    match sig {
        1..=31 => format!("SIG{}", CLASSIC[sig as usize - 1]),
        RTMIN => "SIGRTMIN".to_string(),
        RTMAX => "SIGRTMAX".to_string(),
        n if n > RTMIN && n <= RTMIN + 15 => format!("SIGRTMIN+{}", n - RTMIN),
        n if n > RTMIN + 15 && n < RTMAX => format!("SIGRTMAX-{}", RTMAX - n),
        n => format!("SIG{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_spellings_kill_l_users_type() {
        for s in ["KILL", "SIGKILL", "kill", "sigkill", "9", " 9 "] {
            assert_eq!(parse(s), Ok(9), "{s}");
        }
        assert_eq!(parse("RTMIN+3"), Ok(37));
        assert_eq!(parse("SIGRTMIN"), Ok(34));
        assert_eq!(parse("rtmax-1"), Ok(63));
        assert_eq!(parse("IOT"), Ok(6));
        assert_eq!(parse("CHLD"), Ok(17));
        // As `kill -9` and `kill -KILL` write them.
        assert_eq!(parse("-9"), Ok(9));
        assert_eq!(parse("-SIGKILL"), Ok(9));
        assert_eq!(parse("-RTMIN+3"), Ok(37));
    }

    #[test]
    fn refuses_nonsense() {
        for s in [
            "0", "65", "99", "--9", "-0", "-", "KILLL", "RTMIN+40", "RTMIN-1", "RTMAX+1", "",
        ] {
            let e = parse(s).unwrap_err();
            assert!(e.to_string().contains("kill -l"), "{s}: {e}");
        }
    }

    #[test]
    fn names_round_trip() {
        for n in 1..=64 {
            let nm = name(n);
            if n == 32 || n == 33 {
                assert_eq!(nm, format!("SIG{n}"));
                continue;
            }
            assert_eq!(parse(&nm), Ok(n), "{nm}");
        }
        assert_eq!(name(9), "SIGKILL");
        assert_eq!(name(37), "SIGRTMIN+3");
        assert_eq!(name(62), "SIGRTMAX-2");
    }
}
