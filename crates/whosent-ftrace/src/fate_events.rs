//! Decoding the events that tell what became of a signal's target, and
//! what in the kernel sent it:
//!
//! - `oom:mark_victim` (4.13+): fired by `mark_oom_victim()` right after
//!   the OOM killer's SIGKILL to the same task (`mm/oom_kill.c`,
//!   `__oom_kill_process`). Only `pid` before 6.9; since commit
//!   72ba14deb40a also comm, uid, the memory sizes and oom_score_adj.
//! - `signal:signal_deliver`: fired by `get_signal()` in the target's
//!   own context as it takes a signal; the agent keeps only the default
//!   actions that kill (its filter, [`DELIVER_FATAL_FILTER`]).
//! - `syscalls:sys_enter_exit_group` (CONFIG_FTRACE_SYSCALLS): the exit
//!   status a process asked for.

use crate::format::{EventFormat, FormatError, Slot};

/// The events, as `events/` names them.
pub const FATE_EVENTS: [&str; 3] = [
    "oom/mark_victim",
    "signal/signal_deliver",
    "syscalls/sys_enter_exit_group",
];

/// signal_deliver's filter: the handler is SIG_DFL (0) and the default
/// action terminates (`kernel/signal.c`, `get_signal`: after
/// `trace_signal_deliver` it skips `sig_kernel_ignore` and stops on
/// `sig_kernel_stop`; the rest is fatal). Ignored by default: SIGCHLD,
/// SIGCONT, SIGURG, SIGWINCH; stopping: SIGSTOP, SIGTSTP, SIGTTIN,
/// SIGTTOU (`include/linux/signal.h`).
pub const DELIVER_FATAL_FILTER: &str =
    "sa_handler == 0 && sig != 17 && sig != 18 && sig != 19 && sig != 20 && sig != 21 && sig != 22 && sig != 23 && sig != 28";

/// The victim's facts, in kB as the event prints them: the record's
/// own type, so the agent carries one copy of the code.
pub use whosent_proto::record::OomVictim as VictimFacts;

#[derive(Debug, Clone, PartialEq)]
pub enum FateEvent {
    /// The OOM killer chose `tid`; `running` is the task that ran it.
    MarkVictim {
        running: i32,
        tid: i32,
        facts: VictimFacts,
    },
    /// `tid` took `sig` with its default, fatal action.
    FatalDeliver { tid: i32, sig: i32, code: i32 },
    /// `tid` called exit_group(status).
    ExitGroup { tid: i32, status: i32 },
}

#[derive(Debug, Clone)]
struct Victim {
    id: u16,
    common_pid: Slot,
    pid: Slot,
    sizes: [Option<Slot>; 5],
    uid: Option<Slot>,
    adj: Option<Slot>,
}

#[cfg(feature = "exits")]
#[derive(Debug, Clone)]
struct Deliver {
    id: u16,
    common_pid: Slot,
    sig: Slot,
    code: Slot,
    handler: Slot,
}

#[cfg(feature = "exits")]
#[derive(Debug, Clone)]
struct ExitGroup {
    id: u16,
    common_pid: Slot,
    status: Slot,
}

/// The layouts of whichever of [`FATE_EVENTS`] this kernel has.
#[derive(Debug, Clone, Default)]
pub struct FateLayouts {
    victim: Option<Victim>,
    #[cfg(feature = "exits")]
    deliver: Option<Deliver>,
    #[cfg(feature = "exits")]
    exit_group: Option<ExitGroup>,
}

impl FateLayouts {
    /// Learns one of [`FATE_EVENTS`] (without the `exits` feature, only
    /// mark_victim); an error for any other event.
    pub fn add(&mut self, f: &EventFormat) -> Result<(), FormatError> {
        let r = |n: &str| f.require(n).map(|x| x.slot());
        let o = |n: &str| f.field(n).map(|x| x.slot());
        match f.name.as_str() {
            "mark_victim" => {
                self.victim = Some(Victim {
                    id: f.id,
                    common_pid: r("common_pid")?,
                    pid: r("pid")?,
                    sizes: [
                        o("total_vm"),
                        o("anon_rss"),
                        o("file_rss"),
                        o("shmem_rss"),
                        o("pgtables"),
                    ],
                    uid: o("uid"),
                    adj: o("oom_score_adj"),
                })
            }
            #[cfg(feature = "exits")]
            "signal_deliver" => {
                self.deliver = Some(Deliver {
                    id: f.id,
                    common_pid: r("common_pid")?,
                    sig: r("sig")?,
                    code: r("code")?,
                    handler: r("sa_handler")?,
                })
            }
            #[cfg(feature = "exits")]
            "sys_enter_exit_group" => {
                self.exit_group = Some(ExitGroup {
                    id: f.id,
                    common_pid: r("common_pid")?,
                    status: r("error_code")?,
                })
            }
            other => return Err(FormatError(format!("not a fate event: {other}"))),
        }
        Ok(())
    }

    /// The kernel has `oom:mark_victim`, so an OOM kill can be told.
    pub fn has_victim(&self) -> bool {
        self.victim.is_some()
    }

