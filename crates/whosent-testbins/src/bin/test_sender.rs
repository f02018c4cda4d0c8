//! `test_sender`: sends one signal (or `--repeat N` of them) and prints
//! what it did, one line per send:
//!
//!   `sent how=kill sig=<n> to=<pid> sender_pid=<pid> sender_tid=<tid> uid=<uid> ok`
//!   `sent how=tgkill sig=<n> to=<tid> tgid=<tgid> sender_pid=.. sender_tid=.. uid=.. ok`
//!   `sent how=sigqueue sig=<n> to=<pid> value=<int> sender_pid=.. sender_tid=.. uid=.. ok`
//!   `sent how=killpg sig=<n> to=<pgid> sender_pid=.. sender_tid=.. uid=.. ok`
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
    (kill SIG PID | tgkill SIG TGID TID | sigqueue SIG PID VALUE | killpg SIG PGID)";

enum How {
    Kill { pid: i32 },
    Tgkill { tgid: i32, tid: i32 },
    Sigqueue { pid: i32, value: i32 },
    Killpg { pgid: i32 },
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
