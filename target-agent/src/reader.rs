//! Reading the instance's per-CPU `trace_pipe_raw` files.
//!
//! Raw pages are exact (no text formatting in the kernel, no saved
//! comm lookups) and carry the kernel's lost-event markers. All CPUs
//! are read non-blocking from one thread; `poll` wakes it when any CPU
//! has data (the instance's `buffer_percent` is set to 0 for that).

use crate::error::{AgentError, Result};
use crate::procfs::read_text;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub struct CpuReader {
    pub cpu: u32,
    file: File,
}

pub struct Readers {
    pub cpus: Vec<CpuReader>,
    /// One ring-buffer sub-buffer; reads smaller than it fail.
    pub page_size: usize,
}

impl Readers {
    pub fn open(instance: &Path) -> Result<Self> {
        let per_cpu = instance.join("per_cpu");
        let dir = fs::read_dir(&per_cpu)
            .map_err(|e| AgentError::io("cannot list", &per_cpu.display().to_string(), e))?;
        let mut cpus = Vec::new();
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(cpu) = name
                .to_str()
                .and_then(|n| n.strip_prefix("cpu"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let p = e.path().join("trace_pipe_raw");
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&p)
                .map_err(|e| AgentError::io("cannot open", &p.display().to_string(), e))?;
            // Kept in CPU order by inserting in place: a few lines instead
            // of a std sort, whose code is ~2.7 KB of the agent
            // (docs/agent-size.md). CPU numbers are unique.
            let at = cpus.partition_point(|c: &CpuReader| c.cpu < cpu);
            cpus.insert(at, CpuReader { cpu, file });
        }
        // Linux 6.8+ lets the sub-buffer be larger than a page.
        let page_size = read_text(&instance.join("buffer_subbuf_size_kb"))
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map(|kb| kb * 1024)
            // SAFETY: sysconf has no preconditions.
            .unwrap_or_else(|| unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize);
        Ok(Readers { cpus, page_size })
    }

    pub fn fds(&self) -> Vec<i32> {
        self.cpus.iter().map(|c| c.file.as_raw_fd()).collect()
    }
}

impl CpuReader {
    /// Reads one page into `buf`; `Ok(0)` when the CPU has nothing now.
    pub fn read_page(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.file.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Per-CPU `stats`: what the kernel itself counted as lost.
pub fn lost_by_stats(instance: &Path, cpu: u32) -> u64 {
    let Some(s) = read_text(&instance.join(format!("per_cpu/cpu{cpu}/stats"))) else {
        return 0;
    };
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "overrun" | "dropped events")
                .then(|| v.trim().parse::<u64>().ok())?
        })
        .sum()
}
