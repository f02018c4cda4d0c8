//! Figures on the emulated aarch64 board over SSH: a bare `ssh board
//! true` round trip, then `whosent-deploy` from command to the first
//! probe signal caught, with the agent uploaded each time and with it
//! kept on the board (`--keep`, after one run that uploads it); then
//! the SystemTap backend: `whosent-deploy --backend stap` with stap's
//! caches empty (cold build), with only its module cache emptied (warm
//! build) and with the module cached, plus `staprun` timed on the board.
//! A whosent-deploy without `--backend` gets the module built with
//! scripts/stap/build-module.sh instead.
//!
//! The probe is a `sleep` on the board, sent SIGWINCH every 2 ms by a
//! board-side loop, so that catching it measures only whosent.

use crate::board::Board;
use crate::child::Proc;
use crate::lines::Feed;
use crate::stap;
use crate::tools::whosent::classify;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct DeployRun {
    pub ready: Option<Duration>,
    pub caught: Option<Duration>,
    pub exit: Duration,
    pub error: Option<String>,
    /// `--backend stap`: "built the module in X s".
    pub build_secs: Option<f64>,
    pub cached_module: bool,
}

#[derive(Default)]
pub struct StapFigures {
    /// whosent-deploy has `--backend stap`.
    pub backend: bool,
    pub cold: Option<DeployRun>,
    pub warm: Option<DeployRun>,
    pub cached: Vec<DeployRun>,
    /// Without the backend: scripts/stap/build-module.sh.
    pub script_build: Option<stap::Build>,
    pub ko_size: Option<u64>,
    pub load: Option<Result<Vec<stap::Load>, String>>,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct Figures {
    pub boot: Option<Duration>,
    pub ssh_true: Vec<Duration>,
    pub uncached: Vec<DeployRun>,
    pub first_keep: Option<DeployRun>,
    pub cached: Vec<DeployRun>,
    pub stap: Option<StapFigures>,
    pub error: Option<String>,
}

pub struct Inputs<'a> {
    pub repo: &'a Path,
    pub deploy: &'a Path,
    pub agent: &'a Path,
    pub stap: bool,
    pub work: &'a Path,
    pub reps: usize,
}

pub fn measure(inp: &Inputs) -> Figures {
    let mut f = Figures::default();
    let name = format!("{}-board", crate::cleanup::tag());
    let mut board = match Board::up(inp.repo, &name) {
        Ok((b, t)) => {
            f.boot = Some(t);
            b
        }
        Err(e) => {
            f.error = Some(e.to_string());
            return f;
        }
    };
    if let Err(e) = on_board(&board, inp, &mut f) {
        f.error = Some(e);
    }
    board.down();
    f
}

fn on_board(board: &Board, inp: &Inputs, f: &mut Figures) -> Result<(), String> {
    // One untimed connection first: the first login after boot is slower.
    board.ssh("true", None).map_err(|e| e.to_string())?;
    for _ in 0..inp.reps {
        let (_, t) = board.ssh("true", None).map_err(|e| e.to_string())?;
        f.ssh_true.push(t);
    }
    let (out, _) = board
        .ssh("sleep 100000 </dev/null >/dev/null 2>&1 & echo $!", None)
        .map_err(|e| e.to_string())?;
    let probe: i32 = out
        .trim()
        .parse()
        .map_err(|_| format!("bad probe pid {out:?}"))?;
    let (out, _) = board
        .ssh(
            &format!(
                "(while kill -WINCH {probe} 2>/dev/null; do usleep 2000; done) </dev/null >/dev/null 2>&1 & echo $!"
            ),
            None,
        )
        .map_err(|e| e.to_string())?;
    let looper: i32 = out
        .trim()
        .parse()
        .map_err(|_| format!("bad loop pid {out:?}"))?;
    let base: Vec<String> = vec![
        "--host".into(),
        "root@127.0.0.1".into(),
        "-p".into(),
        board.port.to_string(),
        "-i".into(),
        board.key.display().to_string(),
        "--known-hosts".into(),
        board.known_hosts.display().to_string(),
    ];
    let query: Vec<String> = vec![
        "--pid".into(),
        probe.to_string(),
        "--sig".into(),
        "WINCH".into(),
        "--count".into(),
        "1".into(),
        "--json".into(),
    ];
    let ftrace = |keep: bool| {
        let mut a = base.clone();
        a.extend(["--agent".into(), inp.agent.display().to_string()]);
        if keep {
            a.push("--keep".into());
        }
        a.extend(query.clone());
        a
    };
    for _ in 0..inp.reps {
        f.uncached
            .push(deploy(inp.deploy, &ftrace(false), probe, None));
    }
    f.first_keep = Some(deploy(inp.deploy, &ftrace(true), probe, None));
    for _ in 0..inp.reps {
        f.cached
            .push(deploy(inp.deploy, &ftrace(true), probe, None));
    }
    if inp.stap {
        let mut a = base.clone();
        a.extend(query.clone());
        f.stap = Some(stap_figures(board, inp, a, probe));
    }
    let _ = board.ssh(&format!("kill {looper} {probe}"), None);
    Ok(())
}

