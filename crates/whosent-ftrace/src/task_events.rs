//! Decoding the task lifecycle events that let the agent name a sender
//! after it has exited: `task:task_newtask` (fork/clone, with the clone
//! flags that say thread or process), `task:task_rename` (comm changes,
//! including the one exec makes), `sched:sched_process_exec` and
//! `sched:sched_process_exit`; and the command line a new program
//! starts with, from whosent's own uprobe (see [`ARGV_PROBE_ARGS`]).

use crate::format::{EventFormat, Field, FormatError, Slot};

/// `CLONE_THREAD` (`include/uapi/linux/sched.h`): the new task joins
/// its parent's thread group instead of starting a process.
const CLONE_THREAD: i64 = 0x0001_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEvent {
    /// `parent_tid` (the running task) created `tid`.
    NewTask {
        parent_tid: i32,
        tid: i32,
        comm: String,
        thread: bool,
    },
    Rename {
        tid: i32,
        comm: String,
    },
    /// `tid` ran `filename`; `old_tid` differs when a non-leader thread
    /// exec'd and took over the group leader's pid.
    Exec {
        tid: i32,
        old_tid: i32,
        filename: String,
    },
    Exit {
        tid: i32,
        comm: String,
        /// The last thread of its process (`group_dead`, 6.x); `None`
        /// when the kernel's event does not say.
        group_dead: Option<bool>,
    },
    /// `tid` started a program with this command line (NULs as spaces).
    Argv {
        tid: i32,
        cmdline: String,
    },
}

/// The fetch arguments of the argv uprobe, placed on the ELF
/// interpreter's entry point: there the stack holds `argc`, then the
/// `argv` pointers, and the argument strings lie back to back from
/// `argv[0]` (the ELF ABI's process stack), so one array reads the first
/// 512 bytes of them (64 words, the most a probe array may have). A
/// fixed-size array, not `:string`s: an event
/// larger than a page makes the kernel warn (`trace_uprobe.c`), and the
/// strings past `argc` are the environment, which whosent does not want.
/// `$stackN` is the N-th word on the user stack (`trace_probe.c`).
pub const ARGV_PROBE_ARGS: &str = "argc=$stack0:u32 args=+0($stack1):x64[64]";

#[derive(Debug, Clone)]
struct Argv {
    id: u16,
    common_pid: Slot,
    argc: Slot,
    args: Slot,
}

#[derive(Debug, Clone)]
struct NewTask {
    id: u16,
    common_pid: Slot,
    pid: Slot,
    comm: Slot,
    clone_flags: Slot,
}

#[derive(Debug, Clone)]
struct Rename {
    id: u16,
    pid: Option<Slot>,
    common_pid: Slot,
    newcomm: Slot,
}

#[derive(Debug, Clone)]
struct Exec {
    id: u16,
    pid: Slot,
    old_pid: Slot,
    filename: Slot,
}

#[derive(Debug, Clone)]
struct Exit {
    id: u16,
    pid: Slot,
    comm: Slot,
    group_dead: Option<Slot>,
}

/// The layouts of whichever of the four events this kernel has.
#[derive(Debug, Clone, Default)]
pub struct TaskLayouts {
    newtask: Option<NewTask>,
    rename: Option<Rename>,
    exec: Option<Exec>,
    exit: Option<Exit>,
    argv: Option<Argv>,
}

impl TaskLayouts {
    pub fn add(&mut self, f: &EventFormat) -> Result<(), FormatError> {
        let r = |n: &str| f.require(n).map(Field::slot);
        match f.name.as_str() {
            "task_newtask" => {
                self.newtask = Some(NewTask {
                    id: f.id,
                    common_pid: r("common_pid")?,
                    pid: r("pid")?,
                    comm: r("comm")?,
                    clone_flags: r("clone_flags")?,
                })
            }
            "task_rename" => {
                self.rename = Some(Rename {
                    id: f.id,
                    // Newer kernels dropped `pid`: the renamed task is
                    // then always the running one.
                    pid: f.field("pid").map(Field::slot),
                    common_pid: r("common_pid")?,
                    newcomm: r("newcomm")?,
                })
            }
            "sched_process_exec" => {
                self.exec = Some(Exec {
                    id: f.id,
                    pid: r("pid")?,
                    old_pid: r("old_pid")?,
                    filename: r("filename")?,
                })
            }
            "sched_process_exit" => {
                self.exit = Some(Exit {
                    id: f.id,
                    pid: r("pid")?,
                    comm: r("comm")?,
                    group_dead: f.field("group_dead").map(Field::slot),
                })
            }
            other => return Err(FormatError(format!("not a task event: {other}"))),
        }
        Ok(())
    }

    /// The layout of the argv uprobe (fields of [`ARGV_PROBE_ARGS`]).
    pub fn add_argv(&mut self, f: &EventFormat) -> Result<(), FormatError> {
        let r = |n: &str| f.require(n).map(Field::slot);
        self.argv = Some(Argv {
            id: f.id,
            common_pid: r("common_pid")?,
            argc: r("argc")?,
            args: r("args")?,
        });
        Ok(())
    }

