//! The harness's command line. scripts/bench.sh passes everything;
//! `--only` and `--feed-throughput` are for work on the harness itself.

use std::path::PathBuf;
use std::time::Instant;

const USAGE: &str = "usage: whosent-bench [--smoke] [--out FILE] [--repo DIR] [--bin-dir DIR] [--no-board] [--no-stap] [--notes FILE] [--board-storm AARCH64_SIGNAL_STORM] [--only runs|ready|board|stap]...";

pub struct Opts {
    pub smoke: bool,
    pub out: Option<PathBuf>,
    pub repo: PathBuf,
    pub bin_dir: PathBuf,
    pub board: bool,
    pub stap: bool,
    /// Sections to run (all when empty); for working on the harness.
    pub only: Vec<String>,
    /// Hand-written analysis appended to the report.
    pub notes: Option<PathBuf>,
    /// signal_storm built for aarch64, for the board storm.
    pub board_storm: Option<PathBuf>,
}

impl Opts {
    pub fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

pub fn parse() -> Opts {
    let mut o = Opts {
        smoke: false,
        out: None,
        repo: PathBuf::from("."),
        bin_dir: PathBuf::from("target/release"),
        board: true,
        stap: true,
        only: Vec::new(),
        notes: None,
        board_storm: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |what: &str| {
            args.next().map(PathBuf::from).unwrap_or_else(|| {
                eprintln!("whosent-bench: {what} needs a value\n{USAGE}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--smoke" => o.smoke = true,
            "--out" => o.out = Some(val("--out")),
            "--repo" => o.repo = val("--repo"),
            "--bin-dir" => o.bin_dir = val("--bin-dir"),
            "--no-board" => o.board = false,
            "--no-stap" => o.stap = false,
            "--feed-throughput" => feed_throughput(),
            "--notes" => o.notes = Some(val("--notes")),
            "--board-storm" => o.board_storm = Some(val("--board-storm")),
            "--only" => {
                let v = val("--only");
                o.only.push(v.to_string_lossy().into_owned())
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            _ => {
                eprintln!("whosent-bench: unexpected argument {a:?}\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    o
}

/// Reads whosent JSON Lines on stdin as a run does and prints the rate:
/// the harness's reader must be much faster than any tool it measures.
fn feed_throughput() -> ! {
    let t0 = Instant::now();
    let mut feed =
        crate::lines::Feed::start(std::io::stdin(), crate::tools::whosent::classify, -1, t0);
    feed.join();
    let c = &feed.counts;
    let n = c.matched() + c.other.load(std::sync::atomic::Ordering::SeqCst);
    let s = t0.elapsed().as_secs_f64();
    println!("{n} signal lines in {s:.2} s: {:.0} lines/s", n as f64 / s);
    std::process::exit(0)
}

pub fn say(msg: &str) {
    eprintln!("bench: {msg}");
}
