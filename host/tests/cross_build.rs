//! Cross-building the agent (issue #3): `whosent-deploy build` makes a
//! static agent for aarch64 and armv7 from this checkout, the aarch64 one
//! fits its size budget, and each one, run under qemu-user against this
//! machine's real tracefs, reports a kill with the right pids. Bad input
//! fails with exit 2 and one clear line.
//!
//! The builds use a fresh cache (so a clean build, as from a clean
//! checkout) shared by the tests of one run. The qemu tests need root,
//! tracefs and qemu-user-static: in CI (`CI=true`) a missing piece fails
//! them; elsewhere they are skipped with the reason printed.

#[path = "../../tests/support/realkernel.rs"]
mod realkernel;

use realkernel::{real_kernel, wait_comm, Proc};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use whosent_deploy::build::{self, Target};

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");
/// Issue #3: the aarch64 agent must be at most 400 KiB.
const AARCH64_BUDGET: u64 = 400 * 1024;
const T: Duration = Duration::from_secs(10);
/// qemu-user starts the agent in well under a second here; a loaded CI
/// machine gets more.
const QEMU_READY: Duration = Duration::from_secs(60);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A directory for this test run, under cargo's scratch space; runs
/// that have ended leave theirs, which the next run removes.
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cross_build");
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let dead = name
                    .strip_prefix("run-")
                    .is_some_and(|pid| !Path::new("/proc").join(pid).exists());
                if dead {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// An empty directory of this run.
fn fresh_dir(name: &str) -> PathBuf {
    let d = run_dir().join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn deploy(args: &[&str], cache: &Path) -> Command {
    let mut c = Command::new(DEPLOY);
    c.args(args)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("CROSS_CONTAINER_ENGINE")
        .stdin(Stdio::null());
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn exit_code(o: &Output) -> i32 {
    o.status
        .code()
        .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0))
}

struct Built {
    path: PathBuf,
    stderr: String,
    secs: f64,
}

/// `whosent-deploy build --target T` into this run's cache, once per
/// target; tests that need the same agent share the build.
fn built(target: Target) -> &'static Built {
    static BUILT: [OnceLock<Built>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = build::ALL.iter().position(|t| *t == target).unwrap();
    BUILT[i].get_or_init(|| {
        let start = Instant::now();
        let o = deploy(
            &["build", "--target", target.name()],
            &run_dir().join("cache"),
        )
        .output()
        .unwrap();
        let stderr = text(&o.stderr);
        assert_eq!(
            exit_code(&o),
            0,
            "build --target {target} failed:\n{stderr}"
        );
        let out = text(&o.stdout);
        assert_eq!(
            out.lines().count(),
            1,
            "stdout must be just the path: {out:?}"
        );
        let path = PathBuf::from(out.trim());
        assert!(path.is_file(), "{} is not a file", path.display());
        Built {
            path,
            stderr,
            secs: start.elapsed().as_secs_f64(),
        }
    })
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// Checks a built agent's ELF header; returns its size.
fn check_static(target: Target) -> u64 {
    let b = built(target);
    let info = build::parse_elf(&std::fs::read(&b.path).unwrap()).unwrap();
    assert_eq!(
        (info.machine, info.class),
        (target.elf_machine(), target.elf_class()),
        "{target}"
    );
    assert_eq!(
        (info.interp.as_deref(), info.needed),
        (None, 0),
        "{target} agent is not static"
    );
    build::check_elf(&b.path, target).unwrap();
    let n = size(&b.path);
    eprintln!(
        "{target} agent: {n} bytes, built in {:.1} s: {}",
        b.secs,
        b.path.display()
    );
    n
}

#[test]
fn the_aarch64_agent_is_static_and_within_its_size_budget() {
    let n = check_static(Target::Aarch64);
    assert!(built(Target::Aarch64)
        .stderr
        .contains("building whosent-agent for aarch64"));
    assert!(
        n <= AARCH64_BUDGET,
        "the aarch64 agent is {n} bytes, over the budget of {AARCH64_BUDGET} (docs/agent-size.md)"
    );
}

#[test]
fn the_armv7_agent_is_static() {
    check_static(Target::Armv7);
    let stderr = &built(Target::Armv7).stderr;
    if stderr.contains("static glibc") {
        eprintln!("armv7 was built as the static glibc fallback");
    }
}

/// `build --ebpf`: the eBPF agent, a second static binary built by the
/// project's own build (its BPF program compiled by clang in build.rs).
#[test]
fn the_ebpf_agent_is_a_second_static_binary() {
    let o = deploy(
        &["build", "--target", "aarch64", "--ebpf"],
        &run_dir().join("cache"),
    )
    .output()
    .unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(exit_code(&o), 0, "build --ebpf failed:\n{stderr}");
    assert!(
        stderr.contains("building whosent-ebpf-agent for aarch64"),
        "{stderr}"
    );
    let path = PathBuf::from(text(&o.stdout).trim());
    assert!(path.ends_with("whosent-ebpf-agent"), "{}", path.display());
    let info = build::parse_elf(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        (info.interp.as_deref(), info.needed),
        (None, 0),
        "not static"
    );
    build::check_elf(&path, Target::Aarch64).unwrap();
    let n = size(&path);
    eprintln!("aarch64 eBPF agent: {n} bytes: {}", path.display());
    // The ftrace agent's budget is not the eBPF agent's
    // (docs/agent-size.md); a second, different binary is.
    assert_ne!(path, built(Target::Aarch64).path);
}

#[test]
fn a_second_build_uses_the_cache() {
    let first = built(Target::Aarch64);
    let start = Instant::now();
    let o = deploy(&["build", "--target", "arm64"], &run_dir().join("cache"))
        .output()
        .unwrap();
    assert_eq!(exit_code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(PathBuf::from(text(&o.stdout).trim()), first.path);
    assert!(
        text(&o.stderr).contains("using cached agent for aarch64"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "a cached build took {:?}",
        start.elapsed()
    );
}

/// Issue #13 (5): `build` printed the agent's path with println!, which
/// panicked (exit 101) on a full stdout. One error line, exit 2.
#[test]
fn build_panicked_on_a_full_stdout() {
    built(Target::Aarch64);
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = deploy(&["build", "--target", "aarch64"], &run_dir().join("cache"))
        .stdout(full)
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(exit_code(&o), 2, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.lines().last().is_some_and(|l| l
            .starts_with("whosent-deploy: error: cannot write to stdout: No space left on device")),
        "{err}"
    );
}

/// Whether `program` can run here; false (skip) outside CI, a failure in CI.
fn have(test: &str, program: &str) -> bool {
    if Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    let why = format!("{program} is not installed (Debian package qemu-user-static)");
    assert!(!in_ci(), "{test}: {why}; CI must run it");
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Runs the `target` agent under `qemu` on this machine's tracefs and
/// sends SIGUSR1 from this test process to a `sleep` child: the record
/// must name the child as the target and this process as the sender.
/// (The pids are the host's own; only comm can show the emulator.)
fn catches_a_kill_under_qemu(test: &str, target: Target, qemu: &str, uname_m: &str) {
    if !real_kernel(test) || !have(test, qemu) {
        return;
    }
    let agent = &built(target).path;
    let mut victim = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = victim.id() as i32;
    wait_comm(pid, "sleep");
    let pid_s = pid.to_string();
    let mut a = Proc::spawn(
        Command::new(qemu)
            .arg(agent)
            .args(["--sig", "USR1", "--pid", &pid_s, "--count", "1"]),
    );
    let l = a.until(QEMU_READY, |l| {
        l.contains(r#""type":"ready""#) || l.contains(r#""type":"error""#)
    });
    let ready: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(ready["type"], "ready", "the agent failed under {qemu}: {l}");
    assert_eq!(ready["arch"], uname_m, "not the emulated agent? {l}");

    // SAFETY: kill has no memory-safety preconditions; pid is our child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    let l = a.until(T, |l| l.contains(r#""type":"signal""#));
    let s: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(s["signame"], "SIGUSR1", "{l}");
    assert_eq!(s["code_name"], "SI_USER", "{l}");
    assert_eq!(s["context"], "task", "{l}");
    assert_eq!(s["target"]["pid"], pid, "{l}");
    assert_eq!(s["target"]["comm"], "sleep", "{l}");
    assert_eq!(s["sender"]["pid"], std::process::id(), "{l}");
    let end: Value = serde_json::from_str(&a.until(T, |l| l.contains(r#""type":"end""#))).unwrap();
    assert_eq!(
        (end["reason"].as_str(), end["signals"].as_u64()),
        (Some("count"), Some(1)),
        "{end}"
    );
    assert_eq!(
        a.wait(T),
        0,
        "the agent's exit status after reporting a signal"
    );
    assert_eq!(victim.wait().unwrap().signal(), Some(libc::SIGUSR1));
}

#[test]
fn the_aarch64_agent_under_qemu_catches_a_kill_with_real_pids() {
    catches_a_kill_under_qemu(
        "aarch64 under qemu",
        Target::Aarch64,
        "qemu-aarch64-static",
        "aarch64",
    );
}

#[test]
fn the_armv7_agent_under_qemu_catches_a_kill_with_real_pids() {
    catches_a_kill_under_qemu(
        "armv7 under qemu",
        Target::Armv7,
        "qemu-arm-static",
        "armv7l",
    );
}

/// The musl agents are linked without unwind tables (docs/agent-size.md):
/// a panic must still print its message and abort, also with
/// RUST_BACKTRACE set. `WHOSENT_AGENT_PANIC` makes it panic (a full
/// stdout no longer does: issue #13, item 5).
fn panics_abort_cleanly(test: &str, target: Target, runner: Option<&str>) {
    if runner.is_some_and(|r| !have(test, r)) {
        return;
    }
    let agent = &built(target).path;
    let mut c = match runner {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(agent);
            c
        }
        None => Command::new(agent),
    };
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = c
        .arg("--help")
        .env("RUST_BACKTRACE", "1")
        .env("WHOSENT_AGENT_PANIC", "1")
        .stdout(full)
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGABRT),
        "{target}: {:?}\n{err}",
        o.status
    );
    assert!(
        err.contains("panicked") && err.contains("WHOSENT_AGENT_PANIC is set"),
        "{target}: {err}"
    );
}

#[test]
fn a_panic_in_the_aarch64_agent_still_aborts_cleanly() {
    panics_abort_cleanly(
        "aarch64 panic",
        Target::Aarch64,
        Some("qemu-aarch64-static"),
    );
}

#[test]
fn a_panic_in_the_x86_64_agent_still_aborts_cleanly() {
    panics_abort_cleanly("x86_64 panic", Target::X86_64, None);
}

#[test]
fn an_unknown_target_lists_the_supported_ones() {
    let o = deploy(&["build", "--target", "sparc64"], &fresh_dir("unknown"))
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(exit_code(&o), 2, "{err}");
    assert!(o.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    for want in [
        "unknown target 'sparc64'",
        "aarch64 (arm64)",
        "armv7 (arm, armhf, armv7l)",
        "x86_64",
    ] {
        assert!(err.contains(want), "{want} missing from: {err}");
    }
}

/// A fake rustup that lists no installed targets and cannot add one,
/// as on a machine without network.
fn rustup_that_cannot_add() -> PathBuf {
    let d = fresh_dir("fake-rustup");
    let p = d.join("rustup");
    std::fs::write(
        &p,
        "#!/bin/sh\n\
         case \"$1 $2\" in\n\
         \"target list\") exit 0 ;;\n\
         \"target add\") echo \"error: component download failed for rust-std-$3\" >&2; exit 1 ;;\n\
         esac\n\
         exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn a_missing_rustup_target_that_rustup_cannot_add_is_a_clear_error() {
    let rustup = rustup_that_cannot_add();
    let o = deploy(&["build", "--target", "aarch64"], &fresh_dir("no-target"))
        .env(build::RUSTUP_ENV, &rustup)
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(exit_code(&o), 2, "{err}");
    assert!(o.stdout.is_empty());
    assert!(
        err.contains("running `rustup target add aarch64-unknown-linux-musl`"),
        "it must say so: {err}"
    );
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with(
            "whosent-deploy: error: the Rust target aarch64-unknown-linux-musl is not installed"
        ),
        "{err}"
    );
    assert!(
        last.contains("component download failed for rust-std-aarch64-unknown-linux-musl"),
        "{err}"
    );
}

#[test]
fn armv7_falls_back_to_static_glibc_when_rustup_cannot_add_musl() {
    let rustup = rustup_that_cannot_add();
    let o = deploy(
        &["build", "--target", "armv7"],
        &fresh_dir("no-target-armv7"),
    )
    .env(build::RUSTUP_ENV, &rustup)
    .output()
    .unwrap();
    let err = text(&o.stderr);
    // The fake rustup cannot add the glibc target either.
    assert_eq!(exit_code(&o), 2, "{err}");
    assert!(
        err.contains(
            "building a fully static glibc agent for armv7-unknown-linux-gnueabihf instead"
        ),
        "{err}"
    );
    assert!(
        err.contains("`rustup target add armv7-unknown-linux-gnueabihf` failed"),
        "{err}"
    );
}

#[test]
fn a_prebuilt_agent_of_the_wrong_architecture_is_refused() {
    // `whosent-deploy --target aarch64 --agent X --host H` calls check_elf
    // before connecting (#4); here it is checked through the library.
    let x86 = &built(Target::X86_64).path;
    let e = build::check_elf(x86, Target::Aarch64)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{} is an x86_64 ELF, but the board is aarch64",
            x86.display()
        )
    );
    let arm64 = &built(Target::Aarch64).path;
    let e = build::check_elf(arm64, Target::Armv7)
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("is an aarch64 ELF, but the board is armv7"),
        "{e}"
    );
    // A dynamically linked program (this test, linked against glibc) is refused too.
    let me = std::env::current_exe().unwrap();
    let e = build::check_elf(&me, Target::X86_64)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is dynamically linked") && e.contains("must be static"),
        "{e}"
    );
    build::check_elf(x86, Target::X86_64).unwrap();
}

/// PATH without any directory that has `cross`, with `extra` first.
fn path_without_cross(extra: &Path) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(extra.to_path_buf())
        .chain(std::env::split_paths(&path).filter(|d| !d.join("cross").exists()));
    std::env::join_paths(dirs).unwrap().into_string().unwrap()
}

/// Written here, then copied by cp into place: a file open for writing
/// in this process is open in any child another test forks meanwhile
/// (until its exec), and running it then fails with ETXTBSY; cp's copy
/// never was open here.
fn script(dir: &Path, name: &str, body: &str) {
    let p = dir.join(name);
    let text = dir.join(format!(".{name}.text"));
    std::fs::write(&text, format!("#!/bin/sh\n{body}\n")).unwrap();
    let st = std::process::Command::new("cp")
        .arg(&text)
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// gcc-arm-linux-gnueabihf without its Recommends (libc6-dev-armhf-cross):
/// the linker is there but links nothing (issue #10). The gcc here is a
/// stand-in that, like the real one without the package, prints the bare
/// name back for `-print-file-name=crt1.o`.
#[test]
fn armv7_without_the_cross_libc_names_the_package() {
    let dir = fresh_dir("no-cross-libc");
    script(
        &dir,
        "arm-linux-gnueabihf-gcc",
        "case \"$1\" in -print-file-name=*) echo \"${1#-print-file-name=}\" ;; *) exit 1 ;; esac",
    );
    // A rustup that has the glibc target but cannot add musl's.
    script(
        &dir,
        "rustup",
        "case \"$1 $2\" in\n\
         \"target list\") echo armv7-unknown-linux-gnueabihf ;;\n\
         \"target add\") echo \"error: component download failed for rust-std-$3\" >&2; exit 1 ;;\n\
         *) exit 1 ;;\n\
         esac",
    );
    let o = deploy(
        &["build", "--target", "armv7"],
        &fresh_dir("no-cross-libc-cache"),
    )
    .env(build::RUSTUP_ENV, dir.join("rustup"))
    .env("PATH", path_without_cross(&dir))
    .output()
    .unwrap();
    let err = text(&o.stderr);
    assert_eq!(exit_code(&o), 2, "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.contains("has no C runtime (crt1.o)")
            && last.contains("apt-get install libc6-dev-armhf-cross"),
        "{err}"
    );
}

#[test]
fn the_cross_builder_without_cross_is_a_clear_error() {
    let empty = fresh_dir("no-cross-bin");
    let o = deploy(
        &["build", "--target", "aarch64", "--builder", "cross"],
        &fresh_dir("no-cross"),
    )
    .env("PATH", path_without_cross(&empty))
    .output()
    .unwrap();
    let err = text(&o.stderr);
    assert_eq!(exit_code(&o), 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--builder cross needs `cross`, which is not installed"),
        "{err}"
    );
}

#[test]
fn the_cross_builder_without_a_working_container_engine_is_a_clear_error() {
    let bin = fresh_dir("no-engine-bin");
    script(&bin, "cross", "[ \"$1\" = --version ] && echo 'cross 0.2.5' && exit 0\necho 'cross must not be run' >&2; exit 99");
    for engine in ["docker", "podman"] {
        script(&bin, engine, "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2; exit 1");
    }
    let o = deploy(
        &["build", "--target", "armv7", "--builder", "cross"],
        &fresh_dir("no-engine"),
    )
    .env("PATH", path_without_cross(&bin))
    .output()
    .unwrap();
    let err = text(&o.stderr);
    assert_eq!(exit_code(&o), 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("needs a working container engine, but `docker info` failed: Cannot connect"),
        "{err}"
    );
}

fn cross_toml() -> toml::Table {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cross.toml");
    let s = std::fs::read_to_string(&p).unwrap();
    s.parse()
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", p.display()))
}

#[test]
fn cross_toml_parses_and_configures_every_target() {
    let t = cross_toml();
    let volumes = t["build"]["env"]["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v.as_str() == Some(build::LINK_DIR_ENV)),
        "{volumes:?}"
    );
    let triples = build::ALL
        .iter()
        .flat_map(|t| [Some(t.triple()), t.fallback_triple()])
        .flatten();
    for triple in triples {
        let cfg = t["target"]
            .get(triple)
            .unwrap_or_else(|| panic!("Cross.toml has no [target.{triple}]"));
        let image = cfg["image"].as_str().unwrap();
        assert!(
            image.starts_with(&format!("ghcr.io/cross-rs/{triple}:")),
            "{triple}: {image}"
        );
    }
}
