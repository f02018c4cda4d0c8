//! `kernel_sender SCENARIO`: makes the kernel itself (or a process on
//! its way out) send a signal, for the tests of `cause`. Each scenario
//! names its processes `ws_*` (prctl PR_SET_NAME) so a capture can
//! watch them with `--comm`, and prints their pids as the kernel (the
//! host's pid namespace) knows them, before the signal happens:
//!
//! - `oom-victim MB`: holds MB of memory with oom_score_adj 1000, then
//!   sleeps (`ws_oomvictim`); `oom-hog MB`: allocates MB a MiB at a
//!   time, then exits 0 (`ws_oomhog`). `--cgroup DIR` first moves the
//!   process into that memory cgroup.
//! - `xcpu`: RLIMIT_CPU soft 1 s, hard 2 s, a SIGXCPU handler, a spin:
//!   SIGXCPU at 1 s (its handler's siginfo printed as
//!   `got sig=24 si_pid=<pid> si_code=<code>`), SIGKILL at 2 s (`ws_xcpu`).
//! - `xfsz`: RLIMIT_FSIZE 1 KiB, SIGXFSZ ignored, a 4 KiB write
//!   (`ws_xfsz`).
//! - `pipe`: a write to a pipe with no reader, SIGPIPE at its default
//!   action (`ws_pipe`).
//! - `fault`: a load from address 0x10 (`ws_fault`).
//! - `chld`: a child that exits at once (`ws_chldparent`, `ws_chldchild`).
//! - `pdeath`: a child with PR_SET_PDEATHSIG SIGUSR1, whose parent then
//!   exits (`ws_pdparent`, `ws_pdchild`).
//! - `hangup`: a child that makes a pty its controlling terminal as a
//!   session leader; the parent closes the master (`ws_ttyparent`,
//!   `ws_ttychild`).
//! - `winch`: like `hangup`, but the parent resizes the terminal
//!   (TIOCSWINSZ on the master): the tty layer's SIGWINCH to the
//!   foreground process group (`tty_do_resize`: `kill_pgrp(pgrp,
//!   SIGWINCH, 1)`, SI_KERNEL), which the child counts on a handler
//!   (`ws_winparent`, `ws_winchild`).
//! - `pidns`: a new pid namespace whose init (`ws_nsinit`) exits while
//!   a process in it (`ws_nsvictim`) sleeps.
//! - `exit N`: exits with status N after 300 ms (`ws_exit`).
//!
//! Lines: `<role> pid=<pid>` for each process, then `done` from the
//! process that outlives the scenario, where there is one.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;
use whosent_testbins::{emit, set_comm, usage_exit};

const PROG: &str = "kernel_sender";
const USAGE: &str = "kernel_sender [--cgroup DIR] oom-victim MB | oom-hog MB | xcpu | xfsz | pipe | fault | chld | pdeath | hangup | winch | pidns | exit N";

/// The pid as the host's /proc knows it (`/proc/self` resolves in the
/// pid namespace /proc was mounted in), also inside a new namespace.
fn host_pid() -> i32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or_else(|| unsafe { libc::getpid() })
}

fn say(role: &str) {
    emit(&format!("{role} pid={}", host_pid()));
}

fn fork() -> i32 {
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        usage_exit(PROG, "fork failed", USAGE);
    }
    pid
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Allocates and touches `mb` MiB, one MiB at a time, so the pages are
/// really charged to the memory cgroup.
fn hold(mb: usize) -> Vec<Vec<u8>> {
    (0..mb).map(|_| vec![1u8; 1 << 20]).collect()
}

fn rlimit(res: libc::__rlimit_resource_t, soft: u64, hard: u64) {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    if unsafe { libc::setrlimit(res, &r) } != 0 {
        usage_exit(PROG, "setrlimit failed", USAGE);
    }
}

extern "C" fn on_winch(_: libc::c_int) {}

static XCPU_CODE: AtomicI32 = AtomicI32::new(i32::MIN);
static XCPU_PID: AtomicI32 = AtomicI32::new(-1);

