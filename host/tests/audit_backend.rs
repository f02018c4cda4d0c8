//! `whosent-deploy --backend audit --host local`: the audit backend on
//! this machine's kernel, as a user runs it. A refused kill from another
//! uid and a tgkill must come back with the sender's pid, uid and comm
//! that the programs themselves report (test_sender's own line, the
//! receiver's si_pid and si_uid), and the kernel's audit rules and
//! status must be as they were before.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
const T: Duration = Duration::from_secs(240);

/// Root and a kernel with audit (CONFIG_AUDIT gives /proc/self/loginuid);
/// in CI a missing piece fails.
fn can_run(test: &str) -> bool {
    let why = if unsafe { libc::geteuid() } != 0 {
        Some("not root")
    } else if !std::path::Path::new("/proc/self/loginuid").exists() {
        Some("the kernel has no audit (CONFIG_AUDIT)")
    } else {
        None
    };
    match why {
        None => true,
        Some(w) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: {w}; CI must run it")
        }
        Some(w) => {
            eprintln!("SKIPPED {test}: {w}");
            false
        }
    }
}

/// The audit reader built with the agent, for its --list-rules.
fn reader() -> std::path::PathBuf {
    let out = Command::new(DEPLOY)
        .args(["build", "--target", "x86_64"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let agent = String::from_utf8(out.stdout).unwrap();
    std::path::PathBuf::from(agent.trim()).with_file_name("whosent-audit-reader")
}

fn rules(reader: &std::path::Path) -> String {
    let out = Command::new(reader).arg("--list-rules").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(l: &str) -> Value {
    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))
}

/// The tests change the kernel's audit state: one at a time.
static AUDIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_refused_kill_and_a_tgkill_come_back_and_the_rules_are_restored() {
    if !can_run("audit backend") {
        return;
    }
    let _g = AUDIT.lock().unwrap_or_else(|e| e.into_inner());
    let reader = reader();
    let before = rules(&reader);
    // SIGRTMIN+7, filtered in the rules: other tests' signals on this
    // machine cost no audit records.
    let mut d = Proc::spawn(Command::new(DEPLOY).args([
        "--backend",
        "audit",
        "--host",
        "local",
        "--json",
        "--count",
        "2",
        "--sig",
        "RTMIN+7",
    ]));
    let ready = json(&d.until(T, |l| {
        l.contains(r#""type":"ready""#) || l.contains(r#""type":"error""#)
    }));
    assert_eq!(
        (ready["type"].as_str(), ready["backend"].as_str()),
        (Some("ready"), Some("audit")),
        "{ready}"
    );
    assert_ne!(
        rules(&reader),
        before,
        "the backend's rules are in the kernel while it runs"
    );

    let mut r =
        Proc::spawn(Command::new(sibling(DEPLOY, "test_receiver")).args(["--count", "1", "41"]));
    let rpid = num(
        &r.until(Duration::from_secs(10), |l| l.starts_with("ready")),
        "pid",
    );
    wait_comm(rpid as i32, "test_receiver");
    let send = |nobody: bool, args: &[&str]| {
        let mut c = if nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(sibling(DEPLOY, "test_sender"));
            c
        } else {
            Command::new(sibling(DEPLOY, "test_sender"))
        };
        let out = c.args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let rs = rpid.to_string();
    let denied = send(true, &["--comm", "audit-denied", "kill", "41", &rs]);
    assert!(denied.ends_with("err=EPERM"), "{denied}");
    let ok = send(false, &["--comm", "audit-tgkill", "tgkill", "41", &rs, &rs]);
    assert!(ok.ends_with(" ok"), "{ok}");
    let got = r.until(Duration::from_secs(10), |l| l.starts_with("got "));

    let sigs: Vec<Value> = (0..2)
        .map(|_| {
            json(&d.until(Duration::from_secs(20), |l| {
                l.contains(r#""type":"signal""#)
            }))
        })
        .collect();
    let by = |comm: &str| {
        sigs.iter()
            .find(|s| s["sender"]["comm"] == comm)
            .unwrap_or_else(|| panic!("no {comm}: {sigs:?}"))
    };
    let e = by("audit-denied");
    assert_eq!(e["sender"]["pid"], num(&denied, "sender_pid"));
    assert_eq!(e["sender"]["uid"], 65534);
    assert_eq!(
        (e["target"]["pid"].as_i64(), e["sig"].as_i64()),
        (Some(rpid), Some(41))
    );
    assert_eq!(
        (e["cause"].as_str(), e["audit"]["error"].as_str()),
        (Some("kill"), Some("EPERM"))
    );
    assert_eq!(e["audit"]["target"]["uid"], 0);
    let e = by("audit-tgkill");
    // The receiver's own account of who sent it.
    assert_eq!(e["sender"]["pid"], num(&got, "si_pid"), "{got}");
    assert_eq!(e["sender"]["uid"], num(&got, "si_uid"), "{got}");
    assert_eq!(
        (
            e["audit"]["syscall"].as_str(),
            e["audit"]["success"].as_bool()
        ),
        (Some("tgkill"), Some(true))
    );
    assert_eq!(
        (e["target"]["tid"].as_i64(), e["code_name"].as_str()),
        (Some(rpid), Some("SI_TKILL"))
    );

    assert_eq!(d.wait(Duration::from_secs(20)), 0);
    assert!(
        eventually(Duration::from_secs(5), || rules(&reader) == before),
        "rules or status changed: {}",
        rules(&reader)
    );
}

/// An auditd of this test's own, logging into a temporary directory;
/// stopped on drop, and audit's enabled flag put back (auditd 3.0.9
/// leaves it set).
struct Auditd {
    child: std::process::Child,
    dir: std::path::PathBuf,
    enabled_before: String,
}

impl Auditd {
    fn start(reader: &std::path::Path) -> Auditd {
        let dir = std::env::temp_dir().join(format!("whosent-auditd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["conf", "plugins", "log"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let conf = std::fs::read_to_string("/etc/audit/auditd.conf")
            .expect("auditd installed (scripts/setup.sh)");
        let conf: String = conf
            .lines()
            .map(|l| match l.split(" = ").next() {
                Some("log_file") => format!("log_file = {}/log/audit.log", dir.display()),
                Some("log_group") => "log_group = root".into(),
                Some("plugin_dir") => format!("plugin_dir = {}/plugins", dir.display()),
                Some("use_libwrap") => "use_libwrap = no".into(),
                Some("flush") => "flush = SYNC".into(),
                _ => l.to_string(),
            })
            .map(|l| l + "\n")
            .collect();
        let path = dir.join("conf/auditd.conf");
        std::fs::write(&path, conf).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for (p, m) in [(dir.join("conf"), 0o700), (path, 0o600)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        let enabled_before = status(reader).0;
        let child = Command::new("auditd")
            .arg("-n")
            .arg("-c")
            .arg(dir.join("conf"))
            .spawn()
            .expect("auditd runs (scripts/setup.sh installs it)");
        let me = child.id().to_string();
        assert!(
            eventually(Duration::from_secs(10), || status(reader).1 == me),
            "auditd did not register: {}",
            rules(reader)
        );
        Auditd {
            child,
            dir,
            enabled_before,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/audit.log")).unwrap_or_default()
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = Command::new("auditctl")
            .args(["-e", &self.enabled_before])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// (enabled, auditd's pid) from the reader's --list-rules.
fn status(reader: &std::path::Path) -> (String, String) {
    let text = rules(reader);
    let line = text.lines().next().unwrap_or_default().to_string();
    let v = |k: &str| {
        line.split(' ')
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_default()
            .to_string()
    };
    (v("enabled="), v("pid="))
}

#[test]
fn beside_a_running_auditd_it_reads_the_multicast_group_and_leaves_auditd_alone() {
    if !can_run("audit backend beside auditd") {
        return;
    }
    let _g = AUDIT.lock().unwrap_or_else(|e| e.into_inner());
    let reader = reader();
    let already = status(&reader).1 != "0";
    let auditd = (!already).then(|| Auditd::start(&reader));
    let (_, auditd_pid) = status(&reader);
    let before = rules(&reader);
    let mut d = Proc::spawn(Command::new(DEPLOY).args([
        "--backend",
        "audit",
        "--host",
        "local",
        "--json",
        "--count",
        "1",
        "--sig",
        "RTMIN+8",
    ]));
    let ready = json(&d.until(T, |l| {
        l.contains(r#""type":"ready""#) || l.contains(r#""type":"error""#)
    }));
    assert_eq!(ready["type"], "ready", "{ready}");
    // auditd is still the audit daemon: the backend only listens.
    assert_eq!(status(&reader).1, auditd_pid);
    let mut r =
        Proc::spawn(Command::new(sibling(DEPLOY, "test_receiver")).args(["--count", "1", "42"]));
    let rpid = num(
        &r.until(Duration::from_secs(10), |l| l.starts_with("ready")),
        "pid",
    );
    wait_comm(rpid as i32, "test_receiver");
    let out = Command::new(sibling(DEPLOY, "test_sender"))
        .args(["--comm", "beside-auditd", "kill", "42", &rpid.to_string()])
        .output()
        .unwrap();
    let sent = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let got = r.until(Duration::from_secs(10), |l| l.starts_with("got "));
    let e = json(&d.until(Duration::from_secs(20), |l| {
        l.contains(r#""type":"signal""#)
    }));
    assert_eq!(e["sender"]["pid"], num(&got, "si_pid"), "{got}");
    assert_eq!(e["sender"]["pid"], num(&sent, "sender_pid"));
    assert_eq!(
        (e["sender"]["comm"].as_str(), e["target"]["pid"].as_i64()),
        (Some("beside-auditd"), Some(rpid))
    );
    assert_eq!(d.wait(Duration::from_secs(20)), 0);
    assert!(
        eventually(Duration::from_secs(5), || rules(&reader) == before),
        "rules or status changed: {}",
        rules(&reader)
    );
    if let Some(a) = &auditd {
        // auditd got the same record into its log.
        assert!(
            eventually(Duration::from_secs(5), || a
                .log()
                .contains(r#"comm="beside-auditd""#)),
            "auditd's log: {}",
            a.log()
        );
    }
}
