//! `test_receiver`: receives signals through a SA_SIGINFO handler and
//! prints what the kernel put in the siginfo.
//!
//! Design: one handler, installed with `SA_SIGINFO | SA_RESTART` for every
//! requested signal, and *no signal blocked in any thread*. The kernel
//! therefore keeps its ordinary delivery rules: a thread-directed signal
//! (tgkill) runs the handler on exactly that thread, and a
//! process-directed one (kill, sigqueue, killpg) on whichever thread the
//! kernel picks (the main thread, normally, since it never blocks them).
//! The handler is async-signal-safe: it only reads the siginfo, calls the
//! gettid syscall and write(2)s one fixed-size record into a non-blocking
//! self-pipe (a write that small is atomic, so records from concurrent
//! handlers never interleave; if the pipe were ever full the record is
//! dropped rather than deadlocking). The main thread reads records from
//! the pipe and does all the formatting and printing.
//!
//! A kernel-generated fault (SIGSEGV/BUS/ILL/FPE with si_code > 0) cannot
//! be returned from, as the instruction would fault again: after writing
//! its record the handler parks its thread in pause(), and the main
//! thread exits with status 0 once it has printed that record. `--segv`
//! uses this: the fault happens on a dedicated thread, never on the main
//! thread that does the printing.
//!
//! `--alarm` and `--timer` make the kernel itself send SIGALRM, from
//! the timer interrupt: `alarm(1)` (si_code SI_KERNEL), or a POSIX timer
//! (`timer_create` on CLOCK_MONOTONIC, SIGEV_SIGNAL, 50 ms; si_code
//! SI_TIMER). With `--wait-stdin` they are armed only after a line
//! arrives on stdin.
//!
//! `--comm NAME` renames the process (prctl PR_SET_NAME) before anything
//! else, for tests of hostile names.
//!
//! Output lines (stdout, flushed after each):
//!   `pgrp=<pgid>`                               (with --pgrp)
//!   `thread tid=<tid>`                          (one per --threads thread)
//!   `ready pid=<pid>`                           (handlers are installed)
//!   `segv tid=<tid> addr=<0x..>`                (with --segv, just before the fault)
//!   `armed`                                     (with --alarm or --timer)
//!   `got sig=<n> si_pid=<pid> si_uid=<uid> si_code=<code> si_value=<int> tid=<tid>`
//!     with ` si_addr=<0x..>` appended for SIGILL, SIGBUS, SIGFPE, SIGSEGV.

use std::sync::atomic::{AtomicI32, Ordering};
use whosent_testbins::{
    close, emit, errno, errno_name, getpid, gettid, parse_num, parse_sig_arg, pipe, read_exact_fd,
    set_comm, usage_exit,
};

const PROG: &str = "test_receiver";
const USAGE: &str =
    "test_receiver [--threads N] [--count N] [--ignore SIG]... [--segv|--alarm|--timer [--wait-stdin]] [--pgrp] [--comm NAME] [SIG...]";

/// Address dereferenced by `--segv`: below any mmap_min_addr, so never
/// mapped, and not null, so the load is emitted as written.
const SEGV_ADDR: usize = 0x10;

/// Write end of the self-pipe, read by the handler.
static PIPE_WR: AtomicI32 = AtomicI32::new(-1);

/// One handler invocation, as written into the self-pipe.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Record {
    sig: i64,
    pid: i64,
    uid: i64,
    code: i64,
    value: i64,
    tid: i64,
    addr: u64,
}

const REC_SIZE: usize = std::mem::size_of::<Record>();