    /// Decodes a record if its id is one of the task events.
    pub fn decode(&self, id: u16, rec: &[u8]) -> Option<TaskEvent> {
        let int = |f: &Slot| f.int(rec).map(|v| v as i32);
        if let Some(l) = self.newtask.as_ref().filter(|l| l.id == id) {
            return Some(TaskEvent::NewTask {
                parent_tid: int(&l.common_pid)?,
                tid: int(&l.pid)?,
                comm: l.comm.string(rec)?,
                thread: l.clone_flags.int(rec)? & CLONE_THREAD != 0,
            });
        }
        if let Some(l) = self.rename.as_ref().filter(|l| l.id == id) {
            let tid = int(l.pid.as_ref().unwrap_or(&l.common_pid))?;
            return Some(TaskEvent::Rename {
                tid,
                comm: l.newcomm.string(rec)?,
            });
        }
        if let Some(l) = self.exec.as_ref().filter(|l| l.id == id) {
            return Some(TaskEvent::Exec {
                tid: int(&l.pid)?,
                old_tid: int(&l.old_pid)?,
                filename: l.filename.string(rec)?,
            });
        }
        if let Some(l) = self.exit.as_ref().filter(|l| l.id == id) {
            return Some(TaskEvent::Exit {
                tid: int(&l.pid)?,
                comm: l.comm.string(rec)?,
                group_dead: l
                    .group_dead
                    .as_ref()
                    .and_then(|s| s.int(rec))
                    .map(|v| v != 0),
            });
        }
        if let Some(l) = self.argv.as_ref().filter(|l| l.id == id) {
            let args = rec.get(l.args.offset..l.args.offset + l.args.size)?;
            return Some(TaskEvent::Argv {
                tid: int(&l.common_pid)?,
                cmdline: cmdline(args, l.argc.int(rec)? as usize),
            });
        }
        None
    }
}

/// The first `argc` NUL-terminated strings of `args`, joined by spaces;
/// one cut short by the end of `args` ends in `…`. What lies past the
/// last argument (the environment, or stale bytes after a read that
/// faulted at the top of the stack) is never looked at.
fn cmdline(args: &[u8], argc: usize) -> String {
    let mut out = Vec::new();
    let mut rest = args;
    for i in 0..argc {
        if i > 0 {
            out.push(b' ');
        }
        match rest.iter().position(|&b| b == 0) {
            Some(n) => {
                out.extend_from_slice(&rest[..n]);
                rest = &rest[n + 1..];
            }
            None => {
                out.extend_from_slice(rest);
                out.extend_from_slice("…".as_bytes());
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::host_format as fmt;

    fn put(rec: &mut Vec<u8>, f: &Field, bytes: &[u8]) {
        if rec.len() < f.offset + f.size {
            rec.resize(f.offset + f.size, 0);
        }
        rec[f.offset..f.offset + bytes.len()].copy_from_slice(bytes);
    }

    #[test]
    fn decodes_recorded_layouts() {
        let mut l = TaskLayouts::default();
        for n in [
            "task_newtask",
            "task_rename",
            "sched_process_exec",
            "sched_process_exit",
        ] {
            l.add(&fmt(n)).unwrap();
        }
        let nt = fmt("task_newtask");
        let mut rec = Vec::new();
        put(
            &mut rec,
            nt.field("common_pid").unwrap(),
            &100i32.to_ne_bytes(),
        );
        put(&mut rec, nt.field("pid").unwrap(), &101i32.to_ne_bytes());
        put(&mut rec, nt.field("comm").unwrap(), b"sh");
        put(
            &mut rec,
            nt.field("clone_flags").unwrap(),
            &(CLONE_THREAD as u64 | 0x100).to_ne_bytes(),
        );
        assert_eq!(
            l.decode(nt.id, &rec),
            Some(TaskEvent::NewTask {
                parent_tid: 100,
                tid: 101,
                comm: "sh".into(),
                thread: true
            })
        );
        let ex = fmt("sched_process_exec");
        let mut rec = Vec::new();
        put(&mut rec, ex.field("pid").unwrap(), &7i32.to_ne_bytes());
        put(&mut rec, ex.field("old_pid").unwrap(), &7i32.to_ne_bytes());
        let loc_at = rec.len().max(20) as u32;
        rec.resize(loc_at as usize, 0);
        rec.extend_from_slice(b"/bin/kill\0");
        put(
            &mut rec,
            ex.field("filename").unwrap(),
            &((10u32 << 16) | loc_at).to_ne_bytes(),
        );
        assert_eq!(
            l.decode(ex.id, &rec),
            Some(TaskEvent::Exec {
                tid: 7,
                old_tid: 7,
                filename: "/bin/kill".into()
            })
        );
        assert_eq!(l.decode(9999, &rec), None);
    }

    #[test]
    fn argv_from_the_probe_arrays() {
        // The layout the kernel gives ARGV_PROBE_ARGS (x86_64, 6.18).
        let txt = "name: argv\nID: 2326\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:u32 argc;\toffset:16;\tsize:4;\tsigned:0;\n\tfield:u64 args[];\toffset:20;\tsize:512;\tsigned:0;\n";
        let f = EventFormat::parse(txt.as_bytes()).unwrap();
        let mut l = TaskLayouts::default();
        l.add_argv(&f).unwrap();
        let mut rec = vec![0xeeu8; 532];
        rec[4..8].copy_from_slice(&77i32.to_ne_bytes());
        rec[16..20].copy_from_slice(&3u32.to_ne_bytes());
        let strings = b"/bin/kill\0-USR1\x00123\0HOME=/root\0";
        rec[20..20 + strings.len()].copy_from_slice(strings);
        assert_eq!(
            l.decode(2326, &rec),
            Some(TaskEvent::Argv {
                tid: 77,
                cmdline: "/bin/kill -USR1 123".into()
            })
        );
        // Arguments longer than the array are cut, and say so.
        let mut long = vec![b'x'; 512];
        long[1] = 0;
        assert_eq!(cmdline(&long, 3), format!("x {}…", "x".repeat(510)));
        assert_eq!(cmdline(b"sh\0", 0), "");
    }
}
