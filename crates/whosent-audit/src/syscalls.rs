//! The signal-sending system calls by audit arch, and where each keeps
//! its target and signal.
//!
//! A SYSCALL record gives `arch` as the AUDIT_ARCH_* value of the
//! caller's ABI (include/uapi/linux/audit.h: the ELF machine, with
//! `__AUDIT_ARCH_64BIT` 0x80000000 and `__AUDIT_ARCH_LE` 0x40000000)
//! and `syscall` as that ABI's number, so a 32-bit program on a 64-bit
//! kernel (`-F arch=b32`) has numbers of its own. The numbers are the
//! kernel's syscall tables:
//! - x86_64: arch/x86/entry/syscalls/syscall_64.tbl
//! - i386: arch/x86/entry/syscalls/syscall_32.tbl
//! - arm (EABI, also compat tasks on arm64): arch/arm/tools/syscall.tbl
//! - aarch64 and riscv64: include/uapi/asm-generic/unistd.h
//!
//! as installed by Debian's linux-libc-dev for each (asm/unistd_64.h,
//! asm/unistd_32.h, arm-linux-gnueabihf's asm/unistd-eabi.h,
//! aarch64-linux-gnu's asm-generic/unistd.h).

/// A system call that sends a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// kill(pid, sig): a process, or a group when pid <= 0.
    Kill,
    /// tkill(tid, sig)
    Tkill,
    /// tgkill(tgid, tid, sig)
    Tgkill,
    /// rt_sigqueueinfo(pid, sig, info): sigqueue(3).
    RtSigqueueinfo,
    /// rt_tgsigqueueinfo(tgid, tid, sig, info)
    RtTgsigqueueinfo,
    /// pidfd_send_signal(pidfd, sig, info, flags), 5.1+.
    PidfdSendSignal,
}

const CALLS: [(Call, &str); 6] = [
    (Call::Kill, "kill"),
    (Call::Tkill, "tkill"),
    (Call::Tgkill, "tgkill"),
    (Call::RtSigqueueinfo, "rt_sigqueueinfo"),
    (Call::RtTgsigqueueinfo, "rt_tgsigqueueinfo"),
    (Call::PidfdSendSignal, "pidfd_send_signal"),
];

impl Call {
    pub fn name(self) -> &'static str {
        CALLS
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("", |(_, n)| n)
    }

    pub fn from_name(n: &str) -> Option<Call> {
        CALLS.iter().find(|(_, s)| *s == n).map(|(c, _)| *c)
    }

    /// Every call, for building rules.
    pub fn all() -> impl Iterator<Item = Call> {
        CALLS.iter().map(|(c, _)| *c)
    }

    /// The argument that holds the signal.
    pub fn sig_arg(self) -> usize {
        match self {
            Call::Tgkill | Call::RtTgsigqueueinfo => 2,
            _ => 1,
        }
    }

    /// The argument that names the target thread, for the calls that
    /// send to one thread.
    pub fn tid_arg(self) -> Option<usize> {
        match self {
            Call::Tkill => Some(0),
            Call::Tgkill | Call::RtTgsigqueueinfo => Some(1),
            _ => None,
        }
    }

    /// Whether the signal goes to a whole process (not one thread).
    pub fn group(self) -> bool {
        self.tid_arg().is_none()
    }

    /// The si_code the kernel gives it: kill and pidfd_send_signal
    /// without a siginfo send SI_USER (`prepare_kill_siginfo`), tkill
    /// and tgkill SI_TKILL (`do_tkill`). The sigqueue calls pass the
    /// caller's own siginfo, which must have a negative code for
    /// another process; glibc's sigqueue(3) sends SI_QUEUE, assumed
    /// here, as for pidfd_send_signal with a siginfo (audit does not
    /// record the siginfo).
    pub fn code(self, info_arg: u64) -> i32 {
        const SI_USER: i32 = 0;
        const SI_QUEUE: i32 = -1;
        const SI_TKILL: i32 = -6;
        match self {
            Call::Kill => SI_USER,
            Call::PidfdSendSignal if info_arg == 0 => SI_USER,
            Call::Tkill | Call::Tgkill => SI_TKILL,
            _ => SI_QUEUE,
        }
    }
}

