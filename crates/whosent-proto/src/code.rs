//! `si_code` names (`include/uapi/asm-generic/siginfo.h`).
//!
//! signal_generate reports `SEND_SIG_NOINFO` as 0 (SI_USER) and
//! `SEND_SIG_PRIV` as 0x80 (SI_KERNEL); every other value is the real
//! si_code, whose positive values mean something per signal.

/// Codes valid for any signal.
const GENERIC: [(i32, &str); 10] = [
    (0, "SI_USER"),
    (0x80, "SI_KERNEL"),
    (-1, "SI_QUEUE"),
    (-2, "SI_TIMER"),
    (-3, "SI_MESGQ"),
    (-4, "SI_ASYNCIO"),
    (-5, "SI_SIGIO"),
    (-6, "SI_TKILL"),
    (-7, "SI_DETHREAD"),
    (-60, "SI_ASYNCNL"),
];

/// Positive codes, per signal; index = code - 1.
fn per_signal(sig: i32) -> &'static [&'static str] {
    match sig {
        4 => &[
            "ILL_ILLOPC",
            "ILL_ILLOPN",
            "ILL_ILLADR",
            "ILL_ILLTRP",
            "ILL_PRVOPC",
            "ILL_PRVREG",
            "ILL_COPROC",
            "ILL_BADSTK",
            "ILL_BADIADDR",
        ],
        5 => &[
            "TRAP_BRKPT",
            "TRAP_TRACE",
            "TRAP_BRANCH",
            "TRAP_HWBKPT",
            "TRAP_UNK",
            "TRAP_PERF",
        ],
        7 => &[
            "BUS_ADRALN",
            "BUS_ADRERR",
            "BUS_OBJERR",
            "BUS_MCEERR_AR",
            "BUS_MCEERR_AO",
        ],
        8 => &[
            "FPE_INTDIV",
            "FPE_INTOVF",
            "FPE_FLTDIV",
            "FPE_FLTOVF",
            "FPE_FLTUND",
            "FPE_FLTRES",
            "FPE_FLTINV",
            "FPE_FLTSUB",
        ],
        11 => &[
            "SEGV_MAPERR",
            "SEGV_ACCERR",
            "SEGV_BNDERR",
            "SEGV_PKUERR",
            "SEGV_ACCADI",
            "SEGV_ADIDERR",
            "SEGV_ADIPERR",
            "SEGV_MTEAERR",
            "SEGV_MTESERR",
            "SEGV_CPERR",
        ],
        17 => &[
            "CLD_EXITED",
            "CLD_KILLED",
            "CLD_DUMPED",
            "CLD_TRAPPED",
            "CLD_STOPPED",
            "CLD_CONTINUED",
        ],
        29 => &[
            "POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP",
        ],
        31 => &["SYS_SECCOMP", "SYS_USER_DISPATCH"],
        _ => &[],
    }
}

/// The name of `code` for signal `sig`, or `None` when the kernel
/// headers give it none (vendor or arch-specific codes).
pub fn name(sig: i32, code: i32) -> Option<&'static str> {
    if let Some(&(_, n)) = GENERIC.iter().find(|(c, _)| *c == code) {
        return Some(n);
    }
    match sig {
        // FPE_FLTUNK and FPE_CONDTRAP sit after arch-specific gaps.
        8 if code == 14 => Some("FPE_FLTUNK"),
        8 if code == 15 => Some("FPE_CONDTRAP"),
        _ if code > 0 => per_signal(sig).get(code as usize - 1).copied(),
        _ => None,
    }
}

/// What a code says about where the signal came from, for people.
pub fn origin_hint(code: i32) -> &'static str {
    match code {
        0 => "kill() or similar from user space",
        0x80 => "the kernel",
        -1 => "sigqueue()",
        -2 => "a POSIX timer",
        -3 => "a message queue",
        -4 => "async I/O",
        -5 => "queued SIGIO",
        -6 => "tkill()/tgkill()",
        _ if code > 0 => "the kernel (fault, child state or I/O)",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::name;

    #[test]
    fn generic_and_per_signal_codes() {
        assert_eq!(name(9, 0), Some("SI_USER"));
        assert_eq!(name(9, 0x80), Some("SI_KERNEL"));
        assert_eq!(name(10, -1), Some("SI_QUEUE"));
        assert_eq!(name(10, -6), Some("SI_TKILL"));
        assert_eq!(name(14, -2), Some("SI_TIMER"));
        assert_eq!(name(11, 1), Some("SEGV_MAPERR"));
        assert_eq!(name(11, 2), Some("SEGV_ACCERR"));
        assert_eq!(name(17, 1), Some("CLD_EXITED"));
        assert_eq!(name(17, 2), Some("CLD_KILLED"));
        assert_eq!(name(8, 14), Some("FPE_FLTUNK"));
        assert_eq!(name(7, 4), Some("BUS_MCEERR_AR"));
    }

    #[test]
    fn unknown_codes_have_no_name() {
        assert_eq!(name(9, 1), None);
        assert_eq!(name(11, 99), None);
        assert_eq!(name(10, -99), None);
        assert_eq!(name(8, 10), None);
    }
}
