//! `whosent-deploy --backend stap` (issue #5) on the emulated aarch64
//! board: the same kill traced by both backends, the module unloaded
//! on every way out (count, duration, Ctrl-C, a dropped connection), bad
//! input refused with a clear error and nothing left on the board, and
//! the `stap-script` snapshot.
//!
//! The kernel tree and the staprun bundle come from
//! scripts/stap-kernel-tree.sh and scripts/staprun-bundle.sh, which
//! cache what they make (under ~/.cache/whosent/stap); so does the
//! module cache of whosent-deploy, so the cold stap build (a minute or
//! two) happens once. In CI a missing piece (root, stap, the cross
//! compiler, the scripts' downloads) fails the tests; elsewhere they are
//! skipped with the reason.

#[path = "../../tests/support/fleet.rs"]
mod fleet;
#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use fleet::{board, exclusive, Board};
use realkernel::{eventually, Proc};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
/// Generous: the first run builds the module (and the ftrace agent).
const T: Duration = Duration::from_secs(300);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn in_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// What the stap tests need from this machine, or why they cannot run.
fn missing_tools() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (boards and the tree's apt downloads need it)".into());
    }
    for (tool, pkg) in [
        ("stap", "systemtap"),
        ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
    ] {
        if !in_path(tool) {
            return Some(format!(
                "no {tool} (apt-get install {pkg}; scripts/setup.sh does)"
            ));
        }
    }
    None
}

/// In CI a missing piece fails the test; elsewhere it is skipped.
fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: {why}; CI must run it");
    }
    eprintln!("SKIPPED {test}: {why}");
}

#[derive(Debug)]
struct Setup {
    /// lib/modules/RELEASE/build of the board's kernel.
    tree: PathBuf,
    bundle: PathBuf,
}

