//! `cause` on the real kernel (issue #12): each scenario makes the
//! kernel send a signal (`kernel_sender`), and the capture must name the
//! mechanism, leave `sender` null where no process sent it (with the
//! task whose context it was in `running`), and say how the target
//! died. The pids come from the scenario's own processes; where the
//! receiver can tell (its wait status, its siginfo, the kernel log) that
//! is checked too.
//!
//! Every scenario runs through the ftrace backend, and again through
//! the eBPF backend (`every_scenario_gives_the_same_answer_through_the_ebpf_backend`,
//! or `WHOSENT_TEST_BACKEND=ebpf` for one of them): the same `cause`,
//! `oom` object and exit records (issue #15).

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
const T: Duration = Duration::from_secs(15);

/// A JSON capture of the processes named `comm`, live once it returns.
fn capture(args: &[&str]) -> Proc {
    let backend = std::env::var("WHOSENT_TEST_BACKEND").unwrap_or_else(|_| "ftrace".into());
    let mut d = Proc::spawn(
        Command::new(DEPLOY)
            .args(["--host", "local", "--json", "--backend", &backend])
            .args(args),
    );
    d.until(T, |l| l.contains(r#""type":"ready""#));
    d
}

/// Whether this test can run here (see `real_kernel`), and if so the
/// lock that runs scenarios one at a time, across processes: the eBPF
/// run of this binary goes on beside the ftrace one, and two captures of
/// the same comm (`ws_chldparent`) saw each other's SIGCHLD, two OOM
/// scenarios each other's victim (both seen in CI-like runs).
fn scenario_slot(what: &str) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    if !real_kernel(what) {
        return None;
    }
    let f = std::fs::File::create("/tmp/whosent-kernel-causes.lock").expect("the scenario lock");
    // SAFETY: flock on a descriptor this function owns; released when
    // the returned File is dropped (closed) at the test's end.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
    Some(f)
}

fn scenario(args: &[&str]) -> Proc {
    Proc::spawn(Command::new(sibling(DEPLOY, "kernel_sender")).args(args))
}

fn json(l: &str) -> Value {
    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))
}

/// The next record of `ty` satisfying `f`.
fn record(d: &mut Proc, ty: &str, f: impl Fn(&Value) -> bool) -> Value {
    let l = d.until(T, |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == ty && f(&v))
    });
    json(&l)
}

fn signal(d: &mut Proc, sig: &str) -> Value {
    record(d, "signal", |v| v["signame"] == sig)
}

fn pid_of(p: &mut Proc, role: &str) -> i64 {
    let l = p.until(T, |l| l.starts_with(&format!("{role} pid=")));
    num(&l, "pid")
}

/// Stops the capture; it ends cleanly, and its instance is gone.
fn stop(mut d: Proc) -> Vec<String> {
    d.signal(libc::SIGINT);
    let rest = d.rest(T);
    d.wait(T);
    rest
}

