//! Cross-compiling the module: `stap -p4` against the board kernel's
//! tree, with progress, stap's own errors shown as they are, and a cache.
//!
//! Cache layout, under [`super::cache_dir`] (`~/.cache/whosent/stap`):
//! - `modules/RELEASE/ARCH-stapVERSION-KEY/whosent_session.ko`: built modules.
//!   KEY hashes the template, the release, the arch, stap's version line
//!   and every stap flag, so `-D`/`-R` get their own entry.
//! - `runtime-VERSION-adapted/`: the adapted runtime ([`super::runtime`]).
//! - `systemtap/`: stap's own cache (`SYSTEMTAP_DIR`). Its first build
//!   for a tree and flag set makes a tracepoint cache of about 20 MB,
//!   which is why that first build takes a minute or two.
//! - `.build.lock`: builds wait for each other, so two runs that need the
//!   same module build it once.
//! - `failed-build/`: the last failed build's script, stap's output and
//!   the command, to retry by hand.

use super::script::{self, MODULE_NAME};
use super::tree::Tree;
use super::{other, runtime};
use crate::bundle::sha256_hex;
use crate::error::HostError;
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What to build against, besides the template.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub tree: &'a Tree,
    /// `-R DIR` from the user: used as it is, and no adaptation.
    pub user_runtime: Option<&'a Path>,
    /// `-D NAME[=VALUE]` from the user.
    pub defines: &'a [String],
}

#[derive(Debug, Clone)]
pub struct Module {
    pub ko: PathBuf,
    /// Found in the cache rather than built now.
    pub cached: bool,
}

/// stap's version: `4.8` and the whole line of `stap -V`.
pub fn stap_version() -> Result<(String, String), HostError> {
    let out = Command::new("stap").arg("-V").output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            other(
                "stap is not installed on this machine, and --backend stap builds the module here",
                "install SystemTap (Debian: apt-get install systemtap), or put stap in PATH",
            )
        } else {
            HostError::Io("cannot run stap -V".into(), e)
        }
    })?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default().to_string();
    // "Systemtap translator/driver (version 4.8/0.188, Debian version 4.8-2)"
    let short = line
        .split_once("(version ")
        .map(|(_, r)| {
            r.split(|c: char| c == '/' || c == ',' || c == ')' || c.is_whitespace())
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            other(
                format!("cannot read stap's version from `stap -V`: {line:?}"),
                "check that `stap -V` works on this machine",
            )
        })?;
    Ok((short, line))
}

/// The stap flags for a request (everything but `-m` and the script),
/// adapting the runtime first if the kernel needs it.
pub fn flags(req: &Request, cache: &Path, version: &str) -> Result<Vec<String>, HostError> {
    let t = req.tree;
    let mut f: Vec<String> = vec![
        "-p4".into(),
        "-g".into(), // guru mode, for the script's embedded-C context test
        "-a".into(),
        t.stap_arch().into(),
        "-B".into(),
        format!("CROSS_COMPILE={}", t.cross_compile()),
        "-r".into(),
        t.build.display().to_string(),
    ];
    match req.user_runtime {
        Some(rt) => {
            f.extend(["-R".into(), rt.display().to_string()]);
        }
        None => {
            let stock = runtime::stock();
            if runtime::needed(t.task_work_h().as_deref(), &stock) {
                let dest = cache.join(format!("runtime-{version}-adapted"));
                runtime::adapt(&stock, &dest)?;
                say!(
                    "whosent: Linux {} has task_work_cancel_func, which stap {version}'s runtime predates: \
                     using the adapted copy {} with -D {}",
                    t.release,
                    dest.display(),
                    runtime::DEFINE
                );
                f.extend([
                    "-R".into(),
                    dest.display().to_string(),
                    "-D".into(),
                    runtime::DEFINE.into(),
                ]);
            }
        }
    }
    for d in req.defines {
        f.extend(["-D".into(), d.clone()]);
    }
    Ok(f)
}

/// The cache key: 16 hex digits over everything the module depends on.
pub fn key(tree: &Tree, version_line: &str, flags: &[String]) -> String {
    let mut parts: Vec<String> = vec![
        format!("template={}", script::template_hash()),
        format!("release={}", tree.release),
        format!("arch={}", tree.arch.name()),
        format!("stap={version_line}"),
    ];
    parts.extend(flags.iter().map(|f| format!("flag={f}")));
    // Lengths first, so that no two different lists hash alike.
    let joined: String = parts.iter().map(|p| format!("{}:{p}", p.len())).collect();
    sha256_hex(joined.as_bytes())[..16].to_string()
}