fn stap_figures(board: &Board, inp: &Inputs, args: Vec<String>, probe: i32) -> StapFigures {
    let mut s = StapFigures {
        backend: has_stap_backend(inp.deploy),
        ..StapFigures::default()
    };
    let bundle = match stap::bundle(inp.repo) {
        Ok(b) => b,
        Err(e) => {
            s.error = Some(e);
            return s;
        }
    };
    let ko = if s.backend {
        let scratch = match stap::scratch_cache(inp.work) {
            Ok(c) => c,
            Err(e) => {
                s.error = Some(format!("cannot make a scratch cache: {e}"));
                return s;
            }
        };
        let release = board
            .ssh("uname -r", None)
            .map(|(o, _)| o.trim().to_string())
            .unwrap_or_default();
        let mut a = args;
        a.extend([
            "--backend".into(),
            "stap".into(),
            "--sysroot".into(),
            stap::real_cache()
                .join(format!("stap/sysroot-{release}"))
                .display()
                .to_string(),
            "--staprun-bundle".into(),
            bundle.display().to_string(),
        ]);
        let env = Some(scratch.as_path());
        s.cold = Some(deploy(inp.deploy, &a, probe, env));
        let _ = std::fs::remove_dir_all(scratch.join("stap/modules"));
        s.warm = Some(deploy(inp.deploy, &a, probe, env));
        for _ in 0..inp.reps {
            s.cached.push(deploy(inp.deploy, &a, probe, env));
        }
        // Kept out of the scratch cache, which is removed now (20 MB).
        let ko = stap::cached_module(&scratch).and_then(|k| {
            let dest = inp.work.join("whosent_session.ko");
            std::fs::copy(&k, &dest).ok().map(|_| dest)
        });
        let _ = std::fs::remove_dir_all(&scratch);
        ko
    } else {
        let b = stap::build(inp.repo, inp.work, 2);
        let ko = b.ko.as_ref().map(|(p, _)| p.clone());
        s.script_build = Some(b);
        ko
    };
    s.ko_size = ko
        .as_ref()
        .and_then(|k| std::fs::metadata(k).ok())
        .map(|m| m.len());
    s.load = ko.map(|k| stap::load(board, &k, &bundle, probe, inp.reps));
    s
}

fn has_stap_backend(deploy: &Path) -> bool {
    Command::new(deploy)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--backend"))
        .unwrap_or(false)
}

/// Runs whosent-deploy once (with WHOSENT_CACHE=`cache` if given) and
/// times its records as they stream.
fn deploy(bin: &Path, args: &[String], probe: i32, cache: Option<&Path>) -> DeployRun {
    let mut r = DeployRun::default();
    let err = crate::tools::workdir().join("deploy.err");
    let stderr = match std::fs::File::create(&err) {
        Ok(f) => f,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    let mut cmd = Command::new(bin);
    if let Some(c) = cache {
        cmd.env("WHOSENT_CACHE", c);
    }
    let t0 = Instant::now();
    let spawned = Proc::spawn(
        "whosent-deploy",
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr),
    );
    let (mut p, mut pipes) = match spawned {
        Ok(x) => x,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    let mut feed = Feed::start(pipes.stdout.take().expect("piped"), classify, probe, t0);
    let exit = match p.wait_timeout(Duration::from_secs(300)) {
        Some(e) => e,
        None => p.stop(libc::SIGKILL, Duration::from_secs(5)).0,
    };
    feed.join();
    r.exit = t0.elapsed();
    r.ready = feed.counts.ready_at();
    r.caught = feed.counts.first_match_at();
    let log = std::fs::read_to_string(&err).unwrap_or_default();
    r.cached_module = log.contains("using the cached module");
    r.build_secs = log.lines().find_map(|l| {
        l.strip_prefix("whosent: built the module in ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    });
    if r.caught.is_none() {
        r.error = Some(format!(
            "no probe signal caught ({}): {}",
            exit.describe(),
            crate::tools::stderr_tail(&PathBuf::from(&err))
        ));
    }
    r
}