/// The scenarios above, each through `--backend ebpf`: this test binary
/// again, with `WHOSENT_TEST_BACKEND=ebpf`, so that CI runs both.
#[test]
fn every_scenario_gives_the_same_answer_through_the_ebpf_backend() {
    const ME: &str = "every_scenario_gives_the_same_answer_through_the_ebpf_backend";
    if std::env::var_os("WHOSENT_TEST_BACKEND").is_some() {
        // This is the run it starts (or one for a single backend).
        return;
    }
    if !real_kernel("the ebpf backend's causes") {
        return;
    }
    sibling(DEPLOY, "whosent-ebpf-agent");
    let out = Command::new(std::env::current_exe().unwrap())
        .env("WHOSENT_TEST_BACKEND", "ebpf")
        .args(["--skip", ME, "--test-threads", "4"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "through --backend ebpf:\n{text}");
    // Each scenario ran, none was filtered away.
    assert!(
        text.contains("test an_oom_kill_is_the_oom_killer_not_the_allocating_task ... ok")
            && text.contains(
                "test exit_records_say_how_each_target_ended_and_until_exit_stops ... ok"
            ),
        "{text}"
    );
}

fn no_sender(v: &Value, running_pid: i64) {
    assert!(v["sender"].is_null(), "a kernel cause has no sender: {v}");
    assert_eq!(v["running"]["pid"], running_pid, "running: {v}");
}

#[test]
fn an_oom_kill_is_the_oom_killer_not_the_allocating_task() {
    let Some(_one_at_a_time) = scenario_slot("oom kill") else {
        return;
    };
    let cg = MemCgroup::new(96);
    let mut d = capture(&["--comm", "ws_oomvictim"]);
    let mut victim = scenario(&["--cgroup", &cg.dir, "oom-victim", "30"]);
    let vpid = pid_of(&mut victim, "victim");
    let mut hog = scenario(&["--cgroup", &cg.dir, "oom-hog", "80"]);
    let hpid = pid_of(&mut hog, "hog");
    let v = signal(&mut d, "SIGKILL");
    assert_eq!(v["cause"], "oom", "{v}");
    assert_eq!(v["target"]["pid"], vpid);
    // The allocating task is only the context, never the sender.
    no_sender(&v, hpid);
    assert_ne!(vpid, hpid);
    if let Some(adj) = v["oom"]["oom_score_adj"].as_i64() {
        assert_eq!(adj, 1000, "{v}");
    }
    assert!(v["oom"].is_object(), "mark_victim's facts: {v}");
    // Cross-checks: the victim died of SIGKILL, and the kernel's own log
    // names it as the OOM killer's.
    assert_eq!(victim.wait(T), 128 + 9);
    let hog_end = hog.wait(T);
    let log = Command::new("dmesg").output().unwrap();
    let log = String::from_utf8_lossy(&log.stdout);
    let victim_killed = log
        .rfind(&format!("Killed process {vpid} "))
        .expect("the kernel log names another victim");
    // The victim was chosen first. On a loaded machine the oom_reaper
    // can give up on the victim's memory (mm/oom_kill.c, oom_reap_task
    // sets MMF_OOM_SKIP after its retries) while it is still charged,
    // and a second OOM kill then takes the hog (CI saw exit 137): that
    // one must be in the kernel log too, after the victim's.
    match hog_end {
        0 => {}
        137 => {
            let hog_killed = log
                .rfind(&format!("Killed process {hpid} "))
                .expect("the hog died of SIGKILL, and the kernel log names no OOM kill of it");
            assert!(hog_killed > victim_killed, "the hog was killed first");
        }
        other => panic!("the hog ended with {other}"),
    }
    let x = record(&mut d, "exit", |x| x["pid"] == vpid);
    assert_eq!(
        (&x["how"], &x["signame"], &x["by"]["cause"]),
        (&"killed".into(), &"SIGKILL".into(), &"oom".into()),
        "{x}"
    );
    assert!(x["by"]["sender"].is_null());
    stop(d);
}

#[test]
fn a_cpu_limit_is_the_kernel_not_the_process_itself() {
    let Some(_one_at_a_time) = scenario_slot("cpu limit") else {
        return;
    };
    let mut d = capture(&["--comm", "ws_xcpu"]);
    let mut p = scenario(&["xcpu"]);
    let pid = pid_of(&mut p, "spinner");
    let xcpu = signal(&mut d, "SIGXCPU");
    assert_eq!(xcpu["cause"], "cpu_limit", "{xcpu}");
    no_sender(&xcpu, pid);
    // The receiver's siginfo agrees: the kernel sent it (si_pid 0).
    let got = p.until(T, |l| l.starts_with("got sig=24"));
    assert_eq!((num(&got, "si_pid"), num(&got, "si_code")), (0, 0x80));
    let kill = signal(&mut d, "SIGKILL");
    assert_eq!(kill["cause"], "cpu_limit", "{kill}");
    no_sender(&kill, pid);
    assert_eq!(p.wait(T), 128 + 9);
    let x = record(&mut d, "exit", |x| x["pid"] == pid);
    assert_eq!(x["by"]["cause"], "cpu_limit", "{x}");
    stop(d);
}

#[test]
fn sigpipe_is_the_writer_and_its_death_names_sigpipe() {
    let Some(_one_at_a_time) = scenario_slot("sigpipe") else {
        return;
    };
    let mut d = capture(&["--comm", "ws_pipe"]);
    let mut p = scenario(&["pipe"]);
    let pid = pid_of(&mut p, "writer");
    let v = signal(&mut d, "SIGPIPE");
    assert_eq!(
        (&v["cause"], &v["sender"]["pid"]),
        (&"pipe".into(), &pid.into()),
        "{v}"
    );
    assert_eq!(p.wait(T), 128 + 13);
    // The delivery says SIGKILL (complete_signal's group exit); the
    // record names the signal that was sent.
    let x = record(&mut d, "exit", |x| x["pid"] == pid);
    assert_eq!(
        (&x["how"], &x["sig"]),
        (&"killed".into(), &13.into()),
        "{x}"
    );
    assert_eq!(x["by"]["sender"]["pid"], pid);
    stop(d);
}

#[test]
fn a_parent_death_signal_is_sent_by_the_exiting_parent() {
    let Some(_one_at_a_time) = scenario_slot("pdeath") else {
        return;
    };
    let mut d = capture(&["--comm", "ws_pdchild"]);
    let mut p = scenario(&["pdeath"]);
    let parent = pid_of(&mut p, "parent");
    let child = pid_of(&mut p, "child");
    let v = signal(&mut d, "SIGUSR1");
    assert_eq!(v["cause"], "parent_exit", "{v}");
    assert_eq!(
        (&v["sender"]["pid"], &v["target"]["pid"]),
        (&parent.into(), &child.into())
    );
    let x = record(&mut d, "exit", |x| x["pid"] == child);
    assert_eq!(
        (&x["sig"], &x["by"]["cause"]),
        (&10.into(), &"parent_exit".into()),
        "{x}"
    );
    stop(d);
}

#[test]
fn a_fault_is_the_faulting_thread() {
    let Some(_one_at_a_time) = scenario_slot("fault") else {
        return;
    };
    let mut d = capture(&["--comm", "ws_fault"]);
    let mut p = scenario(&["fault"]);
    let pid = pid_of(&mut p, "faulter");
    let v = signal(&mut d, "SIGSEGV");
    assert_eq!(
        (&v["cause"], &v["code_name"]),
        (&"fault".into(), &"SEGV_MAPERR".into()),
        "{v}"
    );
    assert_eq!(v["sender"]["pid"], pid);
    assert_eq!(p.wait(T), 128 + 11);
    let x = record(&mut d, "exit", |x| x["pid"] == pid);
    assert_eq!(
        (&x["signame"], &x["by"]["cause"]),
        (&"SIGSEGV".into(), &"fault".into()),
        "{x}"
    );
    stop(d);
}

#[test]
fn sigchld_is_sent_by_the_child() {
    let Some(_one_at_a_time) = scenario_slot("sigchld") else {
        return;
    };
    let mut d = capture(&["--comm", "ws_chldparent", "--sig", "CHLD"]);
    let mut p = scenario(&["chld"]);
    let parent = pid_of(&mut p, "parent");
    let child = pid_of(&mut p, "child");
    let v = signal(&mut d, "SIGCHLD");
    assert_eq!(
        (&v["cause"], &v["code_name"]),
        (&"child_exit".into(), &"CLD_EXITED".into()),
        "{v}"
    );
    assert_eq!(
        (&v["sender"]["pid"], &v["target"]["pid"]),
        (&child.into(), &parent.into())
    );
    assert_eq!(p.wait(T), 0);
    stop(d);
}

#[test]
fn a_tty_hangup_is_the_tty_layer_not_the_closer() {
    let Some(_one_at_a_time) = scenario_slot("tty hangup") else {
        return;
    };
    let mut d = capture(&["--comm", "ws_ttychild"]);
    let mut p = scenario(&["hangup"]);
    let parent = pid_of(&mut p, "parent");
    let child = pid_of(&mut p, "child");
    let v = signal(&mut d, "SIGHUP");
    assert_eq!(v["cause"], "tty_hangup", "{v}");
    assert_eq!(v["target"]["pid"], child);
    no_sender(&v, parent);
    let x = record(&mut d, "exit", |x| x["pid"] == child);
    assert_eq!(
        (&x["signame"], &x["by"]["cause"]),
        (&"SIGHUP".into(), &"tty_hangup".into()),
        "{x}"
    );
    assert_eq!(p.wait(T), 0);
    stop(d);
}

#[test]
fn any_other_si_kernel_is_the_kernel_not_the_resizer() {
    let Some(_one_at_a_time) = scenario_slot("tty resize") else {
        return;
    };
    let mut d = capture(&["--comm", "ws_winchild", "--sig", "WINCH"]);
    let mut p = scenario(&["winch"]);
    let parent = pid_of(&mut p, "parent");
    let child = pid_of(&mut p, "child");
    let v = signal(&mut d, "SIGWINCH");
    assert_eq!(
        (&v["cause"], &v["code_name"]),
        (&"kernel".into(), &"SI_KERNEL".into()),
        "{v}"
    );
    assert_eq!(v["target"]["pid"], child);
    no_sender(&v, parent);
    assert_eq!(p.wait(T), 0);
    stop(d);
}

#[test]
fn a_pid_namespace_teardown_is_not_its_init() {
    let Some(_one_at_a_time) = scenario_slot("pidns teardown") else {
        return;
    };
    let mut d = capture(&["--comm", "ws_nsvictim"]);
    let mut p = scenario(&["pidns"]);
    let init = pid_of(&mut p, "init");
    let victim = pid_of(&mut p, "victim");
    let v = signal(&mut d, "SIGKILL");
    assert_eq!(
        (&v["cause"], &v["target"]["pid"]),
        (&"pidns_exit".into(), &victim.into()),
        "{v}"
    );
    no_sender(&v, init);
    assert_eq!(p.wait(T), 0);
    stop(d);
}

#[test]
fn sigxfsz_is_the_writer() {
    let Some(_one_at_a_time) = scenario_slot("sigxfsz") else {
        return;
    };
    let mut d = capture(&["--comm", "ws_xfsz"]);
    let mut p = scenario(&["xfsz"]);
    let pid = pid_of(&mut p, "writer");
    let v = signal(&mut d, "SIGXFSZ");
    assert_eq!(
        (&v["cause"], &v["sender"]["pid"]),
        (&"file_size_limit".into(), &pid.into()),
        "{v}"
    );
    let done = p.until(T, |l| l.starts_with("done"));
    assert_eq!(field(&done, "write_failed").as_deref(), Some("true"));
    stop(d);
}

/// The first line satisfying `f` within `t`, or `None`.
fn within(d: &mut Proc, t: Duration, f: impl Fn(&str) -> bool) -> Option<String> {
    let end = std::time::Instant::now() + t;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        let l = d.line(left)?;
        if f(&l) {
            return Some(l);
        }
    }
}

