//! The SystemTap backend's costs: building the module on this host for
//! the board's kernel, cold (an empty SYSTEMTAP_DIR, so stap first
//! builds its per-kernel tracepoint cache) and warm, with the project's
//! scripts/stap/build-module.sh; and loading it on the board with the
//! staprun bundle (scripts/staprun-bundle.sh).
//!
//! The cold build must not wipe the developer's cache: it runs with
//! WHOSENT_CACHE pointing at a scratch directory that links to the real
//! cache's downloaded packages, header tree and adapted runtime, but has
//! an empty `stap/systemtap`.

use crate::board::Board;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Build {
    pub cold: Result<Duration, String>,
    pub warm: Vec<Result<Duration, String>>,
    pub ko: Option<(PathBuf, u64)>,
}

pub fn real_cache() -> PathBuf {
    std::env::var_os("WHOSENT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/whosent")
        })
}

/// A scratch WHOSENT_CACHE sharing everything but stap's own caches
/// (its tracepoint cache and whosent's module cache).
pub fn scratch_cache(dir: &Path) -> io::Result<PathBuf> {
    let real = real_cache();
    let c = dir.join("stap-cache");
    fs::create_dir_all(c.join("stap/systemtap"))?;
    if real.join("debs").is_dir() && !c.join("debs").exists() {
        symlink(real.join("debs"), c.join("debs"))?;
    }
    if let Ok(d) = fs::read_dir(real.join("stap")) {
        for e in d.flatten() {
            let n = e.file_name();
            let s = n.to_string_lossy();
            if (s.starts_with("sysroot-") || s.starts_with("runtime-"))
                && !c.join("stap").join(&n).exists()
            {
                symlink(e.path(), c.join("stap").join(&n))?;
            }
        }
    }
    Ok(c)
}

fn build_once(repo: &Path, cache: &Path, out: &Path) -> Result<Duration, String> {
    let t0 = Instant::now();
    let o = Command::new(repo.join("scripts/stap/build-module.sh"))
        .args(["-o"])
        .arg(out)
        .env("WHOSENT_CACHE", cache)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run build-module.sh: {e}"))?;
    let t = t0.elapsed();
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let last: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        return Err(format!(
            "build-module.sh failed ({}): {}",
            o.status,
            last[last.len().saturating_sub(2)..].join(" / ")
        ));
    }
    Ok(t)
}

pub fn build(repo: &Path, work: &Path, warm_reps: usize) -> Build {
    let script = repo.join("scripts/stap/build-module.sh");
    if !script.is_file() {
        let e = "scripts/stap/build-module.sh is not in this checkout".to_string();
        return Build {
            cold: Err(e),
            warm: Vec::new(),
            ko: None,
        };
    }
    let cache = match scratch_cache(work) {
        Ok(c) => c,
        Err(e) => {
            return Build {
                cold: Err(format!("cannot make a scratch cache: {e}")),
                warm: Vec::new(),
                ko: None,
            }
        }
    };
    let out = work.join("whosent_sig.ko");
    let cold = build_once(repo, &cache, &out);
    let mut warm = Vec::new();
    if cold.is_ok() {
        for _ in 0..warm_reps {
            warm.push(build_once(repo, &cache, &out));
        }
    }
    let ko = fs::metadata(&out).ok().map(|m| (out.clone(), m.len()));
    // The scratch tracepoint cache is ~20 MB: do not leave it behind.
    let _ = fs::remove_dir_all(&cache);
    Build { cold, warm, ko }
}

pub struct Load {
    /// staprun started until the module's ready line.
    pub ready: Duration,
    /// staprun started until the first probe signal was printed.
    pub caught: Option<Duration>,
    /// SIGINT to stapio until it exited (module unloaded).
    pub unload: Option<Duration>,
}

