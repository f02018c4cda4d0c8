//! `test_sender`: sends one signal (or `--repeat N` of them) and prints
//! what it did, one line per send:
//!
//!   `sent how=kill sig=<n> to=<pid> sender_pid=<pid> sender_tid=<tid> uid=<uid> ok`
//!   `sent how=tgkill sig=<n> to=<tid> tgid=<tgid> sender_pid=.. sender_tid=.. uid=.. ok`
//!   `sent how=sigqueue sig=<n> to=<pid> value=<int> sender_pid=.. sender_tid=.. uid=.. ok`
//!   `sent how=killpg sig=<n> to=<pgid> sender_pid=.. sender_tid=.. uid=.. ok`
//!   `sent how=tkill sig=<n> to=<tid> sender_pid=.. sender_tid=.. uid=.. ok`
//!   `sent how=tgsigqueue sig=<n> to=<tid> tgid=<tgid> value=<int> sender_pid=.. ..`
//!   `sent how=pidfd sig=<n> to=<pid> sender_pid=.. sender_tid=.. uid=.. ok`
//!
//! Each names the system call it makes: kill(2), tgkill(2), sigqueue(3)
//! (rt_sigqueueinfo), kill(2) of `-pgid`, tkill(2), rt_tgsigqueueinfo(2)
//! with an SI_QUEUE siginfo, and pidfd_open(2) + pidfd_send_signal(2)
//! with no siginfo (the audit fixtures record one of each).
//!
//! On failure the trailing `ok` is `err=<ERRNO NAME>` (e.g. `err=ESRCH`),
//! the strerror text goes to stderr, and the exit status is 1 (no further
//! repeats are sent). Targets must be positive: the process-wide forms
//! of kill(2) (0, -1, negative pids) are refused as bad arguments.

use std::time::Duration;
use whosent_testbins::{
    emit, errno, errno_name, getpid, gettid, getuid, parse_num, parse_sig_arg, set_comm, usage_exit,
};

const PROG: &str = "test_sender";
const USAGE: &str = "test_sender [--repeat N] [--delay-ms M] [--comm NAME] \
    (kill SIG PID | tgkill SIG TGID TID | sigqueue SIG PID VALUE | killpg SIG PGID \
    | tkill SIG TID | tgsigqueue SIG TGID TID VALUE | pidfd SIG PID)";

enum How {
    Kill { pid: i32 },
    Tgkill { tgid: i32, tid: i32 },
    Sigqueue { pid: i32, value: i32 },
    Killpg { pgid: i32 },
    Tkill { tid: i32 },
    Tgsigqueue { tgid: i32, tid: i32, value: i32 },
    Pidfd { pid: i32 },
}

fn target(what: &str, s: Option<String>) -> i32 {
    let v: i32 = parse_num(PROG, what, s, USAGE);
    if v <= 0 {
        usage_exit(
            PROG,
            &format!("{what} must be a positive id, not {v}"),
            USAGE,
        );
    }
    v
}

