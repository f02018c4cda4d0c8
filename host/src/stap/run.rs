//! `whosent-deploy --backend stap`: the ftrace deploy's path
//! ([`crate::remote`]) with a module instead of the agent.
//!
//! 1. Check the flags and the local files before connecting.
//! 2. Connect and probe the board; pick its staprun, or the bundle.
//! 3. Check the kernel tree against the board, build (or reuse) the
//!    module, check the module's vermagic against the board.
//! 4. Upload the module (and the bundle) into a private directory and
//!    check their sha256 there.
//! 5. Run [`wrapper`] on the board and turn the module's lines into
//!    records as they come ([`Session`]); stop on count, duration or
//!    Ctrl-C. How the module is unloaded on every way out:
//!    [`super::staprun`]. At the end the host checks /proc/modules once
//!    more.

use super::script::MODULE_NAME;
use super::session::{Session, WHY_DURATION, WHY_INTERRUPTED, WHY_NONE};
use super::staprun::{read_bundle, wrapper, Staprun};
use super::tree::{self, Tree};
use super::{build, other, params, vermagic};
use crate::board::Facts;
use crate::bundle::sha256_hex;
use crate::cli::RunArgs;
use crate::error::HostError;
use crate::remote::{self, RemoteDir};
use crate::report::Report;
use crate::ssh::upload::quote;
use crate::ssh::{Conn, SshError, UploadOpts};
use std::io::{self, IsTerminal};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// How long to wait for the board to unload after a stop that the
/// SSH layer gave up on.
const UNLOAD_WAIT: Duration = Duration::from_secs(15);

fn check_flags(r: &RunArgs, host: &str) -> Result<(), HostError> {
    let bad = |m: &str| Err(HostError::Usage(m.into()));
    if host == "local" {
        return bad(
            "--backend stap runs on a board over SSH; --host local is for the ftrace agent",
        );
    }
    if r.agent.is_some() {
        return bad(
            "--agent is the ftrace agent; --backend stap pushes a SystemTap module instead",
        );
    }
    if r.keep {
        return bad(
            "--keep is for the ftrace agent; the stap backend always removes what it pushed",
        );
    }
    Ok(())
}

