//! The machine the figures come from.

use std::fs;
use std::process::Command;

pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub mem_mib: u64,
    pub date: String,
    pub load_before: String,
    pub git: String,
    pub versions: Vec<(String, String)>,
}

fn cmd(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout).into_owned();
            let s = if s.trim().is_empty() {
                String::from_utf8_lossy(&o.stderr).into_owned()
            } else {
                s
            };
            s.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "not installed".into())
}

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn describe(repo: &std::path::Path) -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mem_kib: u64 = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let repo_s = repo.display().to_string();
    let rev = cmd("git", &["-C", &repo_s, "rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args([
            "-C",
            &repo_s,
            "status",
            "--porcelain",
            "--untracked-files=no",
        ])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        kernel: cmd("uname", &["-r"]),
        mem_mib: mem_kib / 1024,
        date: cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        load_before: loadavg(),
        git: if let Ok(label) = std::env::var("WSBENCH_SOURCE_LABEL") {
            label
        } else if dirty {
            format!("{rev} with uncommitted changes in the working tree")
        } else {
            rev
        },
        versions: vec![
            ("rustc".into(), cmd("rustc", &["--version"])),
            ("trace-cmd".into(), cmd("trace-cmd", &["--version"])),
            ("bpftrace".into(), cmd("bpftrace", &["--version"])),
            ("stap".into(), cmd("stap", &["-V"])),
            ("qemu".into(), cmd("qemu-system-aarch64", &["--version"])),
        ],
    }
}
