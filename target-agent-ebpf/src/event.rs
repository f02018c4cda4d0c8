//! What the BPF program sends (`struct head`, `struct signal_event` and
//! the others in ebpf/event.h), and how an event becomes what the
//! ftrace backend reads: the tracepoint's record, with its common fields
//! written back, for the shared decoders and pipeline (whosent-analysis),
//! plus what the program read of the running task at a signal
//! ([`Running`]). Pure: the namespaces are passed in.

use crate::pidns::{self, Ns};
use whosent_analysis::pipeline::Running;
use whosent_ftrace::format::EventFormat;
use whosent_stream::frame::Facts;

/// `KIND_*` in ebpf/event.h, which index [`Kinds`].
pub const KIND_SIGNAL: u32 = 1;
pub const KIND_NEWTASK: u32 = 2;
pub const KIND_RENAME: u32 = 3;
pub const KIND_EXEC: u32 = 4;
pub const KIND_EXIT: u32 = 5;
pub const KIND_VICTIM: u32 = 6;
pub const KIND_DELIVER: u32 = 7;
pub const KIND_EXIT_GROUP: u32 = 8;
const KINDS: usize = 9;

/// `REC_*`: the bytes of each record the program copies.
pub const REC_SIGNAL: usize = 64;
pub const REC_TASK: usize = 128;
pub const REC_EXEC: usize = 320;

/// The bytes copied for events of `kind`.
pub fn capacity(kind: u32) -> usize {
    match kind {
        KIND_SIGNAL => REC_SIGNAL,
        KIND_EXEC => REC_EXEC,
        _ => REC_TASK,
    }
}

/// `struct head`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    pub ts: u64,
    pub pid_tgid: u64,
    pub kind: u32,
    pub cpu: u32,
    pub context: u32,
    pub size: u32,
}

/// `struct signal_event` after its head, up to its record.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalFacts {
    pub uid_gid: u64,
    pub cgroup: u64,
    pub target_tgid: i32,
    pub ns_tgid: i32,
    pub ns_tid: i32,
    pub ns_index: u32,
    pub exited: u32,
    pub pad: u32,
    pub comm: [u8; 16],
}

pub const HEAD: usize = 32;
pub const SIGNAL_FACTS: usize = 56;
const _: () = assert!(std::mem::size_of::<Head>() == HEAD);
const _: () = assert!(std::mem::size_of::<SignalFacts>() == SIGNAL_FACTS);

/// Reads a plain-data struct at the start of `b`.
///
/// # Safety
/// `T` must be plain integers and byte arrays, valid for any bits.
unsafe fn read<T: Copy>(b: &[u8]) -> Option<T> {
    if b.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; read_unaligned takes no alignment.
    Some(unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) })
}

/// One event as the kernel handed it over (a perf sample may carry
/// padding after it).
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub head: Head,
    /// A signal's facts of the running task.
    pub signal: Option<SignalFacts>,
    /// The tracepoint's record, its first 8 bytes not yet written.
    pub rec: &'a [u8],
}