/// The board-side script: loads the module `reps` times with the probe
/// query and prints `load <t0> <ready> <caught> <stopped>` in ns.
fn load_script(dir: &str, module: &str, pid: i32, sig: i32, reps: usize) -> String {
    format!(
        r#"cd {dir} || exit 1
now() {{ d=$(date +%s%N); case $d in *N) awk '{{printf "%.0f\n", $1*1000000000}}' /proc/uptime ;; *) echo $d ;; esac; }}
i=0
while [ $i -lt {reps} ]; do
  i=$((i+1))
  rm -f out err
  t0=$(now)
  ./run-staprun -b 1 {module}.ko target_pid={pid} target_sig={sig} >out 2>err &
  sp=$!
  n=0
  while ! grep -q '	ready	' out 2>/dev/null; do
    usleep 2000; n=$((n+1))
    if [ $n -gt 10000 ] || ! kill -0 $sp 2>/dev/null; then echo "fail ready: $(tail -n 2 err | tr '\n' ' ')"; exit 1; fi
  done
  t1=$(now)
  n=0
  while ! grep -q '	sig	' out 2>/dev/null; do
    usleep 2000; n=$((n+1))
    if [ $n -gt 2500 ]; then break; fi
  done
  t2=$(now)
  grep -q '	sig	' out || t2=0
  kill -INT $sp
  wait $sp
  t3=$(now)
  if grep -q "^{module} " /proc/modules; then echo "fail: module still loaded"; exit 1; fi
  echo "load $t0 $t1 $t2 $t3"
done
"#
    )
}

/// Pushes the bundle and the module, then loads and unloads it `reps`
/// times on the board, timed there.
pub fn load(
    board: &Board,
    ko: &Path,
    bundle: &Path,
    pid: i32,
    reps: usize,
) -> Result<Vec<Load>, String> {
    let dir = "/tmp/wsbench-stap";
    let module = ko
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bundle_bytes = fs::read(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let ko_bytes = fs::read(ko).map_err(|e| format!("{}: {e}", ko.display()))?;
    board
        .ssh(
            &format!("rm -rf {dir} && mkdir -p {dir} && cd {dir} && tar -xzf -"),
            Some(&bundle_bytes),
        )
        .map_err(|e| format!("upload of the staprun bundle: {e}"))?;
    board
        .ssh(&format!("cat > {dir}/{module}.ko"), Some(&ko_bytes))
        .map_err(|e| format!("upload of the module: {e}"))?;
    let (out, _) = board
        .ssh(&load_script(dir, &module, pid, libc::SIGWINCH, reps), None)
        .map_err(|e| format!("load on the board: {e}"))?;
    let _ = board.ssh(&format!("rm -rf {dir}"), None);
    let mut loads = Vec::new();
    for l in out.lines() {
        let v: Vec<u64> = l
            .strip_prefix("load ")
            .map(|r| {
                r.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if v.len() == 4 {
            let d = |a: u64, b: u64| Duration::from_nanos(b.saturating_sub(a));
            loads.push(Load {
                ready: d(v[0], v[1]),
                caught: (v[2] != 0).then(|| d(v[0], v[2])),
                unload: Some(d(v[2].max(v[1]), v[3])),
            });
        } else if l.starts_with("fail") {
            return Err(l.to_string());
        }
    }
    if loads.is_empty() {
        return Err(format!("no load lines from the board: {}", out.trim()));
    }
    Ok(loads)
}

/// The module whosent-deploy built into a (scratch) cache.
pub fn cached_module(cache: &Path) -> Option<PathBuf> {
    let root = cache.join("stap/modules");
    for rel in fs::read_dir(&root).ok()?.flatten() {
        for key in fs::read_dir(rel.path()).ok()?.flatten() {
            let ko = key.path().join("whosent_session.ko");
            if ko.is_file() {
                return Some(ko);
            }
        }
    }
    None
}

/// The staprun bundle for arm64 boards, built from cached .debs if missing.
pub fn bundle(repo: &Path) -> Result<PathBuf, String> {
    let o = Command::new(repo.join("scripts/staprun-bundle.sh"))
        .arg("arm64")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run staprun-bundle.sh: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "staprun-bundle.sh failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}
