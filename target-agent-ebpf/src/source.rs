//! Reading the program's events: from the ring buffer, or from the perf
//! event array's per-CPU buffers; and its per-CPU count of events that
//! found no room.

use crate::error::{bpf_error, missing};
use crate::load::Loaded;
use crate::object::Output;
use aya::maps::perf::{PerfEvent, PerfEventArray, PerfEventArrayBuffer};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::Ebpf;
use std::os::fd::AsRawFd;
use whosent_agent::error::Result;

pub enum Source {
    Ring(RingBuf<MapData>),
    /// Each online CPU's buffer, with the CPU.
    Perf(Vec<(u32, PerfEventArrayBuffer<MapData>)>),
}

fn perf_pages(buffer_kb: u32) -> usize {
    // A power of two, as perf_mmap requires.
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    (buffer_kb as usize * 1024 / page)
        .max(2)
        .next_power_of_two()
}

impl Source {
    pub fn open(l: &mut Loaded, buffer_kb: u32) -> Result<Source> {
        let map = l
            .ebpf
            .take_map("events")
            .ok_or_else(|| missing("map events"))?;
        match l.output {
            Output::RingBuf => Ok(Source::Ring(
                RingBuf::try_from(map).map_err(|e| bpf_error("map events", &e))?,
            )),
            Output::PerfArray => {
                let mut arr =
                    PerfEventArray::try_from(map).map_err(|e| bpf_error("map events", &e))?;
                let cpus = aya::util::online_cpus().map_err(|(what, e)| {
                    whosent_agent::error::AgentError::io("cannot read", what, e)
                })?;
                let mut bufs = Vec::new();
                for cpu in cpus {
                    bufs.push((
                        cpu,
                        arr.open(cpu, Some(perf_pages(buffer_kb)))
                            .map_err(|e| bpf_error(&format!("perf buffer of cpu {cpu}"), &e))?,
                    ));
                }
                Ok(Source::Perf(bufs))
            }
        }
    }

    /// The descriptors to poll for new events.
    pub fn fds(&self) -> Vec<i32> {
        match self {
            Source::Ring(r) => vec![r.as_raw_fd()],
            Source::Perf(b) => b.iter().map(|(_, b)| b.as_raw_fd()).collect(),
        }
    }

    /// The CPUs in the order [`Source::drain`] reads them (none for the
    /// ring buffer, which is one queue).
    pub fn cpus(&self) -> Vec<u32> {
        match self {
            Source::Ring(_) => Vec::new(),
            Source::Perf(b) => b.iter().map(|(c, _)| *c).collect(),
        }
    }

    /// Hands every event waiting to `f`, at most `max` of them (so that
    /// stop checks and output keep up in a storm); returns how many.
    pub fn drain(&mut self, max: usize, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        match self {
            Source::Ring(r) => {
                while n < max {
                    let Some(item) = r.next() else { break };
                    f(&item);
                    n += 1;
                }
            }
            Source::Perf(bufs) => {
                let mut joined = Vec::new();
                for (_, b) in bufs {
                    b.for_each(|ev| {
                        // Lost records are not counted here: the program
                        // counts every failed output in its `lost` map.
                        if let PerfEvent::Sample { head, tail } = ev {
                            if tail.is_empty() {
                                f(head);
                            } else {
                                joined.clear();
                                joined.extend_from_slice(head);
                                joined.extend_from_slice(tail);
                                f(&joined);
                            }
                            n += 1;
                        }
                    });
                }
            }
        }
        n
    }
}

/// The program's count of events it had no room for, per possible CPU.
pub fn lost(ebpf: &Ebpf) -> Vec<u64> {
    let Some(map) = ebpf.map("lost") else {
        return Vec::new();
    };
    let Ok(arr) = PerCpuArray::<&MapData, u64>::try_from(map) else {
        return Vec::new();
    };
    arr.get(&0, 0).map(|v| v.to_vec()).unwrap_or_default()
}

/// How many signal_generate events the kernel did not run the program
/// for: a BPF program was already running on that CPU (`bpf_prog_active`
/// in `trace_call_bpf`, kernel/trace/bpf_trace.c), as when a timer
/// interrupt's SIGALRM lands in one of the task programs. The kernel
/// counts them in the program's `recursion_misses` (5.12+); `None` where
/// it does not.
pub fn not_run(ebpf: &Ebpf) -> Option<u64> {
    use std::os::fd::AsFd;
    let p: &aya::programs::TracePoint = ebpf.program("signal_generate")?.try_into().ok()?;
    let fd = p.fd().ok()?.as_fd().as_raw_fd();
    recursion_misses(fd)
}

/// `bpf_prog_info.recursion_misses`, by BPF_OBJ_GET_INFO_BY_FD: aya's
/// `ProgramInfo` does not expose it. The struct (include/uapi/linux/bpf.h)
/// is laid out the same on every target (its u64s are `__aligned_u64`).
fn recursion_misses(fd: i32) -> Option<u64> {
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const OFFSET: usize = 208;
    #[repr(C, align(8))]
    struct Info([u8; 256]);
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut info = Info([0; 256]);
    let mut attr = Attr {
        bpf_fd: fd as u32,
        info_len: info.0.len() as u32,
        info: info.0.as_mut_ptr() as usize as u64,
    };
    // SAFETY: attr and the buffer it points to live across the call;
    // the kernel writes at most info_len bytes there and sets info_len.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    if r != 0 || (attr.info_len as usize) < OFFSET + 8 {
        return None;
    }
    let b: [u8; 8] = info.0[OFFSET..OFFSET + 8].try_into().ok()?;
    Some(u64::from_ne_bytes(b))
}
