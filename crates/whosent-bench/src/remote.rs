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
    pub storm: Option<BoardStorm>,
    pub error: Option<String>,
}

/// Issue #11's board storm: signals from a process on the board, traced
/// over SSH with `whosent-deploy --host <board> --json --save FILE`.
#[derive(Default, Debug, Clone)]
pub struct BoardStorm {
    pub count: u64,
    pub sent: u64,
    pub elapsed: Duration,
    /// Signal records for the receiver that whosent-deploy printed.
    pub matched: u64,
    pub other: u64,
    /// The end record's `lost`.
    pub lost: Option<u64>,
    /// The capture stream that came over the link (`--save`'s size).
    pub stream_bytes: Option<u64>,
    /// whosent-deploy's own CPU on the host (decoding included).
    pub host_cpu: Duration,
    /// From the storm's end until the records stopped coming.
    pub drain: Option<Duration>,
    pub error: Option<String>,
}

pub struct Inputs<'a> {
    pub repo: &'a Path,
    pub deploy: &'a Path,
    pub agent: &'a Path,
    pub stap: bool,
    pub work: &'a Path,
    pub reps: usize,
    /// signal_storm for aarch64, and the board storm's size.
    pub storm: Option<(&'a Path, u64)>,
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
    // The probe and its loop go before the storm, which should have the
    // board to itself.
    let _ = board.ssh(&format!("kill {looper} {probe}"), None);
    if let Some((bin, n)) = inp.storm {
        crate::cli::say(&format!("board: storm {}", crate::storm::human(n)));
        f.storm = Some(board_storm(board, inp, &base, bin, n));
    }
    Ok(())
}

fn board_storm(board: &Board, inp: &Inputs, base: &[String], bin: &Path, n: u64) -> BoardStorm {
    let mut r = BoardStorm {
        count: n,
        ..BoardStorm::default()
    };
    if let Err(e) = board_storm_run(board, inp, base, bin, &mut r) {
        r.error = Some(e);
    }
    let _ = board.ssh(
        "pkill -f /tmp/wsbench-storm; rm -f /tmp/wsbench-storm",
        None,
    );
    r
}

fn board_storm_run(
    board: &Board,
    inp: &Inputs,
    base: &[String],
    bin: &Path,
    r: &mut BoardStorm,
) -> Result<(), String> {
    let data = std::fs::read(bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    board
        .ssh(
            "cat >/tmp/wsbench-storm && chmod +x /tmp/wsbench-storm",
            Some(&data),
        )
        .map_err(|e| format!("upload of signal_storm: {e}"))?;
    let w = crate::storm::Workload::storm(r.count, false);
    let remote = format!("exec /tmp/wsbench-storm {}", w.args().join(" "));
    let storm =
        crate::storm::Storm::start_cmd(Command::new("ssh").args(board.ssh_opts()).arg(remote))
            .map_err(|e| format!("signal_storm on the board: {e}"))?;
    let save = inp.work.join("board-storm.stream");
    let mut a = base.to_vec();
    a.extend([
        "--agent".into(),
        inp.agent.display().to_string(),
        "--keep".into(),
        "--pid".into(),
        storm.receiver.to_string(),
        "--json".into(),
        "--save".into(),
        save.display().to_string(),
    ]);
    let err = inp.work.join("board-storm.err");
    let stderr = std::fs::File::create(&err).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let (mut p, mut pipes) = Proc::spawn(
        "whosent-deploy (board storm)",
        Command::new(inp.deploy)
            .args(&a)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr),
    )
    .map_err(|e| e.to_string())?;
    let mut feed = Feed::start(
        pipes.stdout.take().expect("piped"),
        classify,
        storm.receiver,
        t0,
    );
    let tail = || crate::tools::stderr_tail(&err);
    while feed.counts.ready_at().is_none() {
        if !p.running() || t0.elapsed() > Duration::from_secs(120) {
            let _ = p.stop(libc::SIGINT, Duration::from_secs(10));
            feed.join();
            return Err(format!("whosent-deploy was not ready: {}", tail()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (res, _) = storm.go().map_err(|e| format!("the storm: {e}"))?;
    r.sent = res.sent;
    r.elapsed = res.elapsed;
    // Over an emulated board's SSH link the records lag: wait until
    // they stop coming (2 s without one), at most 5 minutes.
    let end = Instant::now();
    let mut last = feed.counts.matched();
    let mut changed = end;
    while changed.elapsed() < Duration::from_secs(2)
        && end.elapsed() < Duration::from_secs(300)
        && p.running()
    {
        std::thread::sleep(Duration::from_millis(50));
        let m = feed.counts.matched();
        if m != last {
            last = m;
            changed = Instant::now();
        }
    }
    r.drain = Some(changed.duration_since(end));
    let (exit, killed) = p.stop(libc::SIGINT, Duration::from_secs(60));
    feed.join();
    r.host_cpu = exit.cpu();
    r.matched = feed.counts.matched();
    r.other = feed.counts.other.load(std::sync::atomic::Ordering::SeqCst);
    let kept = feed.counts.kept();
    let endrec = kept.iter().find(|l| l.contains(r#""type":"end""#));
    r.lost =
        endrec.and_then(|l| crate::lines::int_after(l.as_bytes(), br#""lost":"#).map(|n| n as u64));
    r.stream_bytes = std::fs::metadata(&save).ok().map(|m| m.len());
    let _ = std::fs::remove_file(&save);
    if killed {
        return Err(format!("whosent-deploy did not stop on SIGINT: {}", tail()));
    }
    if endrec.is_none() {
        return Err(format!("no end record ({}): {}", exit.describe(), tail()));
    }
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
