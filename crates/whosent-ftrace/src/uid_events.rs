//! Decoding the `syscalls:sys_enter_set*uid` / `sys_exit_set*uid`
//! events (CONFIG_FTRACE_SYSCALLS), so that a process table can follow
//! a task's real uid after it changes it: `si_uid` is the sender's real
//! uid (`kernel/signal.c`, `prepare_kill_siginfo`: `current_uid()`),
//! and a forked child that drops privileges (`setpriv --reuid`, an SSH
//! server's session child, a daemon) no longer has its parent's.
//!
//! The enter event carries the arguments, the exit event whether the
//! call succeeded; the table pairs them by thread (credentials are per
//! thread; glibc makes every thread of a process call it).

use crate::format::{EventFormat, FormatError, Slot};

/// Which call, with the real-uid argument where the call sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidCall {
    /// `setuid(uid)`: sets the real uid only when the caller has
    /// CAP_SETUID (`kernel/sys.c`, `__sys_setuid`), which the trace
    /// does not show.
    SetUid(u32),
    /// `setreuid(ruid, euid)` / `setresuid(ruid, euid, suid)`: the real
    /// uid becomes `ruid` unless it is -1 (`__sys_setreuid`,
    /// `__sys_setresuid`).
    SetRealUid(Option<u32>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidEvent {
    Enter { tid: i32, call: UidCall },
    Exit { tid: i32, ret: i64 },
}

#[derive(Debug, Clone)]
struct Layout {
    id: u16,
    enter: bool,
    /// `setuid`'s `uid`, or `ruid` of the other two.
    arg: Option<Slot>,
    setuid: bool,
    common_pid: Slot,
    ret: Option<Slot>,
}

/// The layouts of whichever of the six events this kernel has.
#[derive(Debug, Clone, Default)]
pub struct UidLayouts {
    events: Vec<Layout>,
}

/// The event names, as `events/syscalls/` has them.
pub const UID_EVENTS: [&str; 6] = [
    "syscalls/sys_enter_setuid",
    "syscalls/sys_exit_setuid",
    "syscalls/sys_enter_setreuid",
    "syscalls/sys_exit_setreuid",
    "syscalls/sys_enter_setresuid",
    "syscalls/sys_exit_setresuid",
];

impl UidLayouts {
    /// Learns one of [`UID_EVENTS`]; an error for any other event.
    pub fn add(&mut self, f: &EventFormat) -> Result<(), FormatError> {
        let (enter, call) = match (
            f.name.strip_prefix("sys_enter_"),
            f.name.strip_prefix("sys_exit_"),
        ) {
            (Some(c), _) => (true, c),
            (_, Some(c)) => (false, c),
            _ => return Err(FormatError(format!("not a set*uid event: {}", f.name))),
        };
        let arg = match (enter, call) {
            (true, "setuid") => Some(f.require("uid")?.slot()),
            (true, "setreuid" | "setresuid") => Some(f.require("ruid")?.slot()),
            (false, "setuid" | "setreuid" | "setresuid") => None,
            _ => return Err(FormatError(format!("not a set*uid event: {}", f.name))),
        };
        self.events.push(Layout {
            id: f.id,
            enter,
            arg,
            setuid: call == "setuid",
            common_pid: f.require("common_pid")?.slot(),
            ret: if enter {
                None
            } else {
                Some(f.require("ret")?.slot())
            },
        });
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn decode(&self, id: u16, rec: &[u8]) -> Option<UidEvent> {
        let l = self.events.iter().find(|l| l.id == id)?;
        let tid = l.common_pid.int(rec)? as i32;
        if !l.enter {
            return Some(UidEvent::Exit {
                tid,
                ret: l.ret.as_ref()?.int(rec)?,
            });
        }
        // The argument is a register: a 32-bit uid_t, whatever the
        // field's width; (uid_t)-1 means "unchanged".
        let v = l.arg.as_ref()?.int(rec)? as u32;
        Some(UidEvent::Enter {
            tid,
            call: if l.setuid {
                UidCall::SetUid(v)
            } else {
                UidCall::SetRealUid((v != u32::MAX).then_some(v))
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::host_format as fmt;

    fn rec(f: &EventFormat, pid: i32, field: &str, v: i64) -> Vec<u8> {
        let mut r = vec![0u8; 48];
        r[0..2].copy_from_slice(&f.id.to_ne_bytes());
        r[4..8].copy_from_slice(&pid.to_ne_bytes());
        let fl = f.field(field).unwrap();
        r[fl.offset..fl.offset + 8].copy_from_slice(&v.to_ne_bytes());
        r
    }

    #[test]
    fn decodes_the_recorded_6_18_layouts() {
        let mut l = UidLayouts::default();
        for e in UID_EVENTS {
            l.add(&fmt(e.trim_start_matches("syscalls/"))).unwrap();
        }
        let res = fmt("sys_enter_setresuid");
        assert_eq!(
            l.decode(res.id, &rec(&res, 7, "ruid", 65534)),
            Some(UidEvent::Enter {
                tid: 7,
                call: UidCall::SetRealUid(Some(65534))
            })
        );
        // (uid_t)-1, zero- or sign-extended: unchanged.
        for v in [0xffff_ffff, -1] {
            assert_eq!(
                l.decode(res.id, &rec(&res, 7, "ruid", v)),
                Some(UidEvent::Enter {
                    tid: 7,
                    call: UidCall::SetRealUid(None)
                })
            );
        }
        let su = fmt("sys_enter_setuid");
        assert_eq!(
            l.decode(su.id, &rec(&su, 8, "uid", 1000)),
            Some(UidEvent::Enter {
                tid: 8,
                call: UidCall::SetUid(1000)
            })
        );
        let ex = fmt("sys_exit_setreuid");
        assert_eq!(
            l.decode(ex.id, &rec(&ex, 9, "ret", -1)),
            Some(UidEvent::Exit { tid: 9, ret: -1 })
        );
        assert_eq!(l.decode(1, &[0; 48]), None);
        assert!(l.add(&fmt("sched_process_exec")).is_err());
    }
}
