//! The agent started by an SSH session that is already gone: Ctrl-C on
//! the host just after the upload drops the connection while the remote
//! command starts the agent. The SSH server's ends of the agent's pipes
//! close with the connection: stdin reads EOF, and writes to stdout and
//! stderr fail with EPIPE (std ignores SIGPIPE). Here the same pipes are
//! made on this machine.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::real_kernel;
use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_whosent-agent");
const INSTANCES: &str = "/sys/kernel/tracing/instances";

/// A pipe's two ends: (read, write).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are new and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// whosent-PID-* instances, of the agent with `pid` (or any).
fn instances_of(pid: Option<u32>) -> Vec<String> {
    let prefix = pid.map_or("whosent-".into(), |p| format!("whosent-{p}-"));
    std::fs::read_dir(INSTANCES)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// The agent, in a mount namespace of its own where /bin/sh is no ELF
/// program, as on a board whose /bin/sh is a static busybox (the
/// project's emulated boards): no loader to put the argv uprobe on, so
/// the agent says so on stderr while its instance exists.
fn agent_without_argv_probe(args: &[&str], fake_sh: &std::path::Path) -> Command {
    let fake = CString::new(fake_sh.as_os_str().as_encoded_bytes()).unwrap();
    let mut cmd = Command::new(AGENT);
    cmd.args(args);
    // SAFETY: only syscalls between fork and exec, on the child's own
    // mount namespace, with strings made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let none = std::ptr::null();
            if libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    none,
                    c"/".as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                || libc::mount(
                    fake.as_ptr(),
                    c"/bin/sh".as_ptr(),
                    none,
                    libc::MS_BIND,
                    std::ptr::null(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// A stale instance (its owner's pid is beyond pid_max): the agent
/// removes it and says so on stderr, before its own exists.
fn stale_instance(i: usize) -> std::path::PathBuf {
    let p = std::path::Path::new(INSTANCES)
        .join(format!("whosent-2147480000-{}{i:03}", std::process::id()));
    std::fs::create_dir(&p).unwrap();
    p
}

/// The board test `ctrl_c_or_sigterm_at_every_stage...` found an
/// instance left on the board by an agent that had exited, after a
/// Ctrl-C just after the upload: the agent's note "no argv uprobe here"
/// (eprintln!) panicked on the stderr whose reader was gone, and the
/// agent's panic aborts (panic = "abort"), past the drop that removes
/// the instance. Now every run ends as a stopped capture (exit 0 or 1),
/// or, for a signal that came before the agent's handlers, dies by that
/// signal before it made anything; and nothing of it is left.
#[test]
fn a_note_on_a_closed_stderr_aborted_the_agent_and_left_its_instance() {
    if !real_kernel("a note on a closed stderr") {
        return;
    }
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("stderr_gone");
    std::fs::create_dir_all(&tmp).unwrap();
    let fake_sh = tmp.join("sh");
    std::fs::write(&fake_sh, "not an ELF program\n").unwrap();

    // The scenario is real: with a stderr that a reader takes, the agent
    // writes both lines there while the instance exists (or just before).
    let stale = stale_instance(999);
    let (stdin, none) = pipe();
    drop(none);
    let out = agent_without_argv_probe(&["--sig", "USR1", "--stream"], &fake_sh)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("no argv uprobe here"), "{err}");
    // Another agent running on this machine may have removed it first.
    assert!(!stale.exists(), "{err}");

    let modes: [&[&str]; 2] = [&["--sig", "USR1", "--stream"], &["--sig", "USR1"]];
    let signals = [0, libc::SIGHUP, libc::SIGINT, libc::SIGTERM];
    let runs = 40;
    for i in 0..runs {
        let stale = stale_instance(i);
        let (stdin, none) = pipe();
        drop(none);
        let (out_gone, stdout) = pipe();
        let (err_gone, stderr) = pipe();
        drop((out_gone, err_gone));
        let mut child = agent_without_argv_probe(modes[i % 2], &fake_sh)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap();
        let pid = child.id();
        // A signal at varying moments of the start, as a host's stop may.
        let sig = signals[i % signals.len()];
        if sig != 0 {
            std::thread::sleep(Duration::from_millis((i as u64 * 7) % 120));
            // SAFETY: kill on our own child, not yet waited for.
            unsafe { libc::kill(pid as i32, sig) };
        }
        let st = child.wait().unwrap();
        let left = instances_of(Some(pid));
        let _ = std::fs::remove_dir(&stale);
        let what = format!("run {i} ({:?}, signal {sig}): {st:?}", modes[i % 2]);
        assert!(left.is_empty(), "{what}: left {left:?}");
        match (st.code(), st.signal()) {
            (Some(0 | 1), _) => {}
            (None, Some(s)) if s == sig => {}
            _ => panic!("{what}: neither a stopped capture nor killed by {sig}"),
        }
    }
}