/// An exclusive lock on `path` for as long as the file is open.
fn lock(path: &Path) -> Result<fs::File, HostError> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| HostError::Io(format!("cannot open {}", path.display()), e))?;
    // SAFETY: a valid open descriptor; flock only blocks.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        say!("whosent: waiting for another whosent-deploy that is building a SystemTap module");
        // SAFETY: as above.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(HostError::Io(
                format!("cannot lock {}", path.display()),
                io::Error::last_os_error(),
            ));
        }
    }
    Ok(f)
}

/// The module for `req`: from the cache, or built now.
pub fn module(req: &Request, stop: &AtomicBool) -> Result<Module, HostError> {
    let cache = super::cache_dir()?;
    fs::create_dir_all(&cache)
        .map_err(|e| HostError::Io(format!("cannot create {}", cache.display()), e))?;
    let (version, version_line) = stap_version()?;
    let cross = format!("{}gcc", req.tree.cross_compile());
    if !in_path(&cross) {
        return Err(other(
            format!(
                "no {cross} on this machine to cross-compile the module for {}",
                req.tree.arch.name()
            ),
            format!(
                "install the cross compiler (Debian: apt-get install gcc-{}), or set CROSS_COMPILE",
                req.tree.cross_compile().trim_end_matches('-')
            ),
        ));
    }
    let _lock = lock(&cache.join(".build.lock"))?;
    let flags = flags(req, &cache, &version)?;
    let key = key(req.tree, &version_line, &flags);
    let dir = cache
        .join("modules")
        .join(&req.tree.release)
        .join(format!("{}-stap{version}-{key}", req.tree.arch.name()));
    let ko = dir.join(format!("{MODULE_NAME}.ko"));
    if ko.is_file() {
        return Ok(Module { ko, cached: true });
    }
    let work = cache.join(format!(".build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)
        .map_err(|e| HostError::Io(format!("cannot create {}", work.display()), e))?;
    let result = run_stap(req, &cache, &work, &flags, &version, stop).and_then(|built| {
        fs::create_dir_all(&dir)
            .and_then(|()| fs::rename(&built, &ko))
            .map_err(|e| HostError::Io(format!("cannot store the module in {}", dir.display()), e))
    });
    let _ = fs::remove_dir_all(&work);
    result.map(|()| Module { ko, cached: false })
}

fn in_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// Lines of stap's stderr that every build prints and that mean nothing
/// for this script (it probes a tracepoint, no kernel symbols).
fn noise(line: &str) -> bool {
    line.starts_with("WARNING: Kernel function symbol table missing")
        || line.starts_with("Tip: /usr/share/doc/systemtap/README.Debian")
}

/// Runs stap in `work`; returns the built `.ko`.
fn run_stap(
    req: &Request,
    cache: &Path,
    work: &Path,
    flags: &[String],
    version: &str,
    stop: &AtomicBool,
) -> Result<PathBuf, HostError> {
    let script_path = work.join(format!("{MODULE_NAME}.stp"));
    fs::write(&script_path, script::TEMPLATE)
        .map_err(|e| HostError::Io(format!("cannot write {}", script_path.display()), e))?;
    let stap_dir = cache.join("systemtap");
    let mut args = flags.to_vec();
    args.extend([
        "-m".into(),
        MODULE_NAME.into(),
        script_path.display().to_string(),
    ]);
    // As the user would retry it, from a directory holding the script.
    let mut shown_args = flags.to_vec();
    shown_args.extend([
        "-m".into(),
        MODULE_NAME.into(),
        format!("{MODULE_NAME}.stp"),
    ]);
    let shown = format!(
        "SYSTEMTAP_DIR={} stap {}",
        super::shell_word(&stap_dir.display().to_string()),
        shown_args
            .iter()
            .map(|a| super::shell_word(a))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = Command::new("stap")
        .args(&args)
        .current_dir(work)
        .env("SYSTEMTAP_DIR", &stap_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HostError::Io("cannot run stap".into(), e))?;
    let mut err_pipe = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let t = req.tree;
    say!(
        "whosent: building the SystemTap module for Linux {} ({}) with stap {version}; \
         the first build for a kernel takes a minute or two",
        t.release,
        t.stap_arch()
    );
    let spinner = crate::progress::spinner("building the module: 0 s");
    let start = Instant::now();
    let mut shown_at = Duration::ZERO;
    let status = loop {
        if let Some(st) = child
            .try_wait()
            .map_err(|e| HostError::Io("waiting for stap".into(), e))?
        {
            break st;
        }
        if stop.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(s) = &spinner {
                s.abandon();
            }
            return Err(other(
                "interrupted while building the SystemTap module",
                "run again; the part of the build stap caches is kept",
            ));
        }
        let el = start.elapsed();
        match &spinner {
            Some(s) => s.set_message(format!("building the module: {} s", el.as_secs())),
            // Without a terminal, a line every 5 s says it is alive.
            None if el >= shown_at + Duration::from_secs(5) => {
                shown_at = el;
                say!("whosent: building the module: {} s", el.as_secs());
            }
            None => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Some(s) = spinner {
        s.finish();
    }
    let stderr = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let secs = start.elapsed().as_secs_f64();
    let ko = work.join(format!("{MODULE_NAME}.ko"));
    if status.success() && ko.is_file() {
        for l in stderr.lines().filter(|l| !noise(l) && !l.trim().is_empty()) {
            say!("stap: {l}");
        }
        say!("whosent: built the module in {secs:.1} s");
        return Ok(ko);
    }
    // stap's own words, as they are.
    say!("whosent: stap failed after {secs:.1} s; its output:");
    eprint!("{stderr}");
    if !stderr.ends_with('\n') {
        say!("");
    }
    // Keep the script and the command to retry by hand (one slot).
    let kept = cache.join("failed-build");
    let _ = fs::remove_dir_all(&kept);
    let saved = fs::create_dir_all(&kept)
        .and_then(|()| fs::copy(&script_path, kept.join(format!("{MODULE_NAME}.stp"))))
        .and_then(|_| fs::write(kept.join("stderr.txt"), &stderr))
        .and_then(|()| fs::write(kept.join("command.sh"), format!("#!/bin/sh\n{shown}\n")));
    if saved.is_ok() {
        say!(
            "whosent: to retry by hand: cd {} && sh command.sh",
            kept.display()
        );
    }
    Err(other(
        format!("stap could not build the module ({})", failed_pass(&stderr)),
        hint(&stderr),
    ))
}

/// "pass 4 (compilation)", from stap's `Pass N: … failed.` line.
fn failed_pass(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("Pass ")?;
            let (n, what) = rest.split_once(": ")?;
            let what = what.split(" failed").next()?;
            Some(format!("pass {n}: {what} failed"))
        })
        .unwrap_or_else(|| "no pass named".into())
}

/// One line telling the user what to try.
pub fn hint(stderr: &str) -> String {
    let pass4 = stderr.contains("Pass 4:");
    if pass4 && stderr.contains("task_work_cancel") {
        "the SystemTap runtime does not fit this kernel (task_work_cancel): without -R, whosent \
         adapts SystemTap 4.8's own; else pass a runtime that fits with -R DIR and the macros it \
         needs with -D (docs/stap-notes.md, section 2)"
            .into()
    } else if pass4 {
        "the module did not compile against this kernel tree: if the errors name a -D you gave, fix \
         or drop it; if they are in the runtime, pass one that fits this kernel with -R DIR and -D NAME[=VALUE]"
            .into()
    } else if stderr.contains("debuginfo") {
        "stap did not find the kernel's tracepoint headers: give --kernel-build the \
         lib/modules/RELEASE/build path (with Debian headers, the -common source tree beside it)"
            .into()
    } else if stderr.contains("Pass 1:") || stderr.contains("Pass 2:") {
        "stap rejected the script; a -D or -R passed through may be wrong".into()
    } else {
        "run the command above by hand, with -v, for stap's details".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_failed_pass_and_hints() {
        let e = "runtime/stp_task_work.c:107:40: error: passing argument 2 of '(bool (*)(struct task_struct *, struct callback_head *))kallsyms_task_work_cancel' from incompatible pointer type\nPass 4: compilation failed.  [man error::pass4]\n";
        assert_eq!(failed_pass(e), "pass 4: compilation failed");
        assert!(hint(e).contains("-R DIR"));
        let e = "semantic error: while resolving probe point: identifier 'kernel' at /usr/share/systemtap/tapset/linux/signal.stp:55:29\nsemantic error: missing arm64 kernel/module debuginfo [man warning::debuginfo]\nPass 2: analysis failed.  [man error::pass2]\n";
        assert_eq!(failed_pass(e), "pass 2: analysis failed");
        assert!(hint(e).contains("lib/modules/RELEASE/build"));
        assert_eq!(failed_pass("oops"), "no pass named");
    }
}
