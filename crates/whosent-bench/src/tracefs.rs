//! Private ftrace instances for the peers, and the kernel's own per-CPU
//! accounting (`per_cpu/cpuN/stats`) of any instance.
//!
//! Nothing outside `instances/<tag>-*` is ever written. An `Instance`
//! removes its directory when dropped, also on the harness's error
//! paths; `rmdir` fails with EBUSY while a reader still holds a pipe
//! open, so removal retries for a moment.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn root() -> PathBuf {
    for r in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        if Path::new(r).join("instances").is_dir() {
            return PathBuf::from(r);
        }
    }
    PathBuf::from("/sys/kernel/tracing")
}

pub fn instances() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root().join("instances"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The sums of an instance's per-CPU `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events in the buffer, not yet read.
    pub entries: u64,
    /// Events overwritten before they were read (lost).
    pub overrun: u64,
    pub commit_overrun: u64,
    /// Events discarded because the buffer was full (lost).
    pub dropped: u64,
    /// Events consumed by readers (Linux 4.x+).
    pub read: u64,
}

impl Stats {
    pub fn lost(&self) -> u64 {
        self.overrun + self.dropped + self.commit_overrun
    }
}

pub fn parse_stats(text: &str, into: &mut Stats) {
    for l in text.lines() {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let Ok(v) = v.trim().parse::<u64>() else {
            continue;
        };
        match k.trim() {
            "entries" => into.entries += v,
            "overrun" => into.overrun += v,
            "commit overrun" => into.commit_overrun += v,
            "dropped events" => into.dropped += v,
            "read events" => into.read += v,
            _ => {}
        }
    }
}

/// Stats of the instance at `dir`, summed over CPUs; None if it is gone.
pub fn stats(dir: &Path) -> Option<Stats> {
    let mut s = Stats::default();
    let mut any = false;
    for e in fs::read_dir(dir.join("per_cpu")).ok()?.flatten() {
        if let Ok(t) = fs::read_to_string(e.path().join("stats")) {
            parse_stats(&t, &mut s);
            any = true;
        }
    }
    any.then_some(s)
}

pub struct Instance {
    pub name: String,
    pub dir: PathBuf,
    /// The harness made it (else a tool did, and we only remove it).
    removed: bool,
}

impl Instance {
    pub fn create(name: &str) -> io::Result<Instance> {
        let dir = root().join("instances").join(name);
        fs::create_dir(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("mkdir {}: {e}", dir.display())))?;
        Ok(Instance {
            name: name.to_string(),
            dir,
            removed: false,
        })
    }

    /// Takes charge of an instance a tool creates (trace-cmd -B), so
    /// that it is removed even when the tool leaves it behind.
    pub fn adopt(name: &str) -> Instance {
        Instance {
            name: name.to_string(),
            dir: root().join("instances").join(name),
            removed: false,
        }
    }

    pub fn set(&self, rel: &str, value: &str) -> io::Result<()> {
        let p = self.dir.join(rel);
        fs::write(&p, value)
            .map_err(|e| io::Error::new(e.kind(), format!("write {}: {e}", p.display())))
    }

    pub fn stats(&self) -> Option<Stats> {
        stats(&self.dir)
    }

    pub fn remove(&mut self) -> io::Result<()> {
        if self.removed || !self.dir.exists() {
            self.removed = true;
            return Ok(());
        }
        let _ = fs::write(self.dir.join("tracing_on"), "0");
        let _ = fs::write(self.dir.join("events/enable"), "0");
        let mut last = None;
        for _ in 0..50 {
            match fs::remove_dir(&self.dir) {
                Ok(()) => {
                    self.removed = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.removed = true;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(last.unwrap_or_else(|| io::Error::other("rmdir failed")))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("bench: cannot remove instance {}: {e}", self.dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_per_cpu_stats() {
        let cpu = "entries: 19528\noverrun: 3\ncommit overrun: 0\nbytes: 1021456\n\
                   oldest event ts:  2415.870364\nnow ts:  2416.405380\n\
                   dropped events: 1\nread events: 602784\n";
        let mut s = Stats::default();
        parse_stats(cpu, &mut s);
        parse_stats(cpu, &mut s);
        assert_eq!(
            s,
            Stats {
                entries: 39056,
                overrun: 6,
                commit_overrun: 0,
                dropped: 2,
                read: 1205568
            }
        );
        assert_eq!(s.lost(), 8);
    }
}