#[test]
fn an_alarm_is_a_timer_with_no_sender() {
    let Some(_one_at_a_time) = scenario_slot("timer") else {
        return;
    };
    // The eBPF backend can miss a signal sent in a hardirq, as alarm(1)'s
    // is: the kernel does not run a tracepoint program while a BPF program
    // runs on that CPU (told: a `lost` record, `why` not_run), and under
    // load it missed more than it counted (docs/ebpf.md, "Signals sent
    // in a hardirq"). CI saw it once. ftrace has no such loss: one
    // attempt; eBPF three, each miss printed with how the capture ended.
    let ebpf = std::env::var("WHOSENT_TEST_BACKEND").is_ok_and(|b| b == "ebpf");
    let attempts = if ebpf { 3 } else { 1 };
    for attempt in 1..=attempts {
        let mut d = capture(&["--comm", "ws_alarm"]);
        let mut r = Proc::spawn(
            Command::new(sibling(DEPLOY, "test_receiver")).args(["--alarm", "--comm", "ws_alarm"]),
        );
        let got = r.until(T, |l| l.starts_with("got"));
        assert_eq!(num(&got, "si_pid"), 0);
        let alarm = within(&mut d, Duration::from_secs(5), |l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|v| v["type"] == "signal" && v["signame"] == "SIGALRM")
        });
        let rest = stop(d);
        if let Some(l) = alarm {
            let v = json(&l);
            assert_eq!(v["cause"], "timer", "{v}");
            assert!(v["sender"].is_null());
            return;
        }
        assert!(
            attempt < attempts,
            "no SIGALRM record in {attempts} attempt(s); the capture ended with {rest:?}"
        );
        println!("attempt {attempt}: the eBPF capture missed the SIGALRM; it ended with {rest:?}");
    }
}