fn script(args: &[&str]) -> Result<PathBuf, String> {
    let out = Command::new(root().join(args[0]))
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The tree and bundle for the board's kernel, made once per test
/// binary (the scripts themselves cache across runs).
fn setup(b: &Board) -> Result<&'static Setup, String> {
    static S: OnceLock<Result<Setup, String>> = OnceLock::new();
    S.get_or_init(|| {
        let release = b.ssh("uname -r").trim().to_string();
        let tree = script(&["scripts/stap-kernel-tree.sh", &release])?;
        let bundle = script(&["scripts/staprun-bundle.sh", "arm64"])?;
        Ok(Setup { tree, bundle })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The board and the setup, or `None` (skipped) when this machine
/// cannot run the test.
fn ready(test: &str) -> Option<(Board, &'static Setup)> {
    if let Some(why) = missing_tools() {
        skip(test, &why);
        return None;
    }
    let b = board("aarch64", "plain");
    match setup(&b) {
        Ok(s) => Some((b, s)),
        Err(e) => {
            skip(test, &e);
            None
        }
    }
}

fn stap_flags(s: &Setup, bundle: bool) -> Vec<String> {
    let mut v = vec![
        "--backend".to_string(),
        "stap".into(),
        "--kernel-build".into(),
        s.tree.display().to_string(),
    ];
    if bundle {
        v.extend(["--staprun-bundle".into(), s.bundle.display().to_string()]);
    }
    v
}

fn deploy(b: &Board, args: &[String]) -> Proc {
    Proc::spawn(Command::new(DEPLOY).args(b.args()).args(args))
}

/// Runs to the end; (status, stdout, stderr).
fn run(b: &Board, args: &[String]) -> (i32, String, String) {
    let out: Output = Command::new(DEPLOY)
        .args(b.args())
        .args(args)
        .output()
        .expect("whosent-deploy runs");
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("  [stderr] {}", e.trim_end().replace('\n', "\n  [stderr] "));
    (out.status.code().unwrap_or(-1), o, e)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn json(l: &str) -> Value {
    serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))
}

fn is(kind: &str) -> impl Fn(&str) -> bool + '_ {
    move |l: &str| l.contains(&format!("\"type\":\"{kind}\""))
}

/// whosent's modules in the board's /proc/modules.
fn modules(b: &Board) -> String {
    b.ssh("grep '^whosent' /proc/modules; true")
        .trim()
        .to_string()
}

/// Nothing of whosent's left on the board: no module, no files, no
/// ftrace instance.
fn assert_clean(b: &Board) {
    let clean = eventually(Duration::from_secs(15), || {
        modules(b).is_empty() && b.leftovers().is_empty()
    });
    assert!(
        clean,
        "left on the board: modules [{}], files/instances [{}]",
        modules(b),
        b.leftovers()
    );
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[test]
fn one_kill_traced_by_both_backends_gives_the_same_sender_and_target() {
    let Some((b, s)) = ready("one_kill_traced_by_both_backends") else {
        return;
    };
    let _g = exclusive(&b.name);
    let v = b.victim();
    let q = strs(&[
        "--json",
        "--sig",
        "TERM",
        "--pid",
        &v.to_string(),
        "--count",
        "1",
    ]);
    let mut ftrace = deploy(&b, &q);
    let mut stap = deploy(&b, &[q.clone(), stap_flags(s, true)].concat());
    let r_f = json(&ftrace.until(T, is("ready")));
    let r_s = json(&stap.until(T, is("ready")));
    assert_eq!(r_f["backend"], "ftrace");
    assert_eq!(r_s["backend"], "stap");
    assert_eq!(keys(&r_f), keys(&r_s));
    assert_eq!(r_s["kernel"], r_f["kernel"]);
    assert_eq!(r_s["arch"], "aarch64");
    let module = r_s["instance"].as_str().unwrap().to_string();
    assert!(module.starts_with("whosent_"), "{module}");
    assert!(
        modules(&b).contains(&module),
        "{module} is not in /proc/modules while tracing: {}",
        modules(&b)
    );
    assert_eq!(r_s["filter"], format!("target_sig=15 target_pid={v}"));

    // The board's own view of the sender: the shell's $$ and $PPID.
    let said = b.ssh(&format!("sh -c 'kill -TERM {v}; echo $$ $PPID'"));
    let (shell, parent) = match said.split_whitespace().collect::<Vec<_>>()[..] {
        [a, b] => (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap()),
        _ => panic!("the shell said {said:?}"),
    };
    let e_f = json(&ftrace.until(T, is("signal")));
    let e_s = json(&stap.until(T, is("signal")));
    for e in [&e_f, &e_s] {
        assert_eq!(e["sender"]["pid"], shell, "{e}");
        assert_eq!(e["sender"]["tid"], shell, "{e}");
        assert_eq!(e["target"]["pid"], v, "{e}");
        assert_eq!(e["target"]["comm"], "sleep", "{e}");
        assert_eq!(e["signame"], "SIGTERM", "{e}");
    }
    for k in [
        "sig",
        "code",
        "code_name",
        "errno",
        "group",
        "result",
        "context",
        "origin",
        "running",
    ] {
        assert_eq!(e_f[k], e_s[k], "{k}: ftrace {e_f} stap {e_s}");
    }
    assert_eq!(e_f["sender"]["comm"], e_s["sender"]["comm"]);
    assert_eq!(e_f["sender"]["uid"], e_s["sender"]["uid"]);
    assert_eq!(keys(&e_f), keys(&e_s), "the same keys");
    assert_eq!(keys(&e_f["sender"]), keys(&e_s["sender"]));
    assert_eq!(keys(&e_f["target"]), keys(&e_s["target"]));
    // The lineage (issue #11): the stap backend's, from its process
    // lines through the same process table, is the ftrace backend's for
    // this kill: sh(shell) <- its parent (dropbear's session) <- ... <-
    // init(1), by pid and comm (exe and cmdline need /proc, which only
    // the agent reads: the stap backend's are null or the same).
    let chain = |e: &Value| -> Vec<(i64, String)> {
        e["sender"]["lineage"]
            .as_array()
            .unwrap_or_else(|| panic!("no lineage: {e}"))
            .iter()
            .map(|a| {
                (
                    a["pid"].as_i64().unwrap(),
                    a["comm"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let (l_f, l_s) = (chain(&e_f), chain(&e_s));
    assert_eq!(l_s, l_f, "stap {e_s}\nftrace {e_f}");
    assert_eq!(l_s[0], (shell, "sh".to_string()), "{e_s}");
    assert_eq!(l_s[1].0, parent, "the shell's $PPID: {e_s}");
    assert!(
        l_s[1..].iter().any(|(_, c)| c == "dropbear"),
        "the SSH session's dropbear: {e_s}"
    );
    assert_eq!(l_s.last().unwrap(), &(1, "init".to_string()), "{e_s}");
    for (a_s, a_f) in e_s["sender"]["lineage"]
        .as_array()
        .unwrap()
        .iter()
        .zip(e_f["sender"]["lineage"].as_array().unwrap())
    {
        assert_eq!(keys(a_s), keys(a_f));
        for k in ["exe", "cmdline"] {
            assert!(a_s[k].is_null() || a_s[k] == a_f[k], "{k}: {a_s} vs {a_f}");
        }
    }
    // Both on ftrace's local clock (seconds since boot), not the wall
    // clock. (Not to the microsecond: on the emulated board the agent's
    // times were seen 70-120 ms off the kernel's own trace text, which
    // the module's match to within a millisecond.)
    let dt = (e_f["ts"].as_f64().unwrap() - e_s["ts"].as_f64().unwrap()).abs();
    assert!(
        dt < 1.0,
        "timestamps {} and {} differ by {dt} s",
        e_f["ts"],
        e_s["ts"]
    );

    for p in [&mut ftrace, &mut stap] {
        let end = json(&p.until(T, is("end")));
        assert_eq!(
            (end["reason"].as_str(), end["signals"].as_i64()),
            (Some("count"), Some(1))
        );
        assert_eq!(p.wait(T), 0);
    }
    assert!(
        !modules(&b).contains(&module),
        "{module} still loaded after the count was reached"
    );
    assert_clean(&b);
}

/// The kept directory of a `--keep` stap run, if any.
fn kept(b: &Board) -> String {
    b.ssh("ls -d ${TMPDIR:-/tmp}/whosent-keep-* 2>/dev/null; true")
        .trim()
        .to_string()
}

#[test]
fn keep_reuses_the_module_and_bundle_on_the_board() {
    let Some((b, s)) = ready("keep_reuses_the_module_and_bundle") else {
        return;
    };
    let _g = exclusive(&b.name);
    let args = |keep: bool| {
        let mut a = strs(&["--json", "--sig", "USR2", "--pid", "1", "--duration", "2"]);
        if keep {
            a.push("--keep".into());
        }
        [a, stap_flags(s, true)].concat()
    };
    assert_eq!(kept(&b), "", "a directory kept before the test");
    let (st, out, err) = run(&b, &args(true));
    assert_eq!(st, 1, "no signal: status 1\n{out}");
    assert!(err.contains("whosent: uploaded the module ("), "{err}");
    let dir = kept(&b);
    assert!(dir.contains("/whosent-keep-"), "nothing kept: {err}");
    let files = b.ssh(&format!("cd {dir} && ls"));
    assert_eq!(
        files.split_whitespace().collect::<Vec<_>>(),
        ["rt", "staprun.tar.gz", "whosent_session.ko"],
        "{files}"
    );
    assert_eq!(modules(&b), "", "unloaded");

    let (st, out, err) = run(&b, &args(true));
    assert_eq!(st, 1, "{out}");
    assert!(
        err.contains(&format!(
            "whosent: using the module and staprun kept on the board in {dir} (sha256 verified)"
        )),
        "{err}"
    );
    assert!(!err.contains("uploaded"), "{err}");
    assert!(
        json(out.lines().next().unwrap())["type"] == "ready",
        "{out}"
    );
    assert_eq!(kept(&b), dir);

    // A corrupted module on the board is not loaded: uploaded again.
    b.ssh(&format!("echo bad > {dir}/whosent_session.ko"));
    let (st, _, err) = run(&b, &args(true));
    assert_eq!(st, 1);
    assert!(err.contains("does not match; uploading again"), "{err}");
    assert!(err.contains("whosent: uploaded the module ("), "{err}");

    b.ssh(&format!("rm -rf {dir}"));
    // Without --keep nothing is left.
    let (st, _, err) = run(&b, &args(false));
    assert_eq!(st, 1);
    assert!(err.contains("whosent: uploaded the module ("), "{err}");
    assert_clean(&b);
}

#[test]
fn duration_stops_and_unloads() {
    let Some((b, s)) = ready("duration_stops_and_unloads") else {
        return;
    };
    let _g = exclusive(&b.name);
    let v = b.victim().to_string();
    let args = [
        strs(&["--json", "--sig", "USR2", "--pid", &v, "--duration", "3"]),
        stap_flags(s, true),
    ]
    .concat();
    let started = Instant::now();
    let (st, out, _) = run(&b, &args);
    assert_eq!(st, 1, "no signal: status 1\n{out}");
    let end = json(out.lines().last().unwrap());
    assert_eq!(end["reason"], "duration");
    assert!(started.elapsed() >= Duration::from_secs(3));
    b.ssh(&format!("kill {v}"));
    assert_clean(&b);
}

#[test]
fn ctrl_c_stops_and_unloads() {
    let Some((b, s)) = ready("ctrl_c_stops_and_unloads") else {
        return;
    };
    let _g = exclusive(&b.name);
    let mut d = deploy(
        &b,
        &[strs(&["--json", "--sig", "USR2"]), stap_flags(s, true)].concat(),
    );
    let r = json(&d.until(T, is("ready")));
    let module = r["instance"].as_str().unwrap().to_string();
    assert!(modules(&b).contains(&module));
    d.signal(libc::SIGINT);
    let end = json(&d.until(T, is("end")));
    assert_eq!(end["reason"], "interrupted");
    assert_eq!(d.wait(T), 1);
    assert_clean(&b);
}

#[test]
fn a_dropped_connection_unloads() {
    let Some((b, s)) = ready("a_dropped_connection_unloads") else {
        return;
    };
    let _g = exclusive(&b.name);
    let mut d = deploy(
        &b,
        &[strs(&["--json", "--sig", "USR2"]), stap_flags(s, true)].concat(),
    );
    let r = json(&d.until(T, is("ready")));
    let module = r["instance"].as_str().unwrap().to_string();
    assert!(modules(&b).contains(&module));
    // SIGKILL: no clean-up on this side; the TCP connection just closes.
    d.signal(libc::SIGKILL);
    d.wait(T);
    assert_clean(&b);
}

/// Two --pid values: the module cannot filter on both, so the host
/// filters and counts.
#[test]
fn the_host_filters_and_counts_what_the_module_cannot() {
    let Some((b, s)) = ready("the_host_filters_and_counts") else {
        return;
    };
    let _g = exclusive(&b.name);
    let (v1, v2, other) = (b.victim(), b.victim(), b.victim());
    let q = strs(&[
        "--json",
        "--sig",
        "TERM",
        "--pid",
        &v1.to_string(),
        "--pid",
        &v2.to_string(),
        "--count",
        "2",
    ]);
    let mut d = deploy(&b, &[q, stap_flags(s, true)].concat());
    let r = json(&d.until(T, is("ready")));
    assert_eq!(
        r["filter"], "target_sig=15",
        "no pid and no count in the module"
    );
    b.kill_from_shell("TERM", other);
    b.kill_from_shell("TERM", v1);
    b.kill_from_shell("TERM", v2);
    let got: Vec<Value> = (0..2).map(|_| json(&d.until(T, is("signal")))).collect();
    let targets: Vec<i64> = got
        .iter()
        .map(|e| e["target"]["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(targets, [v1, v2]);
    let end = json(&d.until(T, is("end")));
    assert_eq!(
        (end["reason"].as_str(), end["signals"].as_i64()),
        (Some("count"), Some(2))
    );
    assert_eq!(d.wait(T), 0);
    assert_clean(&b);
}

/// Installs the bundle on the board as its own `staprun` (in PATH) for
/// as long as it lives.
struct BoardStaprun<'a>(&'a Board);

impl<'a> BoardStaprun<'a> {
    fn install(b: &'a Board, bundle: &Path) -> Self {
        let f = std::fs::File::open(bundle).unwrap();
        let st = Command::new(root().join("scripts/board.sh"))
            .args(["ssh", &b.name])
            .arg(
                "rm -rf /opt/whosent-staprun && mkdir -p /opt/whosent-staprun /usr/local/bin \
                 && tar -xzf - -C /opt/whosent-staprun \
                 && printf '#!/bin/sh\\nexec /opt/whosent-staprun/run-staprun \"$@\"\\n' > /usr/local/bin/staprun \
                 && chmod 755 /usr/local/bin/staprun",
            )
            .stdin(f)
            .status()
            .unwrap();
        assert!(st.success());
        BoardStaprun(b)
    }
}

impl Drop for BoardStaprun<'_> {
    fn drop(&mut self) {
        self.0
            .ssh("rm -rf /opt/whosent-staprun /usr/local/bin/staprun");
    }
}

#[test]
fn the_boards_own_staprun_is_used() {
    let Some((b, s)) = ready("the_boards_own_staprun_is_used") else {
        return;
    };
    let _g = exclusive(&b.name);
    let _staprun = BoardStaprun::install(&b, &s.bundle);
    assert_eq!(b.ssh("command -v staprun").trim(), "/usr/local/bin/staprun");
    let v = b.victim();
    let args = [
        strs(&[
            "--json",
            "--sig",
            "TERM",
            "--pid",
            &v.to_string(),
            "--count",
            "1",
        ]),
        stap_flags(s, false),
    ]
    .concat();
    let mut d = deploy(&b, &args);
    // Not the module in /proc/modules: it is there before its probes
    // are armed; `ready` comes after.
    let r = json(&d.until(T, is("ready")));
    let module = r["instance"].as_str().unwrap().to_string();
    let procs = b.ssh("ps -o args | grep '[b]in/stapio'");
    assert!(
        procs.contains("/opt/whosent-staprun/bin/stapio") && procs.contains(&module),
        "the board's staprun runs {module}: {procs}"
    );
    assert_eq!(
        b.ssh("ls -d /tmp/whosent.*/rt 2>/dev/null; true").trim(),
        "",
        "no bundle pushed"
    );
    let shell = b.kill_from_shell("TERM", v);
    let sig = json(&d.until(T, is("signal")));
    assert_eq!(sig["sender"]["pid"], shell);
    assert_eq!(sig["target"]["pid"], v);
    let end = json(&d.until(T, is("end")));
    assert_eq!(end["reason"], "count");
    assert_eq!(d.wait(T), 0);
    assert_clean(&b);
}

// ---- bad input: a clear error, exit 2, nothing left on the board ----

#[test]
fn a_missing_kernel_tree_is_refused() {
    let Some((b, s)) = ready("a_missing_kernel_tree_is_refused") else {
        return;
    };
    let _g = exclusive(&b.name);
    let mut args = strs(&["--sig", "TERM", "--backend", "stap"]);
    args.extend([
        "--kernel-build".into(),
        "/nonexistent/lib/modules/6.1.0-56-arm64/build".into(),
    ]);
    args.extend(["--staprun-bundle".into(), s.bundle.display().to_string()]);
    let (st, out, err) = run(&b, &args);
    assert_eq!(st, 2, "{out}");
    assert!(
        err.contains(
            "--kernel-build /nonexistent/lib/modules/6.1.0-56-arm64/build: no such directory"
        ),
        "{err}"
    );
    assert!(
        err.contains("stap-kernel-tree.sh"),
        "the help says how to make one: {err}"
    );
    assert_clean(&b);
}

/// A view of `real` whose include/generated/utsrelease.h names
/// `release`: every other file is the real tree's (symlinks).
fn tree_for_release(real: &Path, release: &str, dir: &Path) -> PathBuf {
    fn mirror(from: &Path, to: &Path, except: &str) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            if e.file_name() != except {
                std::os::unix::fs::symlink(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    // The same layout: .../lib/modules/REL/{build,source}.
    let mods = dir.join("lib/modules").join(release);
    let build = mods.join("build");
    mirror(real, &build, "include");
    mirror(&real.join("include"), &build.join("include"), "generated");
    let gen = build.join("include/generated");
    mirror(&real.join("include/generated"), &gen, "utsrelease.h");
    std::fs::write(
        gen.join("utsrelease.h"),
        format!("#define UTS_RELEASE \"{release}\"\n"),
    )
    .unwrap();
    if let Ok(src) = std::fs::canonicalize(real.join("../source")) {
        std::os::unix::fs::symlink(src, mods.join("source")).unwrap();
    }
    build
}

#[test]
fn a_tree_for_another_release_is_refused() {
    let Some((b, s)) = ready("a_tree_for_another_release_is_refused") else {
        return;
    };
    let _g = exclusive(&b.name);
    let dir = std::env::temp_dir().join(format!("whosent-stap-other-{}", std::process::id()));
    let fake = tree_for_release(&s.tree, "6.1.0-99-arm64", &dir);
    let mut args = strs(&["--sig", "TERM", "--backend", "stap", "--kernel-build"]);
    args.extend([
        fake.display().to_string(),
        "--staprun-bundle".into(),
        s.bundle.display().to_string(),
    ]);
    let (st, _, err) = run(&b, &args);
    let _ = std::fs::remove_dir_all(&dir);
    let board_release = b.ssh("uname -r").trim().to_string();
    assert_eq!(st, 2);
    assert!(
        err.contains(&format!(
            "is for Linux 6.1.0-99-arm64, but the board runs {board_release}"
        )),
        "{err}"
    );
    assert!(
        !err.contains("building the SystemTap module"),
        "refused before building: {err}"
    );
    assert_clean(&b);
}

/// The check before the push: a module built for the real tree, held
/// against another release (the tree check above normally catches a
/// wrong tree first; this is the module's own vermagic).
#[test]
fn a_module_for_another_release_is_refused_by_its_vermagic() {
    use whosent_deploy::build::Target;
    use whosent_deploy::stap::{build, script, tree::Tree, vermagic};
    let Some((_, s)) = ready("a_module_for_another_release_is_refused_by_its_vermagic") else {
        return;
    };
    let tree = Tree::open(&s.tree).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let m = build::module(
        &build::Request {
            tree: &tree,
            user_runtime: None,
            defines: &[],
        },
        &stop,
    )
    .unwrap();
    let info = vermagic::read(&m.ko).unwrap();
    assert_eq!(info.release(), Some(tree.release.as_str()));
    assert_eq!(info.name(), Some(script::MODULE_NAME));
    assert!(info.get("parmtype").is_some());
    vermagic::check(&info, &tree.release, Target::Aarch64, script::MODULE_NAME).unwrap();
    let e = vermagic::check(
        &info,
        "6.1.0-99-arm64",
        Target::Aarch64,
        script::MODULE_NAME,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("built for Linux {}", tree.release)),
        "{e}"
    );
    assert!(
        e.to_string().contains("the board runs 6.1.0-99-arm64"),
        "{e}"
    );
    assert!(vermagic::check(&info, &tree.release, Target::Armv7, script::MODULE_NAME).is_err());
}

#[test]
fn a_board_without_staprun_and_no_bundle_is_refused() {
    let Some((b, s)) = ready("a_board_without_staprun_and_no_bundle_is_refused") else {
        return;
    };
    let _g = exclusive(&b.name);
    assert_eq!(b.ssh("command -v staprun || echo none").trim(), "none");
    let (st, _, err) = run(
        &b,
        &[strs(&["--sig", "TERM"]), stap_flags(s, false)].concat(),
    );
    assert_eq!(st, 2);
    assert!(err.contains("board without staprun and no bundle"), "{err}");
    assert!(
        err.contains("--staprun-bundle"),
        "the help names the fix: {err}"
    );
    assert!(
        !err.contains("building the SystemTap module"),
        "refused before building: {err}"
    );
    assert_clean(&b);
}

#[test]
fn a_module_build_failure_shows_stap_and_a_hint() {
    let Some((b, s)) = ready("a_module_build_failure_shows_stap_and_a_hint") else {
        return;
    };
    let _g = exclusive(&b.name);
    // A -D that the runtime's C code cannot compile with.
    let args = [
        strs(&["--sig", "TERM", "-D", "MAXSTRINGLEN=whosent_broken"]),
        stap_flags(s, true),
    ]
    .concat();
    let (st, _, err) = run(&b, &args);
    assert_eq!(st, 2);
    // stap's own words, verbatim, then one hint.
    assert!(
        err.contains("Pass 4: compilation failed.  [man error::pass4]"),
        "{err}"
    );
    assert!(err.contains("whosent_broken"), "{err}");
    assert!(
        err.contains("error: stap could not build the module (pass 4: compilation failed)"),
        "{err}"
    );
    assert!(
        err.contains("help: the module did not compile against this kernel tree"),
        "{err}"
    );
    assert!(!err.contains("uploaded"), "nothing pushed: {err}");
    assert_clean(&b);
}

// ---- the script ----

const SNAPSHOT: &str = "tests/fixtures/stap/stap-script.expected.stp";
const SNAPSHOT_ARGS: [&str; 11] = [
    "stap-script",
    "--sig",
    "TERM",
    "--pid",
    "4242",
    "--comm",
    "my app",
    "--sender-comm",
    "kill",
    "--count",
    "1",
];

/// `stap-script` prints the committed snapshot (WHOSENT_BLESS=1 rewrites
/// it), and stap parses it. The snapshot part needs nothing but the
/// binary.
#[test]
fn stap_script_matches_the_snapshot_and_parses() {
    let out = Command::new(DEPLOY).args(SNAPSHOT_ARGS).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).unwrap();
    let path = root().join(SNAPSHOT);
    if std::env::var_os("WHOSENT_BLESS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert!(
        got == want,
        "stap-script output differs from {SNAPSHOT} (WHOSENT_BLESS=1 to accept):\n{got}"
    );
    assert!(got.contains("global target_comm = \"my app\""));

    let Some((_, s)) = ready("stap_script_parses_with_stap_p1") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("whosent-stap-p1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("whosent.stp");
    std::fs::write(&file, &got).unwrap();
    // stap wants a kernel tree even for pass 1 (it reads its .config).
    let p1 = Command::new("stap")
        .args(["-p1", "-g", "-a", "arm64", "-r"])
        .arg(&s.tree)
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        p1.status.success(),
        "stap -p1 rejected the script:\n{}",
        String::from_utf8_lossy(&p1.stderr)
    );
    // Pass 1 prints the parse tree: the query is in it.
    let tree = String::from_utf8_lossy(&p1.stdout);
    assert!(tree.contains("global target_pid = 4242"), "{tree}");
}

/// The Rust runtime adaptation and scripts/stap/adapt-runtime.sh make
/// the same file and the same stamp, so they share one directory.
#[test]
fn the_runtime_adaptation_matches_the_script() {
    use whosent_deploy::stap::runtime;
    if let Some(why) = missing_tools() {
        skip("the_runtime_adaptation_matches_the_script", &why);
        return;
    }
    let stock = runtime::stock();
    let dir = std::env::temp_dir().join(format!("whosent-adapt-{}", std::process::id()));
    let by_script = script(&[
        "scripts/stap/adapt-runtime.sh",
        &stock.display().to_string(),
        &dir.join("sh").display().to_string(),
    ])
    .unwrap();
    runtime::adapt(&stock, &dir.join("rs")).unwrap();
    for f in ["stp_task_work.c", ".whosent-adapted"] {
        let a = std::fs::read(by_script.join(f)).unwrap();
        let b = std::fs::read(dir.join("rs").join(f)).unwrap();
        assert!(
            a == b,
            "{f} differs between adapt-runtime.sh and whosent-deploy"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
