//! The shipped agent per target, from `whosent-deploy build --target T`
//! (size-optimized, static, cached by source hash).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct AgentBuild {
    pub target: String,
    pub path: Option<PathBuf>,
    pub size: u64,
    /// The Rust target triple whosent-deploy chose.
    pub triple: String,
    pub cached: bool,
    pub took: Duration,
    pub error: Option<String>,
}

pub fn build(deploy: &Path, target: &str) -> AgentBuild {
    let mut b = AgentBuild {
        target: target.into(),
        path: None,
        size: 0,
        triple: String::new(),
        cached: false,
        took: Duration::ZERO,
        error: None,
    };
    let t0 = Instant::now();
    let out = Command::new(deploy)
        .args(["build", "--target", target])
        .stdin(Stdio::null())
        .output();
    b.took = t0.elapsed();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            b.error = Some(format!("cannot run whosent-deploy: {e}"));
            return b;
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        b.error = Some(err.lines().last().unwrap_or("build failed").to_string());
        return b;
    }
    b.cached = err.contains("using cached agent");
    // "... for aarch64 (aarch64-unknown-linux-musl): /path"
    if let Some(l) = err
        .lines()
        .rev()
        .find(|l| l.contains(" for ") && l.contains('('))
    {
        if let Some(t) = l.split('(').nth(1).and_then(|r| r.split([',', ')']).next()) {
            b.triple = t.trim().to_string();
        }
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    match std::fs::metadata(&path) {
        Ok(m) => {
            b.size = m.len();
            b.path = Some(path);
        }
        Err(e) => b.error = Some(format!("{}: {e}", path.display())),
    }
    b
}