fn is_fault_signal(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGILL | libc::SIGBUS | libc::SIGFPE | libc::SIGSEGV
    )
}

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to SA_SIGINFO handlers;
    // only async-signal-safe calls (syscall, write, pause) are made, and
    // errno is restored for the interrupted code.
    unsafe {
        let errno_loc = libc::__errno_location();
        let saved_errno = *errno_loc;
        let info = &*info;
        // si_value is a union of int and pointer; the int is its low
        // bytes on the little-endian targets this runs on.
        let rec = Record {
            sig: sig as i64,
            pid: info.si_pid() as i64,
            uid: info.si_uid() as i64,
            code: info.si_code as i64,
            value: info.si_value().sival_ptr as isize as i32 as i64,
            tid: gettid() as i64,
            addr: info.si_addr() as usize as u64,
        };
        let fd = PIPE_WR.load(Ordering::Relaxed);
        libc::write(fd, (&rec as *const Record).cast(), REC_SIZE);
        if is_fault_signal(sig) && info.si_code > 0 {
            // Returning would re-run the faulting instruction; the main
            // thread prints the record and exits the process.
            loop {
                libc::pause();
            }
        }
        *errno_loc = saved_errno;
    }
}

fn install(sig: i32, handler: libc::sighandler_t, siginfo: bool) -> Result<(), i32> {
    // SAFETY: a zeroed sigaction is valid; the fields set below are what
    // sigaction(2) reads.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_RESTART | if siginfo { libc::SA_SIGINFO } else { 0 };
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(errno());
        }
    }
    Ok(())
}

/// A one-shot POSIX timer that sends `sig` to the process after `ns`.
fn posix_timer(sig: i32, ns: libc::c_long) -> Result<(), i32> {
    // SAFETY: zeroed sigevent/itimerspec are valid; the fields set are
    // what timer_create(2) and timer_settime(2) read.
    unsafe {
        let mut sev: libc::sigevent = std::mem::zeroed();
        sev.sigev_notify = libc::SIGEV_SIGNAL;
        sev.sigev_signo = sig;
        let mut id: libc::timer_t = std::mem::zeroed();
        if libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut id) != 0 {
            return Err(errno());
        }
        let mut its: libc::itimerspec = std::mem::zeroed();
        its.it_value.tv_nsec = ns;
        if libc::timer_settime(id, 0, &its, std::ptr::null_mut()) != 0 {
            return Err(errno());
        }
    }
    Ok(())
}

fn default_signals() -> Vec<i32> {
    let skip = [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGCHLD];
    (1..=31)
        .filter(|s| !skip.contains(s))
        .chain(34..=64)
        .collect()
}

struct Opts {
    threads: usize,
    count: u64,
    ignore: Vec<i32>,
    segv: bool,
    /// alarm(1) after `ready`.
    alarm: bool,
    /// A 50 ms POSIX timer after `ready`.
    timer: bool,
    /// With --segv, --alarm or --timer: act only after a line arrives on
    /// stdin, so a tracer can be started first.
    wait_stdin: bool,
    pgrp: bool,
    signals: Vec<i32>,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        threads: 0,
        count: 0,
        ignore: Vec::new(),
        segv: false,
        alarm: false,
        timer: false,
        wait_stdin: false,
        pgrp: false,
        signals: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => o.threads = parse_num(PROG, "--threads", args.next(), USAGE),
            "--count" => o.count = parse_num(PROG, "--count", args.next(), USAGE),
            "--ignore" => o.ignore.push(parse_sig_arg(PROG, args.next(), USAGE)),
            "--segv" => o.segv = true,
            "--wait-stdin" => o.wait_stdin = true,
            "--alarm" => o.alarm = true,
            "--timer" => o.timer = true,
            "--pgrp" => o.pgrp = true,
            // Before any thread starts, so that all of them carry it.
            "--comm" => match args.next() {
                Some(n) => set_comm(PROG, &n),
                None => usage_exit(PROG, "--comm needs a name", USAGE),
            },
            "-h" | "--help" => usage_exit(PROG, "help requested", USAGE),
            s if s.starts_with('-') && s.parse::<i32>().is_err() => {
                usage_exit(PROG, &format!("unknown option {s:?}"), USAGE)
            }
            s => o
                .signals
                .push(parse_sig_arg(PROG, Some(s.to_string()), USAGE)),
        }
    }
    if o.signals.contains(&0) || o.ignore.contains(&0) {
        usage_exit(PROG, "signal 0 cannot be received", USAGE);
    }
    o
}