#[test]
fn exit_records_say_how_each_target_ended_and_until_exit_stops() {
    let Some(_one_at_a_time) = scenario_slot("exit records") else {
        return;
    };
    let mut sleeper = Proc::spawn(Command::new("sleep").arg("30"));
    let spid = sleeper.pid();
    wait_comm(spid, "sleep");
    let mut exiter = scenario(&["exit", "3"]);
    let epid = pid_of(&mut exiter, "exiter") as i32;
    let (s, e) = (spid.to_string(), epid.to_string());
    let mut d = capture(&["--pid", &s, "--pid", &e, "--until-exit"]);
    let mut h =
        Proc::spawn(Command::new(DEPLOY).args(["--host", "local", "--pid", &s, "--pid", &e]));
    std::thread::sleep(Duration::from_millis(800));
    let out = Command::new(sibling(DEPLOY, "test_sender"))
        .args(["kill", "9", &s])
        .output()
        .unwrap();
    let sender = num(
        String::from_utf8_lossy(&out.stdout).lines().last().unwrap(),
        "sender_pid",
    );
    assert_eq!(sleeper.wait(T), 128 + 9);
    assert_eq!(exiter.wait(T), 3);
    // Both targets gone: the capture ends by itself, with both told.
    let end = record(&mut d, "end", |_| true);
    let exits: Vec<Value> = d
        .seen
        .iter()
        .map(|l| json(l))
        .filter(|v| v["type"] == "exit")
        .collect();
    let of = |pid: i32| {
        exits
            .iter()
            .find(|x| x["pid"] == pid)
            .unwrap_or_else(|| panic!("no exit of {pid}: {exits:?}"))
    };
    let k = of(spid);
    assert_eq!((&k["how"], &k["sig"]), (&"killed".into(), &9.into()), "{k}");
    assert_eq!(
        (&k["by"]["cause"], &k["by"]["sender"]["pid"]),
        (&"kill".into(), &sender.into())
    );
    let x = of(epid);
    assert_eq!(
        (&x["how"], &x["status"]),
        (&"exited".into(), &3.into()),
        "{x}"
    );
    assert_eq!(end["reason"], "targets_exited", "{end}");
    assert_eq!(d.wait(T), 0);
    // The human lines, from the other capture.
    while !(h
        .seen
        .iter()
        .any(|l| l.starts_with(&format!("sleep({spid}) died")))
        && h.seen
            .iter()
            .any(|l| l.starts_with(&format!("ws_exit({epid}) died"))))
    {
        h.until(T, |l| l.contains(" died: "));
    }
    let lines = h.seen.clone();
    assert!(
        lines.contains(&format!(
            "sleep({spid}) died: killed by SIGKILL from test_sender({sender})"
        )),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&format!("ws_exit({epid}) died: exited with status 3")),
        "{lines:#?}"
    );
    stop(h);
}