    pub fn decode(&self, id: u16, rec: &[u8]) -> Option<FateEvent> {
        let int = |s: &Slot| s.int(rec);
        if let Some(l) = self.victim.as_ref().filter(|l| l.id == id) {
            let size = |i: usize| {
                l.sizes[i]
                    .as_ref()
                    .and_then(|s| s.int(rec))
                    .map(|v| v as u64)
            };
            return Some(FateEvent::MarkVictim {
                running: int(&l.common_pid)? as i32,
                tid: int(&l.pid)? as i32,
                facts: VictimFacts {
                    total_vm_kb: size(0),
                    anon_rss_kb: size(1),
                    file_rss_kb: size(2),
                    shmem_rss_kb: size(3),
                    pgtables_kb: size(4),
                    uid: l.uid.as_ref().and_then(|s| s.int(rec)).map(|v| v as u32),
                    oom_score_adj: l.adj.as_ref().and_then(|s| s.int(rec)).map(|v| v as i32),
                },
            });
        }
        #[cfg(feature = "exits")]
        if let Some(l) = self.deliver.as_ref().filter(|l| l.id == id) {
            // The agent's filter keeps only these; a recorded trace may
            // hold every delivery.
            let sig = int(&l.sig)? as i32;
            if int(&l.handler)? != 0 || !fatal_by_default(sig) {
                return None;
            }
            return Some(FateEvent::FatalDeliver {
                tid: int(&l.common_pid)? as i32,
                sig,
                code: int(&l.code)? as i32,
            });
        }
        #[cfg(feature = "exits")]
        if let Some(l) = self.exit_group.as_ref().filter(|l| l.id == id) {
            return Some(FateEvent::ExitGroup {
                tid: int(&l.common_pid)? as i32,
                // exit_group(int): the register's low 32 bits; the
                // status a parent sees is its low 8 (`do_group_exit`).
                status: (int(&l.status)? as i32) & 0xff,
            });
        }
        None
    }
}

/// The signals whose default action ends the process (the complement of
/// [`DELIVER_FATAL_FILTER`]'s exclusions).
pub fn fatal_by_default(sig: i32) -> bool {
    (1..=64).contains(&sig) && !matches!(sig, 17..=23 | 28)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Field;

    use crate::host_format as fmt;

    fn put(rec: &mut Vec<u8>, f: &Field, v: i64) {
        if rec.len() < f.offset + f.size {
            rec.resize(f.offset + f.size, 0);
        }
        rec[f.offset..f.offset + f.size].copy_from_slice(&v.to_le_bytes()[..f.size]);
    }

    #[test]
    fn decodes_the_recorded_6_18_layouts() {
        let mut l = FateLayouts::default();
        for n in ["mark_victim", "signal_deliver", "sys_enter_exit_group"] {
            l.add(&fmt(n)).unwrap();
        }
        let f = fmt("mark_victim");
        let mut rec = Vec::new();
        put(&mut rec, f.field("common_pid").unwrap(), 812);
        put(&mut rec, f.field("pid").unwrap(), 650);
        put(&mut rec, f.field("anon_rss").unwrap(), 98_304);
        put(
            &mut rec,
            f.field("oom_score_adj").unwrap(),
            -1000i64 & 0xffff,
        );
        let FateEvent::MarkVictim {
            running,
            tid,
            facts,
        } = l.decode(f.id, &rec).unwrap()
        else {
            panic!()
        };
        assert_eq!((running, tid), (812, 650));
        assert_eq!(facts.anon_rss_kb, Some(98_304));
        assert_eq!(facts.oom_score_adj, Some(-1000));
        assert_eq!(facts.total_vm_kb, Some(0));

        let f = fmt("signal_deliver");
        let mut rec = Vec::new();
        put(&mut rec, f.field("common_pid").unwrap(), 650);
        put(&mut rec, f.field("sig").unwrap(), 9);
        put(&mut rec, f.field("sa_flags").unwrap(), 0);
        assert_eq!(
            l.decode(f.id, &rec),
            Some(FateEvent::FatalDeliver {
                tid: 650,
                sig: 9,
                code: 0
            })
        );
        // A handled signal, and a default-ignored one, are no death.
        put(&mut rec, f.field("sa_handler").unwrap(), 0x4010);
        assert_eq!(l.decode(f.id, &rec), None);
        put(&mut rec, f.field("sa_handler").unwrap(), 0);
        put(&mut rec, f.field("sig").unwrap(), 17);
        assert_eq!(l.decode(f.id, &rec), None);

        let f = fmt("sys_enter_exit_group");
        let mut rec = Vec::new();
        put(&mut rec, f.field("common_pid").unwrap(), 651);
        put(&mut rec, f.field("error_code").unwrap(), 0x103);
        assert_eq!(
            l.decode(f.id, &rec),
            Some(FateEvent::ExitGroup {
                tid: 651,
                status: 3
            })
        );
    }

    #[test]
    fn the_filter_and_the_decoder_agree_on_what_kills() {
        for sig in 1..=64 {
            let excluded = DELIVER_FATAL_FILTER.contains(&format!("sig != {sig} "))
                || DELIVER_FATAL_FILTER.ends_with(&format!("sig != {sig}"));
            assert_eq!(fatal_by_default(sig), !excluded, "signal {sig}");
        }
    }

    #[test]
    fn a_6_1_mark_victim_has_only_the_pid() {
        let text = "name: mark_victim\nID: 512\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: \"pid=%d\", REC->pid\n";
        let f = EventFormat::parse(text.as_bytes()).unwrap();
        let mut l = FateLayouts::default();
        l.add(&f).unwrap();
        let mut rec = vec![0u8; 12];
        rec[8..12].copy_from_slice(&77i32.to_le_bytes());
        let Some(FateEvent::MarkVictim { tid, facts, .. }) = l.decode(512, &rec) else {
            panic!()
        };
        assert_eq!(tid, 77);
        assert_eq!(facts, VictimFacts::default());
    }
}