fn send(sig: i32, how: &How) -> Result<(), i32> {
    // SAFETY: plain syscalls with integer arguments.
    let rc = unsafe {
        match *how {
            How::Kill { pid } => libc::kill(pid, sig),
            How::Tgkill { tgid, tid } => libc::syscall(
                libc::SYS_tgkill,
                tgid as libc::c_long,
                tid as libc::c_long,
                sig as libc::c_long,
            ) as i32,
            How::Sigqueue { pid, value } => {
                // sigval is a union of int and pointer; an int stored
                // through the pointer member lands in the low bytes,
                // which is where the int member lives on little-endian.
                let sv = libc::sigval {
                    sival_ptr: value as isize as *mut libc::c_void,
                };
                libc::sigqueue(pid, sig, sv)
            }
            How::Killpg { pgid } => libc::kill(-pgid, sig),
            How::Tkill { tid } => {
                libc::syscall(libc::SYS_tkill, tid as libc::c_long, sig as libc::c_long) as i32
            }
            How::Tgsigqueue { tgid, tid, value } => {
                // The kernel refuses a siginfo with si_code >= 0 (or
                // SI_TKILL) for another process (do_rt_tgsigqueueinfo
                // in kernel/signal.c): SI_QUEUE, as sigqueue(3) sends.
                let mut info: libc::siginfo_t = std::mem::zeroed();
                info.si_signo = sig;
                info.si_code = libc::SI_QUEUE;
                // The union after si_signo, si_errno, si_code starts at
                // __ARCH_SI_PREAMBLE_SIZE (3 ints, 4 on 64-bit, where it
                // is pointer-aligned); its _rt member is si_pid, si_uid,
                // then si_value (include/uapi/asm-generic/siginfo.h).
                let words = (&mut info as *mut libc::siginfo_t).cast::<i32>();
                let u = if cfg!(target_pointer_width = "64") {
                    4
                } else {
                    3
                };
                *words.add(u) = libc::getpid();
                *words.add(u + 1) = libc::getuid() as i32;
                *words.add(u + 2) = value;
                libc::syscall(
                    libc::SYS_rt_tgsigqueueinfo,
                    tgid as libc::c_long,
                    tid as libc::c_long,
                    sig as libc::c_long,
                    &info as *const libc::siginfo_t,
                ) as i32
            }
            How::Pidfd { pid } => {
                let fd =
                    libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0 as libc::c_long);
                if fd < 0 {
                    -1
                } else {
                    let rc = libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd,
                        sig as libc::c_long,
                        std::ptr::null::<libc::siginfo_t>(),
                        0 as libc::c_long,
                    ) as i32;
                    let e = errno();
                    libc::close(fd as i32);
                    *libc::__errno_location() = e;
                    rc
                }
            }
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut repeat: u64 = 1;
    let mut delay_ms: u64 = 0;
    let sub = loop {
        match args.next() {
            None => usage_exit(PROG, "missing subcommand", USAGE),
            Some(a) => match a.as_str() {
                "--repeat" => repeat = parse_num(PROG, "--repeat", args.next(), USAGE),
                "--delay-ms" => delay_ms = parse_num(PROG, "--delay-ms", args.next(), USAGE),
                "--comm" => match args.next() {
                    Some(n) => set_comm(PROG, &n),
                    None => usage_exit(PROG, "--comm needs a name", USAGE),
                },
                s if s.starts_with('-') => {
                    usage_exit(PROG, &format!("unknown option {s:?}"), USAGE)
                }
                _ => break a,
            },
        }
    };
    let sig = parse_sig_arg(PROG, args.next(), USAGE);
    let how = match sub.as_str() {
        "kill" => How::Kill {
            pid: target("pid", args.next()),
        },
        "tgkill" => {
            let tgid = target("tgid", args.next());
            How::Tgkill {
                tgid,
                tid: target("tid", args.next()),
            }
        }
        "sigqueue" => {
            let pid = target("pid", args.next());
            How::Sigqueue {
                pid,
                value: parse_num(PROG, "value", args.next(), USAGE),
            }
        }
        "killpg" => How::Killpg {
            pgid: target("pgid", args.next()),
        },
        "tkill" => How::Tkill {
            tid: target("tid", args.next()),
        },
        "tgsigqueue" => {
            let tgid = target("tgid", args.next());
            let tid = target("tid", args.next());
            How::Tgsigqueue {
                tgid,
                tid,
                value: parse_num(PROG, "value", args.next(), USAGE),
            }
        }
        "pidfd" => How::Pidfd {
            pid: target("pid", args.next()),
        },
        s => usage_exit(PROG, &format!("unknown subcommand {s:?}"), USAGE),
    };
    if let Some(extra) = args.next() {
        usage_exit(PROG, &format!("unexpected argument {extra:?}"), USAGE);
    }

    let (name, to, extra) = match how {
        How::Kill { pid } => ("kill", pid, String::new()),
        How::Tgkill { tgid, tid } => ("tgkill", tid, format!(" tgid={tgid}")),
        How::Sigqueue { pid, value } => ("sigqueue", pid, format!(" value={value}")),
        How::Killpg { pgid } => ("killpg", pgid, String::new()),
        How::Tkill { tid } => ("tkill", tid, String::new()),
        How::Tgsigqueue { tgid, tid, value } => {
            ("tgsigqueue", tid, format!(" tgid={tgid} value={value}"))
        }
        How::Pidfd { pid } => ("pidfd", pid, String::new()),
    };
    let prefix = format!(
        "sent how={name} sig={sig} to={to}{extra} sender_pid={} sender_tid={} uid={}",
        getpid(),
        gettid(),
        getuid()
    );
    for _ in 0..repeat {
        if delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
        match send(sig, &how) {
            Ok(()) => emit(&format!("{prefix} ok")),
            Err(e) => {
                emit(&format!("{prefix} err={}", errno_name(e)));
                eprintln!("{PROG}: {name}: {}", std::io::Error::from_raw_os_error(e));
                std::process::exit(1);
            }
        }
    }
}