pub fn run(r: &RunArgs, host: &str, stop: &'static AtomicBool) -> Result<i32, HostError> {
    let s = &r.stap;
    check_flags(r, host)?;
    let q = crate::query::from_args(&r.query)?;
    // The same checks of --count and --duration as for the agent.
    crate::query::agent_args(&q, &r.capture)?;
    let plan = params::plan(&q, r.capture.count)?;
    if !plan.exact() {
        eprintln!(
            "whosent: the module filters on one value per flag; {} filtered here instead",
            plan.host_only.join(", ")
        );
    }
    let bundle = s.staprun_bundle.as_deref().map(read_bundle).transpose()?;
    // Before connecting: a missing tree is a typo, not a board problem.
    tree::locate(s.kernel_build.as_deref(), s.sysroot.as_deref(), None)?;

    let (target, conn) = remote::connect(&r.ssh)?;
    let facts = remote::probe(&conn, r.sudo)?;
    let arch = remote::arch(r.target.as_deref(), &facts)?;
    remote::check_privileges(&facts, r.sudo)?;
    eprintln!(
        "whosent: connected to {}@{}:{} ({}, Linux {})",
        target.user, target.host, target.port, facts.arch, facts.release
    );
    let staprun = match (facts.has("staprun"), bundle) {
        (true, _) => Staprun::Board,
        (false, Some(b)) => {
            Staprun::Bundle(b.check(arch, s.staprun_bundle.as_deref().unwrap_or(Path::new("")))?)
        }
        (false, None) => return Err(other(
            "board without staprun and no bundle: the board has no staprun to load the module with",
            "pass --staprun-bundle FILE (scripts/staprun-bundle.sh builds one), or install \
                 SystemTap's runtime (staprun, stapio) on the board",
        )),
    };
    let build_dir = tree::locate(
        s.kernel_build.as_deref(),
        s.sysroot.as_deref(),
        Some(&facts.release),
    )?;
    let tree = Tree::open(&build_dir)?;
    tree.check(&facts.release, arch)?;

    let module = build::module(
        &build::Request {
            tree: &tree,
            user_runtime: s.stap_runtime.as_deref(),
            defines: &s.define,
        },
        stop,
    )?;
    let info = vermagic::read(&module.ko)?;
    vermagic::check(&info, &facts.release, arch, MODULE_NAME)?;
    if module.cached {
        eprintln!("whosent: using the cached module {}", module.ko.display());
    }
    let ko = std::fs::read(&module.ko)
        .map_err(|e| HostError::Io(format!("cannot read {}", module.ko.display()), e))?;

    let ko_hash = sha256_hex(&ko);
    let (mut dir, _) = remote::make_dir(&conn, &ko_hash, false)?;
    let staprun_cmd = push(&conn, &facts, &dir, &ko, &ko_hash, &staprun)?;
    let script = wrapper(&dir.path, &staprun_cmd, &plan.params.module_args());
    let sudo = if facts.is_root() { "" } else { "sudo -n " };
    let cmd = format!("{sudo}sh -c {}", quote(&script));
    // From here the wrapper removes the directory itself.
    dir.remove_on_drop = false;

    let mut report = Report::new(io::stdout().lock(), r.capture.json, Some(host.to_string()));
    report.quiet = r.capture.json && !io::stderr().is_terminal();
    let why = AtomicU8::new(WHY_NONE);
    let halt = AtomicBool::new(false);
    let mut sess = Session::new(report, &q, &plan, r.capture.count, &facts, &why, &halt);
    let deadline = r
        .capture
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let done = AtomicBool::new(false);
    let streamed = std::thread::scope(|sc| {
        // Ctrl-C and --duration become a stop of this stream.
        sc.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let why_now = if stop.load(Ordering::SeqCst) {
                    WHY_INTERRUPTED
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    WHY_DURATION
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let _ = why.compare_exchange(WHY_NONE, why_now, Ordering::SeqCst, Ordering::SeqCst);
                halt.store(true, Ordering::SeqCst);
                return;
            }
        });
        // Both callbacks feed the one session, never at the same time.
        let shared = std::cell::RefCell::new(&mut sess);
        let res = conn.stream(
            &cmd,
            &mut |line| shared.borrow_mut().line(line),
            &mut |chunk| shared.borrow_mut().stderr(chunk),
            &halt,
        );
        done.store(true, Ordering::SeqCst);
        res
    });
    let status = match streamed {
        Ok(st) => st,
        Err(SshError::NoExit { .. }) => {
            // The stop reached the board; stapio takes its time. The
            // wrapper still unloads; wait for that here.
            eprintln!("whosent: the board is slow to unload the module; waiting");
            wait_unloaded(&conn, sess.module());
            0
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(m) = sess.finish(status) {
        still_loaded(&conn, &m)?;
    }
    Ok(sess.status(status))
}

/// Uploads the module (and the bundle) into `dir`, checked; returns
/// the staprun command to use there.
fn push(
    conn: &Conn,
    facts: &Facts,
    dir: &RemoteDir,
    ko: &[u8],
    ko_hash: &str,
    staprun: &Staprun,
) -> Result<String, HostError> {
    let bundle_len = match staprun {
        Staprun::Bundle(b) => b.len() as u64,
        Staprun::Board => 0,
    };
    // The bundle unpacks to about 2.6 times its size.
    let need_kb = (ko.len() as u64 + bundle_len * 4) / 1024;
    if let Some(kb) = facts.tmp_free_kb {
        if kb < need_kb {
            return Err(other(
                format!("the board has {kb} KiB free in /tmp, and the module and staprun need about {need_kb} KiB"),
                "free space in /tmp on the board (or set TMPDIR for the login user)",
            ));
        }
    }
    let ko_path = format!("{}/{MODULE_NAME}.ko", dir.path);
    let mut bar = remote::progress_bar("uploading the module");
    conn.upload_with(
        ko,
        &ko_path,
        0o600,
        UploadOpts {
            progress: Some(&mut bar),
            ..Default::default()
        },
    )?;
    verify(conn, facts, &ko_path, ko_hash, "module")?;
    let cmd = match staprun {
        Staprun::Board => {
            eprintln!(
                "whosent: uploaded the module ({} KiB) to {}; using the board's staprun",
                ko.len() / 1024,
                dir.path
            );
            "staprun".to_string()
        }
        Staprun::Bundle(b) => {
            if dir.path.contains(char::is_whitespace) {
                return Err(other(
                    format!("the board's directory {:?} has a space, which the staprun bundle cannot run from", dir.path),
                    "set TMPDIR for the login user to a path without spaces",
                ));
            }
            if !facts.has("tar") {
                return Err(other(
                    "the board has no staprun and no tar to unpack the staprun bundle with",
                    "install tar (busybox tar will do) or SystemTap's runtime on the board",
                ));
            }
            let tgz = format!("{}/staprun.tar.gz", dir.path);
            let mut bar = remote::progress_bar("uploading staprun");
            conn.upload_with(
                b,
                &tgz,
                0o600,
                UploadOpts {
                    progress: Some(&mut bar),
                    ..Default::default()
                },
            )?;
            verify(conn, facts, &tgz, &sha256_hex(b), "staprun bundle")?;
            let rt = format!("{}/rt", dir.path);
            let out = conn.run(&format!(
                "mkdir {rt} && tar -xzf {tgz} -C {rt} && rm -f {tgz}",
                rt = quote(&rt),
                tgz = quote(&tgz)
            ))?;
            if out.status != 0 {
                return Err(other(
                    format!(
                        "unpacking the staprun bundle on the board failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                    "check free space in /tmp on the board (`whosent-deploy doctor`)",
                ));
            }
            eprintln!(
                "whosent: uploaded the module ({} KiB) and staprun ({} KiB) to {}; sha256 verified",
                ko.len() / 1024,
                b.len() / 1024,
                dir.path
            );
            quote(&format!("{rt}/run-staprun"))
        }
    };
    Ok(cmd)
}

fn verify(conn: &Conn, facts: &Facts, path: &str, hash: &str, what: &str) -> Result<(), HostError> {
    match remote::remote_sha256(conn, facts, path)? {
        Some(h) if h == hash => Ok(()),
        Some(h) => Err(other(
            format!("the {what} on the board has sha256 {h}, expected {hash}; not loading it"),
            "retry; if it persists, check the board's storage (a full or failing /tmp)",
        )),
        None => Err(other(
            format!("could not read back the uploaded {what} to check its sha256"),
            "check free space in /tmp on the board (`whosent-deploy doctor`)",
        )),
    }
}

fn loaded(conn: &Conn, module: &str) -> Result<bool, HostError> {
    let out = conn.run(&format!(
        "grep -q {} /proc/modules && echo loaded; true",
        quote(&format!("^{module} "))
    ))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("loaded"))
}

fn wait_unloaded(conn: &Conn, module: Option<&str>) {
    let Some(m) = module else { return };
    let end = Instant::now() + UNLOAD_WAIT;
    while Instant::now() < end {
        if !loaded(conn, m).unwrap_or(false) {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The last word: the module must be gone from the board.
fn still_loaded(conn: &Conn, module: &str) -> Result<(), HostError> {
    if !loaded(conn, module)? {
        return Ok(());
    }
    wait_unloaded(conn, Some(module));
    if loaded(conn, module)? {
        return Err(other(
            format!("the module {module} is still loaded on the board after the session ended"),
            format!("unload it there with `staprun -d {module}` or `rmmod {module}`"),
        ));
    }
    Ok(())
}
