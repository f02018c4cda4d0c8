//! The argv uprobe: the command line of every dynamically linked program
//! as it starts, recorded by the kernel into the private instance.
//!
//! No tracepoint carries argv, and /proc/PID/cmdline is gone once a
//! short-lived `kill` has exited, which is often before the agent reads
//! its events. So the agent puts a uprobe on the entry point of the
//! dynamic loader (`PT_INTERP` of /bin/sh), where the kernel has just
//! laid out argc and the argument strings on the new stack, and lets the
//! probe copy them (`whosent_ftrace::task_events::ARGV_PROBE_ARGS`).
//! Static programs never run the loader; for them the agent falls back
//! to /proc.
//!
//! A uprobe definition is global (`uprobe_events`), unlike the instance:
//! it is named after the instance (`whosent_<pid>_<start>/argv`), only
//! ever appended to (opening the file with O_TRUNC would delete every
//! uprobe on the system), enabled in the private instance only, and
//! removed on the way out. One left by a killed agent is removed by the
//! next run, as stale instances are.

use crate::elf::Elf;
use crate::instance::{self, Instance};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use whosent_ftrace::task_events::ARGV_PROBE_ARGS;

const GROUP_PREFIX: &str = "whosent_";

pub struct ArgvProbe {
    /// `group/event`, as `events/` names it.
    pub event: String,
    control: PathBuf,
    enable: Option<PathBuf>,
}

fn append(control: &Path, line: &str) -> std::io::Result<()> {
    OpenOptions::new()
        .append(true)
        .open(control)?
        .write_all(line.as_bytes())
}

fn head(path: &str) -> Option<Vec<u8>> {
    let mut b = vec![0u8; 4096];
    let n = fs::File::open(path).ok()?.read(&mut b).ok()?;
    b.truncate(n);
    Some(b)
}

/// `interp:0xOFFSET` for the loader of /bin/sh.
fn place() -> Option<String> {
    let sh = head("/bin/sh")?;
    let interp = Elf::parse(&sh)?.interp()?.to_string();
    let off = Elf::parse(&head(&interp)?)?.entry_offset()?;
    Some(format!("{interp}:{off:#x}"))
}

impl ArgvProbe {
    /// Defines the probe for `inst`; `None` when this system cannot
    /// (no `uprobe_events`, a static /bin/sh, a refused definition).
    pub fn create(tracefs: &str, inst: &Instance) -> Option<Self> {
        let group = inst.name.replace('-', "_");
        let control = Path::new(tracefs).join("uprobe_events");
        let line = format!("p:{group}/argv {} {ARGV_PROBE_ARGS}\n", place()?);
        append(&control, &line).ok()?;
        Some(ArgvProbe {
            event: format!("{group}/argv"),
            control,
            enable: None,
        })
    }

    /// Turns the probe on in the instance.
    pub fn enable(&mut self, inst: &Instance) -> crate::error::Result<()> {
        let rel = instance::event_file(&self.event, "enable");
        inst.set(&rel, "1")?;
        self.enable = Some(inst.path(&rel));
        Ok(())
    }
}

impl Drop for ArgvProbe {
    fn drop(&mut self) {
        // The kernel refuses to delete a probe that is still enabled.
        if let Some(e) = &self.enable {
            let _ = fs::write(e, "0");
        }
        let _ = append(&self.control, &format!("-:{}\n", self.event));
    }
}

/// Deletes `whosent_*` probes whose agent is gone; returns their names.
/// Call it after stale instances are removed: that disables the probes.
pub fn remove_stale(tracefs: &str) -> Vec<String> {
    let control = Path::new(tracefs).join("uprobe_events");
    let defs = crate::procfs::read_text(&control).unwrap_or_default();
    let mut removed = Vec::new();
    for def in defs.lines() {
        // `p:whosent_812_5521/argv /lib/ld-linux-aarch64.so.1:0x... args`
        let Some(event) = def.split(' ').next().and_then(|d| d.get(2..)) else {
            continue;
        };
        let Some(group) = event.split('/').next() else {
            continue;
        };
        if !group.starts_with(GROUP_PREFIX) || instance::owner_alive(&group.replace('_', "-")) {
            continue;
        }
        if append(&control, &format!("-:{event}\n")).is_ok() {
            removed.push(event.to_string());
        }
    }
    removed
}
