//! The two builds of ebpf/signal.bpf.c (build.rs), carried in the agent.

/// How events leave the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A BPF ring buffer (5.8+), with the sender's namespace pid (5.7+).
    RingBuf,
    /// A perf event array, one buffer per CPU (before 5.8).
    PerfArray,
}

impl Output {
    pub fn object(self) -> &'static [u8] {
        match self {
            Output::RingBuf => &RINGBUF.0,
            Output::PerfArray => &PERF.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Output::RingBuf => "ringbuf",
            Output::PerfArray => "perf_event_array",
        }
    }
}

// Aligned like the ELF file it is, so that nothing reading its headers
// in place depends on where the linker put the bytes.
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);

static RINGBUF: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    env!("OUT_DIR"),
    "/signal-ringbuf.o"
)));
static PERF: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/signal-perf.o")));
