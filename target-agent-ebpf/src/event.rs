//! What the BPF program sends for each signal (`struct signal_event` in
//! ebpf/event.h), and how it becomes the wire format's [`SignalEvent`].
//! Pure: the /proc look-ups it may need are passed in.

use whosent_proto::record::{Context, Outcome, SignalEvent, Task};

/// `struct signal_event`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawEvent {
    pub ts: u64,
    pub pid_tgid: u64,
    pub uid_gid: u64,
    pub cgroup: u64,
    pub cpu: u32,
    pub sig: i32,
    pub err: i32,
    pub code: i32,
    pub target_tid: i32,
    pub target_tgid: i32,
    pub group: i32,
    pub result: i32,
    pub context: u32,
    pub ns_tgid: i32,
    pub ns_tid: i32,
    pub ns_index: u32,
    pub exited: u32,
    pub pad: u32,
    pub comm: [u8; 16],
    pub target_comm: [u8; 16],
}

/// ebpf/event.h's sizeof(struct signal_event).
pub const SIZE: usize = 120;
const _: () = assert!(std::mem::size_of::<RawEvent>() == SIZE);

impl RawEvent {
    /// Reads one event from the bytes the kernel handed over (a perf
    /// sample may carry padding after it); `None` if too short.
    pub fn parse(b: &[u8]) -> Option<RawEvent> {
        if b.len() < SIZE {
            return None;
        }
        // SAFETY: RawEvent is plain integers and byte arrays (any bit
        // pattern is valid) and b holds at least SIZE bytes;
        // read_unaligned takes no alignment from the source.
        Some(unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<RawEvent>()) })
    }

    pub fn sender_tgid(&self) -> i32 {
        (self.pid_tgid >> 32) as i32
    }

    pub fn sender_tid(&self) -> i32 {
        self.pid_tgid as u32 as i32
    }

    pub fn uid(&self) -> u32 {
        self.uid_gid as u32
    }

    pub fn gid(&self) -> u32 {
        (self.uid_gid >> 32) as u32
    }
}

/// A NUL-padded kernel comm as text (lossy, as the ftrace decoder does).
pub fn comm(b: &[u8; 16]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(16);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// What the agent adds from user space.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// The sender's pid in each namespace, the agent's own first: from
    /// the kernel's answer and the namespace's depth, else /proc.
    pub sender_nspid: Option<Vec<i32>>,
    pub sender_cmdline: Option<String>,
    /// The target's process, when the kernel did not know it.
    pub target_pid: Option<i32>,
    pub target_nspid: Option<Vec<i32>>,
}

/// The record for `r`. Its `cause` is set by [`SignalEvent::classify`]
/// with what the kernel said of the running task.
pub fn to_signal(r: &RawEvent, x: Extra) -> SignalEvent {
    let context = match r.context {
        1 => Context::Hardirq,
        2 => Context::Softirq,
        _ => Context::Task,
    };
    let mut e = SignalEvent {
        ts_ns: r.ts,
        cpu: r.cpu,
        sig: r.sig,
        code: r.code,
        errno: r.err,
        group: (r.group >= 0).then_some(r.group != 0),
        result: (r.result >= 0).then(|| Outcome::from_raw(r.result)),
        context,
        running: Task {
            pid: Some(r.sender_tgid()),
            tid: r.sender_tid(),
            comm: comm(&r.comm),
            uid: Some(r.uid()),
            cmdline: x.sender_cmdline,
            nspid: x.sender_nspid,
            lineage: None,
        },
        target: Task {
            pid: if r.target_tgid > 0 {
                Some(r.target_tgid)
            } else {
                x.target_pid
            },
            tid: r.target_tid,
            comm: comm(&r.target_comm),
            nspid: x.target_nspid,
            ..Default::default()
        },
        cause: None,
        oom: None,
    };
    e.classify(whosent_proto::cause::Hints {
        oom: false,
        running_exited: r.exited != 0,
    });
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use whosent_proto::cause::Cause;

    fn raw() -> RawEvent {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"kill");
        let mut target_comm = [0u8; 16];
        target_comm[..5].copy_from_slice(b"sleep");
        RawEvent {
            ts: 7,
            pid_tgid: (812u64 << 32) | 813,
            uid_gid: (100u64 << 32) | 1000,
            cpu: 1,
            sig: 9,
            target_tid: 650,
            target_tgid: 650,
            group: 1,
            result: 0,
            comm,
            target_comm,
            ..Default::default()
        }
    }

    #[test]
    fn the_layout_is_the_programs() {
        // Offsets of struct signal_event in ebpf/event.h.
        let r = RawEvent::default();
        let base = &r as *const _ as usize;
        let at = |p: *const u8| p as usize - base;
        assert_eq!(at(&r.cpu as *const _ as *const u8), 32);
        assert_eq!(at(&r.context as *const _ as *const u8), 64);
        assert_eq!(at(&r.exited as *const _ as *const u8), 80);
        assert_eq!(at(r.comm.as_ptr()), 88);
        assert_eq!(at(r.target_comm.as_ptr()), 104);
    }

    #[test]
    fn a_kill_names_its_sender_with_the_kernels_ids() {
        let mut bytes = vec![0u8; SIZE + 8];
        let r = raw();
        // SAFETY: RawEvent is plain data of SIZE bytes.
        let src = unsafe { std::slice::from_raw_parts((&r as *const RawEvent).cast::<u8>(), SIZE) };
        bytes[..SIZE].copy_from_slice(src);
        let back = RawEvent::parse(&bytes).unwrap();
        assert_eq!(back, r);
        assert!(RawEvent::parse(&bytes[..SIZE - 1]).is_none());
        let e = to_signal(&back, Extra::default());
        let s = e.sender().unwrap();
        assert_eq!((s.pid, s.tid, s.uid), (Some(812), 813, Some(1000)));
        assert_eq!((s.comm.as_str(), e.target.comm.as_str()), ("kill", "sleep"));
        assert_eq!(
            (e.target.pid, e.group, e.result),
            (Some(650), Some(true), Some(Outcome::Delivered))
        );
        assert_eq!(e.cause, Some(Cause::Kill));
        assert_eq!(back.gid(), 100);
    }

    #[test]
    fn a_signal_sent_on_the_way_out_is_the_kernels() {
        let mut r = raw();
        r.exited = 1;
        r.sig = 15;
        assert_eq!(
            to_signal(&r, Extra::default()).cause,
            Some(Cause::ParentExit)
        );
        r.sig = 9;
        r.code = 0x80;
        let e = to_signal(&r, Extra::default());
        assert_eq!(e.cause, Some(Cause::PidnsExit));
        assert!(e.sender().is_none());
    }

    #[test]
    fn fields_the_kernel_lacks_stay_unknown() {
        let mut r = raw();
        (r.group, r.result, r.target_tgid, r.context) = (-1, -1, 0, 1);
        let e = to_signal(
            &r,
            Extra {
                target_pid: Some(640),
                ..Default::default()
            },
        );
        assert_eq!((e.group, e.result, e.target.pid), (None, None, Some(640)));
        assert_eq!(e.context, Context::Hardirq);
        assert!(e.sender().is_none());
    }
}