/// Keeps what the kernel put in the siginfo, for the spinning main loop
/// to print (printing here would not be async-signal-safe).
extern "C" fn on_xcpu(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, pid) = unsafe { ((*info).si_code, (*info).si_pid()) };
    XCPU_PID.store(pid, Ordering::SeqCst);
    XCPU_CODE.store(code, Ordering::SeqCst);
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--cgroup") && args.len() > 1 {
        let dir = args.remove(1);
        args.remove(0);
        std::fs::write(format!("{dir}/cgroup.procs"), host_pid().to_string())
            .unwrap_or_else(|e| usage_exit(PROG, &format!("cannot join {dir}: {e}"), USAGE));
    }
    let mb = |i: usize| -> usize {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage_exit(PROG, "a size in MiB is needed", USAGE))
    };
    match args.first().map(String::as_str) {
        Some("oom-victim") => {
            set_comm(PROG, "ws_oomvictim");
            std::fs::write("/proc/self/oom_score_adj", "1000")
                .unwrap_or_else(|e| usage_exit(PROG, &format!("oom_score_adj: {e}"), USAGE));
            let _keep = hold(mb(1));
            say("victim");
            sleep_forever();
        }
        Some("oom-hog") => {
            set_comm(PROG, "ws_oomhog");
            say("hog");
            let _keep = hold(mb(1));
            std::thread::sleep(Duration::from_millis(500));
            emit("done");
        }
        Some("xcpu") => {
            set_comm(PROG, "ws_xcpu");
            // SAFETY: a zeroed sigaction with a handler and SA_SIGINFO.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_xcpu as *const () as libc::sighandler_t;
                sa.sa_flags = libc::SA_SIGINFO;
                libc::sigaction(libc::SIGXCPU, &sa, std::ptr::null_mut());
            }
            rlimit(libc::RLIMIT_CPU, 1, 2);
            say("spinner");
            let mut x = 0u64;
            let mut told = false;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
                let code = XCPU_CODE.load(Ordering::Relaxed);
                if !told && code != i32::MIN {
                    told = true;
                    emit(&format!(
                        "got sig=24 si_pid={} si_code={code}",
                        XCPU_PID.load(Ordering::SeqCst)
                    ));
                }
            }
        }
        Some("xfsz") => {
            set_comm(PROG, "ws_xfsz");
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            // After the line: the limit applies to stdout too, when
            // it is a file.
            say("writer");
            rlimit(libc::RLIMIT_FSIZE, 1024, 1024);
            let path = std::env::temp_dir().join(format!("ws_xfsz.{}", host_pid()));
            let r = std::fs::write(&path, [0u8; 4096]);
            let _ = std::fs::remove_file(&path);
            emit(&format!("done write_failed={}", r.is_err()));
        }
        Some("pipe") => {
            set_comm(PROG, "ws_pipe");
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            let (r, w) = whosent_testbins::pipe().expect("pipe");
            whosent_testbins::close(r);
            say("writer");
            whosent_testbins::write_all_fd(w, b"x");
            emit("survived");
        }
        Some("fault") => {
            set_comm(PROG, "ws_fault");
            say("faulter");
            let p = std::hint::black_box(0x10usize) as *const u8;
            // SAFETY: none; the load faults on purpose (SEGV_MAPERR).
            let v = unsafe { std::ptr::read_volatile(p) };
            emit(&format!("survived {v}"));
        }
        Some("chld") => {
            set_comm(PROG, "ws_chldparent");
            say("parent");
            if fork() == 0 {
                set_comm(PROG, "ws_chldchild");
                say("child");
                std::thread::sleep(Duration::from_millis(200));
                unsafe { libc::_exit(0) };
            }
            let mut st = 0;
            unsafe { libc::wait(&mut st) };
            emit("done");
        }
        Some("pdeath") => {
            set_comm(PROG, "ws_pdparent");
            say("parent");
            let (r, w) = whosent_testbins::pipe().expect("pipe");
            if fork() == 0 {
                set_comm(PROG, "ws_pdchild");
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1) };
                say("child");
                whosent_testbins::write_all_fd(w, b"k");
                sleep_forever();
            }
            let mut b = [0u8; 1];
            whosent_testbins::read_exact_fd(r, &mut b);
            std::thread::sleep(Duration::from_millis(200));
            unsafe { libc::_exit(0) };
        }
        Some("hangup") => tty(false),
        Some("winch") => tty(true),
        Some("pidns") => pidns(),
        Some("exit") => {
            set_comm(PROG, "ws_exit");
            let n: i32 = args
                .get(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage_exit(PROG, "an exit status is needed", USAGE));
            say("exiter");
            // Long enough for a capture started after this line to be
            // tracing (the eBPF agent's start, with its loader, takes
            // 150-600 ms here): one that comes too late finds a zombie,
            // whose exit it cannot see.
            std::thread::sleep(Duration::from_millis(1500));
            std::process::exit(n);
        }
        _ => usage_exit(PROG, "which scenario?", USAGE),
    }
}