/// One ABI as audit names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    /// The AUDIT_ARCH_* value.
    pub audit: u32,
    /// Its name in whosent's records.
    pub name: &'static str,
    /// The name ausearch -i and ENRICHED print (auparse 3.0.9's), where
    /// it differs.
    pub auparse: Option<&'static str>,
    /// Whether its registers are 32 bits wide (`-F arch=b32`).
    pub b32: bool,
    calls: [(Call, u32); 6],
}

const fn table(k: u32, tk: u32, tg: u32, q: u32, tq: u32, p: u32) -> [(Call, u32); 6] {
    [
        (Call::Kill, k),
        (Call::Tkill, tk),
        (Call::Tgkill, tg),
        (Call::RtSigqueueinfo, q),
        (Call::RtTgsigqueueinfo, tq),
        (Call::PidfdSendSignal, p),
    ]
}

/// asm-generic/unistd.h: kill 129, tkill 130, tgkill 131,
/// rt_sigqueueinfo 138, rt_tgsigqueueinfo 240, pidfd_send_signal 424.
const GENERIC: [(Call, u32); 6] = table(129, 130, 131, 138, 240, 424);
/// arch/arm/tools/syscall.tbl (EABI: no __NR_SYSCALL_BASE offset).
const ARM: [(Call, u32); 6] = table(37, 238, 268, 178, 363, 424);

pub const ARCHES: [Arch; 5] = [
    Arch {
        audit: 0xc000_003e,
        name: "x86_64",
        auparse: None,
        b32: false,
        calls: table(62, 200, 234, 129, 297, 424),
    },
    Arch {
        audit: 0x4000_0003,
        name: "i386",
        auparse: None,
        b32: true,
        calls: table(37, 238, 270, 178, 335, 424),
    },
    Arch {
        audit: 0xc000_00b7,
        name: "aarch64",
        auparse: None,
        b32: false,
        calls: GENERIC,
    },
    Arch {
        // AUDIT_ARCH_ARM, EM_ARM|__AUDIT_ARCH_LE: armv7 boards, and
        // 32-bit tasks on arm64 kernels.
        audit: 0x4000_0028,
        name: "arm",
        auparse: Some("armeb"),
        b32: true,
        calls: ARM,
    },
    Arch {
        audit: 0xc000_00f3,
        name: "riscv64",
        auparse: None,
        b32: false,
        calls: GENERIC,
    },
];

impl Arch {
    /// From the record's `arch`: hex as the kernel writes it
    /// (`c000003e`), or the name ausearch -i prints.
    pub fn from_field(v: &str) -> Option<&'static Arch> {
        match u32::from_str_radix(v, 16) {
            Ok(n) => ARCHES.iter().find(|a| a.audit == n),
            Err(_) => ARCHES.iter().find(|a| a.name == v || a.auparse == Some(v)),
        }
    }

    pub fn call(&self, nr: u32) -> Option<Call> {
        self.calls.iter().find(|(_, n)| *n == nr).map(|(c, _)| *c)
    }

    pub fn nr(&self, c: Call) -> u32 {
        self.calls
            .iter()
            .find(|(x, _)| *x == c)
            .map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auparse_calls_little_endian_arm_armeb() {
        // Checked with ausearch -i 3.0.9 on a record with arch=40000028:
        // it prints arch=armeb (and for 0x28, big-endian ARM,
        // unknown-elf-type(28)).
        let le = Arch::from_field("40000028").unwrap();
        assert_eq!((le.name, le.call(268)), ("arm", Some(Call::Tgkill)));
        assert_eq!(Arch::from_field("armeb"), Some(le));
    }

    #[test]
    fn numbers_per_abi() {
        let x = Arch::from_field("c000003e").unwrap();
        assert_eq!(
            (x.name, x.call(62), x.call(234)),
            ("x86_64", Some(Call::Kill), Some(Call::Tgkill))
        );
        let i = Arch::from_field("40000003").unwrap();
        assert_eq!(
            (i.b32, i.call(37), i.call(270)),
            (true, Some(Call::Kill), Some(Call::Tgkill))
        );
        let a = Arch::from_field("aarch64").unwrap();
        assert_eq!(a.call(129), Some(Call::Kill));
        assert_eq!(a.call(62), None);
        for arch in &ARCHES {
            assert_eq!(arch.call(424), Some(Call::PidfdSendSignal));
            for c in Call::all() {
                assert_eq!(arch.call(arch.nr(c)), Some(c));
            }
        }
        assert_eq!(Arch::from_field("c00000ff"), None);
    }
}