impl<'a> Event<'a> {
    /// `None` if too short for its kind.
    pub fn parse(b: &'a [u8]) -> Option<Event<'a>> {
        // SAFETY: Head is plain integers.
        let head: Head = unsafe { read(b)? };
        let mut at = HEAD;
        let signal = if head.kind == KIND_SIGNAL {
            // SAFETY: SignalFacts is plain integers and bytes.
            let f: SignalFacts = unsafe { read(b.get(at..)?)? };
            at += SIGNAL_FACTS;
            Some(f)
        } else {
            None
        };
        let n = (head.size as usize).min(capacity(head.kind));
        Some(Event {
            head,
            signal,
            rec: b.get(at..at + n)?,
        })
    }

    pub fn tgid(&self) -> i32 {
        (self.head.pid_tgid >> 32) as i32
    }

    pub fn tid(&self) -> i32 {
        self.head.pid_tgid as u32 as i32
    }
}

/// A NUL-padded kernel comm as text (lossy, as the ftrace decoder does).
pub fn comm(b: &[u8; 16]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(16);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// `enum trace_flag_type` (kernel/trace/trace.h), as
/// whosent_ftrace::signal_generate reads `common_flags`.
const FLAG_HARDIRQ: u8 = 0x08;
const FLAG_SOFTIRQ: u8 = 0x10;

/// The format of each kind this kernel has, by `KIND_*`.
#[derive(Debug, Default)]
pub struct Kinds {
    formats: [Option<EventFormat>; KINDS],
}

impl Kinds {
    pub fn set(&mut self, kind: u32, f: EventFormat) {
        self.formats[kind as usize] = Some(f);
    }

    pub fn get(&self, kind: u32) -> Option<&EventFormat> {
        self.formats.get(kind as usize)?.as_ref()
    }

    /// The record as a ring-buffer page holds it: `common_type` is the
    /// event's id, `common_flags` the interrupt context, `common_pid`
    /// the running task (BPF sees a pt_regs pointer there instead,
    /// include/trace/perf.h). A `__data_loc` string that went past the
    /// copied bytes is cut at their end.
    pub fn record(&self, e: &Event<'_>, out: &mut Vec<u8>) -> bool {
        let Some(f) = self.get(e.head.kind) else {
            return false;
        };
        out.clear();
        out.extend_from_slice(e.rec);
        if out.len() < 8 {
            return false;
        }
        let flags = match e.head.context {
            1 => FLAG_HARDIRQ,
            2 => FLAG_SOFTIRQ,
            _ => 0,
        };
        out[0..2].copy_from_slice(&f.id.to_ne_bytes());
        out[2] = flags;
        out[3] = 0;
        out[4..8].copy_from_slice(&e.tid().to_ne_bytes());
        for fl in f.fields.iter().filter(|fl| fl.data_loc && fl.size == 4) {
            let Some(b) = out.get(fl.offset..fl.offset + 4) else {
                continue;
            };
            let loc = u32::from_ne_bytes(b.try_into().expect("4 bytes"));
            let base = if fl.ty.starts_with("__rel_loc") {
                fl.offset + 4
            } else {
                0
            };
            let (off, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
            let room = out.len().saturating_sub(base + off);
            if len > room {
                let cut = (off as u32) | ((room as u32) << 16);
                out[fl.offset..fl.offset + 4].copy_from_slice(&cut.to_ne_bytes());
            }
        }
        true
    }
}

/// What the program read of the running task at a signal, as the
/// capture stream's EVENT frame carries it (and, turned into
/// [`Running`], the pipeline takes it): its ids, cgroup and comm, its
/// namespace pid where it is in a namespace `ns` lists (the pidns map,
/// by index).
pub fn facts(e: &Event<'_>, s: &SignalFacts, ns: &[Ns]) -> Facts {
    let known = (s.ns_index as usize).checked_sub(1).and_then(|i| ns.get(i));
    Facts {
        tgid: e.tgid(),
        tid: e.tid(),
        uid: s.uid_gid as u32,
        gid: (s.uid_gid >> 32) as u32,
        cgroup_id: s.cgroup,
        target_tgid: s.target_tgid.max(0),
        exited: s.exited != 0,
        comm: comm(&s.comm),
        nspid: known
            .and_then(|n| pidns::nspid(e.tgid(), Some(n), s.ns_tgid))
            .unwrap_or_default(),
    }
}

/// The same for the pipeline run on the board.
pub fn running(e: &Event<'_>, s: &SignalFacts, ns: &[Ns]) -> Running {
    facts(e, s, ns).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_programs() {
        // Offsets in ebpf/event.h.
        let h = Head::default();
        let base = &h as *const _ as usize;
        assert_eq!(&h.kind as *const _ as usize - base, 16);
        assert_eq!(&h.size as *const _ as usize - base, 28);
        let s = SignalFacts::default();
        let base = &s as *const _ as usize;
        assert_eq!(&s.exited as *const _ as usize - base, 32);
        assert_eq!(s.comm.as_ptr() as usize - base, 40);
        // sizeof(struct signal_event), task_event, exec_event.
        assert_eq!(HEAD + SIGNAL_FACTS + REC_SIGNAL, 152);
        assert_eq!((HEAD + REC_TASK, HEAD + REC_EXEC), (160, 352));
    }

    fn bytes<T>(v: &T) -> &[u8] {
        // SAFETY: plain data of size_of::<T>() bytes.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
    }

    const EXEC_FORMAT: &str = "name: sched_process_exec\nID: 365\nformat:\n\
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
        \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
        \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
        \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
        \tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
        \tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\
        \tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n";

    #[test]
    fn a_record_gets_its_common_fields_and_a_long_filename_is_cut() {
        let head = Head {
            ts: 5,
            pid_tgid: (700u64 << 32) | 701,
            kind: KIND_EXEC,
            cpu: 1,
            context: 0,
            size: REC_EXEC as u32,
        };
        let mut rec = vec![0xeeu8; REC_EXEC];
        // A filename of 400 bytes at offset 20: more than was copied.
        rec[8..12].copy_from_slice(&(20u32 | (400 << 16)).to_ne_bytes());
        rec[12..16].copy_from_slice(&701i32.to_ne_bytes());
        rec[16..20].copy_from_slice(&701i32.to_ne_bytes());
        rec[20..].fill(b'a');
        let mut wire = bytes(&head).to_vec();
        wire.extend_from_slice(&rec);
        let e = Event::parse(&wire).unwrap();
        assert!(e.signal.is_none() && e.rec.len() == REC_EXEC);
        let mut kinds = Kinds::default();
        let mut out = Vec::new();
        assert!(!kinds.record(&e, &mut out), "no format, no record");
        kinds.set(
            KIND_EXEC,
            EventFormat::parse(EXEC_FORMAT.as_bytes()).unwrap(),
        );
        assert!(kinds.record(&e, &mut out));
        let f = kinds.get(KIND_EXEC).unwrap();
        let name = f.field("filename").unwrap().string(&out).unwrap();
        assert_eq!(name.len(), REC_EXEC - 20);
        assert_eq!(f.field("common_type").unwrap().int(&out), Some(365));
        assert_eq!(f.field("common_pid").unwrap().int(&out), Some(701));
        assert!(Event::parse(&wire[..HEAD + 10]).is_none());
    }

    #[test]
    fn a_signals_running_task_is_the_kernels_view() {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"kill");
        let s = SignalFacts {
            uid_gid: (100u64 << 32) | 1000,
            target_tgid: 650,
            cgroup: 4242,
            ns_tgid: 3,
            ns_index: 2,
            comm,
            ..Default::default()
        };
        let head = Head {
            pid_tgid: (812u64 << 32) | 813,
            kind: KIND_SIGNAL,
            size: REC_SIGNAL as u32,
            ..Default::default()
        };
        let mut wire = bytes(&head).to_vec();
        wire.extend_from_slice(bytes(&s));
        wire.extend_from_slice(&[0; REC_SIGNAL]);
        let e = Event::parse(&wire).unwrap();
        let ns = [
            Ns {
                dev: 1,
                ino: 1,
                depth: 0,
            },
            Ns {
                dev: 1,
                ino: 2,
                depth: 1,
            },
        ];
        let r = running(&e, e.signal.as_ref().unwrap(), &ns);
        assert_eq!(
            r,
            Running {
                tgid: 812,
                uid: 1000,
                cgroup_id: 4242,
                comm: "kill".into(),
                nspid: Some(vec![812, 3]),
                target_pid: Some(650),
                exited: false,
            }
        );
        assert_eq!(e.tid(), 813);
    }
}