#[test]
fn cause_filters_and_a_kill_is_a_kill() {
    let Some(_one_at_a_time) = scenario_slot("--cause") else {
        return;
    };
    let mut d = capture(&["--comm", "ws_xcpu", "--cause", "kill"]);
    let mut p = scenario(&["xcpu"]);
    let pid = pid_of(&mut p, "spinner");
    std::thread::sleep(Duration::from_millis(200));
    // The kernel's SIGXCPU (at 1 s of CPU) is filtered out; this kill is not.
    let out = Command::new(sibling(DEPLOY, "test_sender"))
        .args(["kill", "USR2", &pid.to_string()])
        .output()
        .unwrap();
    let sender = num(
        String::from_utf8_lossy(&out.stdout).lines().last().unwrap(),
        "sender_pid",
    );
    let v = signal(&mut d, "SIGUSR2");
    assert_eq!(
        (&v["cause"], &v["sender"]["pid"]),
        (&"kill".into(), &sender.into()),
        "{v}"
    );
    p.wait(T);
    let rest = stop(d);
    assert!(
        !rest.iter().any(|l| l.contains("SIGXCPU")),
        "--cause kill let a cpu_limit through: {rest:#?}"
    );
    let bad = Command::new(DEPLOY)
        .args(["--host", "local", "--cause", "oomkill"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cpu_limit"));
}

/// A memory cgroup with a limit, v1 or v2, removed on drop.
struct MemCgroup {
    dir: String,
}

impl MemCgroup {
    fn new(mib: u64) -> Self {
        let bytes = (mib << 20).to_string();
        let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"));
        let dir = if v2 {
            format!("/sys/fs/cgroup/whosent-oom-{}", std::process::id())
        } else {
            format!("/sys/fs/cgroup/memory/whosent-oom-{}", std::process::id())
        };
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("cannot create {dir}: {e}"));
        let set = |f: &str, v: &str| std::fs::write(format!("{dir}/{f}"), v);
        if v2 {
            set("memory.max", &bytes).unwrap();
            let _ = set("memory.swap.max", "0");
        } else {
            set("memory.limit_in_bytes", &bytes).unwrap();
            let _ = set("memory.swappiness", "0");
        }
        MemCgroup { dir }
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        let _ = eventually(Duration::from_secs(5), || {
            std::fs::remove_dir(&self.dir).is_ok()
        });
    }
}