fn main() {
    let o = parse_args();

    if o.pgrp {
        // SAFETY: plain syscalls.
        let pgid = unsafe {
            if libc::setpgid(0, 0) != 0 {
                eprintln!("{PROG}: setpgid: {}", std::io::Error::last_os_error());
                std::process::exit(1);
            }
            libc::getpgrp()
        };
        emit(&format!("pgrp={pgid}"));
    }

    let (rd, wr) = pipe().unwrap_or_else(|e| {
        eprintln!("{PROG}: pipe: {e}");
        std::process::exit(1);
    });
    // SAFETY: fcntl on our own descriptor.
    unsafe {
        let fl = libc::fcntl(wr, libc::F_GETFL);
        libc::fcntl(wr, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    PIPE_WR.store(wr, Ordering::SeqCst);

    let explicit = !o.signals.is_empty();
    let mut signals = if explicit {
        o.signals.clone()
    } else {
        default_signals()
    };
    if o.segv && !signals.contains(&libc::SIGSEGV) {
        signals.push(libc::SIGSEGV);
    }
    if (o.alarm || o.timer) && !signals.contains(&libc::SIGALRM) {
        signals.push(libc::SIGALRM);
    }
    signals.retain(|s| !o.ignore.contains(s));
    let handler = on_signal as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
    for &sig in &signals {
        if let Err(e) = install(sig, handler as libc::sighandler_t, true) {
            if explicit || (sig == libc::SIGSEGV && o.segv) {
                eprintln!("{PROG}: sigaction({sig}): {}", errno_name(e));
                std::process::exit(1);
            }
            // The C library reserves some real-time signals for itself
            // (musl refuses 32..=34, glibc 32..=33): skip those quietly.
            eprintln!("{PROG}: note: not handling sig={sig}: {}", errno_name(e));
        }
    }
    for &sig in &o.ignore {
        if let Err(e) = install(sig, libc::SIG_IGN, false) {
            eprintln!("{PROG}: ignoring sig={sig}: {}", errno_name(e));
            std::process::exit(1);
        }
    }

    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..o.threads {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(gettid());
            loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            }
        });
    }
    drop(tx);
    for tid in rx.iter().take(o.threads) {
        emit(&format!("thread tid={tid}"));
    }
    emit(&format!("ready pid={}", getpid()));

    if o.wait_stdin && (o.segv || o.alarm || o.timer) {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    if o.alarm {
        // SAFETY: alarm has no preconditions.
        unsafe { libc::alarm(1) };
        emit("armed");
    }
    if o.timer {
        if let Err(e) = posix_timer(libc::SIGALRM, 50_000_000) {
            eprintln!("{PROG}: timer_create/timer_settime: {}", errno_name(e));
            std::process::exit(1);
        }
        emit("armed");
    }
    if o.segv {
        std::thread::spawn(|| {
            emit(&format!("segv tid={} addr={SEGV_ADDR:#x}", gettid()));
            // SAFETY: deliberately not safe: this load faults, which is
            // the point; the handler never returns to it.
            let v = unsafe { std::ptr::read_volatile(SEGV_ADDR as *const u8) };
            std::hint::black_box(v);
        });
    }

    let mut seen = 0u64;
    loop {
        let mut buf = [0u8; REC_SIZE];
        if !read_exact_fd(rd, &mut buf) {
            eprintln!("{PROG}: self-pipe read failed");
            std::process::exit(1);
        }
        // SAFETY: Record is plain old data of exactly REC_SIZE bytes.
        let r: Record = unsafe { std::ptr::read_unaligned(buf.as_ptr().cast()) };
        let mut line = format!(
            "got sig={} si_pid={} si_uid={} si_code={} si_value={} tid={}",
            r.sig, r.pid, r.uid, r.code, r.value, r.tid
        );
        if is_fault_signal(r.sig as i32) {
            line.push_str(&format!(" si_addr={:#x}", r.addr));
        }
        emit(&line);
        seen += 1;
        let fault = is_fault_signal(r.sig as i32) && r.code > 0;
        if fault || (o.count > 0 && seen >= o.count) {
            close(rd);
            std::process::exit(0);
        }
    }
}