fn tty(winch: bool) {
    set_comm(
        PROG,
        if winch {
            "ws_winparent"
        } else {
            "ws_ttyparent"
        },
    );
    say("parent");
    // SAFETY: plain libc calls on descriptors this process owns.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    if master < 0 || unsafe { libc::grantpt(master) } != 0 || unsafe { libc::unlockpt(master) } != 0
    {
        usage_exit(PROG, "no pty", USAGE);
    }
    let mut name = [0 as libc::c_char; 64];
    unsafe { libc::ptsname_r(master, name.as_mut_ptr(), name.len()) };
    let (r, w) = whosent_testbins::pipe().expect("pipe");
    if fork() == 0 {
        set_comm(PROG, if winch { "ws_winchild" } else { "ws_ttychild" });
        if winch {
            // SIGWINCH is ignored by default: a handler makes it delivered.
            unsafe { libc::signal(libc::SIGWINCH, on_winch as *const () as libc::sighandler_t) };
        }
        // Only the parent may hold the master, or its close is not the last.
        whosent_testbins::close(master);
        unsafe {
            libc::setsid();
            // A session leader without a terminal that opens one without
            // O_NOCTTY makes it its controlling terminal.
            if libc::open(name.as_ptr(), libc::O_RDWR) < 0 {
                libc::_exit(9);
            }
        }
        say("child");
        whosent_testbins::write_all_fd(w, b"k");
        sleep_forever();
    }
    let mut b = [0u8; 1];
    whosent_testbins::read_exact_fd(r, &mut b);
    std::thread::sleep(Duration::from_millis(200));
    if winch {
        let ws = libc::winsize {
            ws_row: 33,
            ws_col: 99,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer.
        unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
        std::thread::sleep(Duration::from_millis(200));
    }
    // The last close of the master hangs up the slave (pty_close ->
    // tty_vhangup), in this process's context.
    whosent_testbins::close(master);
    let mut st = 0;
    unsafe { libc::wait(&mut st) };
    emit("done");
}

fn pidns() {
    // SAFETY: unshare and fork in a single-threaded process.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        usage_exit(PROG, "unshare(CLONE_NEWPID) failed (root needed)", USAGE);
    }
    let init = fork();
    if init == 0 {
        set_comm(PROG, "ws_nsinit");
        say("init");
        let (r, w) = whosent_testbins::pipe().expect("pipe");
        if fork() == 0 {
            set_comm(PROG, "ws_nsvictim");
            say("victim");
            whosent_testbins::write_all_fd(w, b"k");
            sleep_forever();
        }
        let mut b = [0u8; 1];
        whosent_testbins::read_exact_fd(r, &mut b);
        std::thread::sleep(Duration::from_millis(200));
        // init's exit kills the namespace: zap_pid_ns_processes.
        unsafe { libc::_exit(0) };
    }
    let mut st = 0;
    unsafe { libc::waitpid(init, &mut st, 0) };
    emit("done");
}
