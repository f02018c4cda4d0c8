//! Loading the program: the offsets from the format files and the query
//! into its constants, the maps filled, the tracepoints attached.
//!
//! Everything the kernel holds for it (programs, maps, perf links) is
//! owned by file descriptors in [`Loaded`]; dropping it, or the process
//! ending any way at all, releases them. Nothing is pinned, and no
//! tracefs state is changed.

use crate::error::{bpf_error, missing, preflight};
use crate::event::{
    capacity, Kinds, KIND_DELIVER, KIND_EXEC, KIND_EXIT, KIND_EXIT_GROUP, KIND_NEWTASK,
    KIND_RENAME, KIND_SIGNAL, KIND_VICTIM,
};
use crate::layout::{fits, SignalOffsets, TaskOffsets};
use crate::object::Output;
use crate::pidns::{self, Ns};
use aya::maps::{Array, HashMap, MapData};
use aya::programs::{Program, RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};
use std::path::Path;
use whosent_agent::error::{AgentError, Result};
use whosent_ftrace::format::EventFormat;
use whosent_ftrace::header_page::PageLayout;
use whosent_proto::query::Query;
use whosent_stream::frame::role;

/// `FILTER_*` in ebpf/event.h.
const FILTER_TARGET_PID: u32 = 1;
const FILTER_TARGET_COMM: u32 = 2;
const FILTER_SENDER_PID: u32 = 4;
const FILTER_SENDER_COMM: u32 = 8;

/// The program's map value for a namespace (`struct pidns_key`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct PidnsKey {
    pub dev: u64,
    pub ino: u64,
}
// SAFETY: two u64s, no padding.
unsafe impl aya::Pod for PidnsKey {}

/// The interrupt-context programs (raw tracepoints, see the program's
/// comment), in attach order: entries before exits would leave a depth
/// counted up forever, exits first only drop to 0.
const IRQ_PROGRAMS: [(&str, &str); 6] = [
    ("irq_exit", "irq_handler_exit"),
    ("hrtimer_exit", "hrtimer_expire_exit"),
    ("softirq_exit", "softirq_exit"),
    ("irq_entry", "irq_handler_entry"),
    ("hrtimer_entry", "hrtimer_expire_entry"),
    ("softirq_entry", "softirq_entry"),
];

/// The program of each `KIND_*` (ebpf/signal.bpf.c).
const PROGRAMS: [&str; 9] = [
    "",
    "signal_generate",
    "task_newtask",
    "task_rename",
    "sched_process_exec",
    "sched_process_exit",
    "mark_victim",
    "signal_deliver",
    "exit_group",
];

/// What the records lack without an optional event.
fn lacks(kind: u32) -> &'static str {
    match kind {
        KIND_VICTIM => "an OOM kill's SIGKILL is cause `kernel`, not `oom`",
        KIND_DELIVER => "deaths by a signal are not told in exit records",
        KIND_EXIT_GROUP => "exit statuses are not told in exit records",
        _ => "lineage may name fewer programs",
    }
}

pub struct Loaded {
    pub ebpf: Ebpf,
    pub output: Output,
    /// The namespaces in the `pidns` map, by index.
    pub namespaces: Vec<Ns>,
    /// Attached: the interrupt context is known (else every signal is
    /// taken as sent in task context).
    pub irq_context: bool,
}

/// What the loader needs from the board.
pub struct Setup<'a> {
    pub formats: &'a Formats,
    /// Target threads: (tid, tgid), from /proc for `--pid`, read once
    /// the programs are attached.
    pub targets: &'a dyn Fn() -> Result<Vec<(i32, i32)>>,
    pub query: Query,
    /// Fold storms in the kernel ([`crate::fold`]).
    pub fold: bool,
}

/// Reads a tracefs file in one large read: some (events/header_page)
/// answer only a read at offset 0 and give EOF to the small probe reads
/// `fs::read` starts with.
fn read_whole(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(p)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A format file, parsed, and its text (for the capture stream).
fn read_format(root: &str, rel: &str) -> Result<(EventFormat, Vec<u8>)> {
    let p = Path::new(root).join(rel);
    let bytes =
        read_whole(&p).map_err(|e| AgentError::io("cannot read", &p.display().to_string(), e))?;
    let f = EventFormat::parse(bytes.as_slice())
        .map_err(|e| bad_format(&p.display().to_string(), e))?;
    Ok((f, bytes))
}

fn bad_format(what: &str, e: impl std::fmt::Display) -> AgentError {
    AgentError::new(
        "bad_format",
        format!("{what}: {e}"),
        "report this with the kernel release; `--backend ftrace` reads the same events without eBPF",
    )
}

/// What the agent reads of this kernel's events: the program's offsets,
/// and the format of each event it sends, for decoding.
pub struct Formats {
    pub signal: SignalOffsets,
    pub tasks: TaskOffsets,
    pub kinds: Kinds,
    pub page: PageLayout,
    /// The texts of header_page and of each format in `kinds`, with
    /// their FORMAT roles (docs/stream-format.md), for `--stream`.
    pub texts: Vec<(u8, Vec<u8>)>,
}

/// The events the program sends besides signals, by kind: those marked
/// required are what it cannot run without (the target and exited-task
/// maps); `fates`: only for the exit records of watched processes.
const EVENTS: [(u32, &str, bool, bool); 7] = [
    (KIND_NEWTASK, "task/task_newtask", true, false),
    (KIND_EXIT, "sched/sched_process_exit", true, false),
    (KIND_RENAME, "task/task_rename", false, false),
    (KIND_EXEC, "sched/sched_process_exec", false, false),
    (KIND_VICTIM, "oom/mark_victim", false, false),
    (KIND_DELIVER, "signal/signal_deliver", false, true),
    (
        KIND_EXIT_GROUP,
        "syscalls/sys_enter_exit_group",
        false,
        true,
    ),
];

/// The formats of this kernel's events. `fates`: the exit records'
/// events too (`--pid`, `--comm`). An optional event the kernel lacks,
/// or whose fields the program's copy cannot hold, is left out.
pub fn formats(root: &str, fates: bool) -> Result<Formats> {
    let (sig, sig_text) = read_format(root, "events/signal/signal_generate/format")?;
    let signal = SignalOffsets::new(&sig).map_err(|e| bad_format("signal_generate", e))?;
    fits(&sig, capacity(KIND_SIGNAL)).map_err(|e| bad_format("signal_generate", e))?;
    let (newtask, _) = read_format(root, "events/task/task_newtask/format")?;
    let (exit, _) = read_format(root, "events/sched/sched_process_exit/format")?;
    let mut tasks = TaskOffsets::new(&newtask, &exit).map_err(|e| bad_format("task events", e))?;
    let p = Path::new(root).join("events/header_page");
    let text =
        read_whole(&p).map_err(|e| AgentError::io("cannot read", &p.display().to_string(), e))?;
    let page = PageLayout::parse(text.as_slice()).map_err(|e| bad_format("header_page", e))?;
    let mut texts = vec![(role::HEADER_PAGE, text), (role::SIGNAL, sig_text)];
    let mut kinds = Kinds::default();
    kinds.set(KIND_SIGNAL, sig);
    for (kind, ev, required, fate) in EVENTS {
        if fate && !fates {
            continue;
        }
        let (f, text) = match read_format(root, &format!("events/{ev}/format")) {
            Ok(f) => f,
            Err(e) if required => return Err(e),
            Err(_) => continue,
        };
        if let Err(e) = fits(&f, capacity(kind)) {
            if required {
                return Err(bad_format(ev, e));
            }
            eprintln!("whosent-ebpf-agent: note: {e}; not traced");
            continue;
        }
        if kind == KIND_DELIVER {
            match tasks.with_deliver(&f) {
                Ok(t) => tasks = t,
                Err(e) => {
                    eprintln!("whosent-ebpf-agent: note: {e}; deaths by signal not told");
                    continue;
                }
            }
        }
        kinds.set(kind, f);
        let r = if kind >= KIND_VICTIM {
            role::FATE
        } else {
            role::TASK
        };
        texts.push((r, text));
    }
    Ok(Formats {
        signal,
        tasks,
        kinds,
        page,
        texts,
    })
}

fn comm16(c: Option<&str>) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Some(c) = c {
        // The kernel's comm is at most 15 bytes and a NUL; a longer name
        // can never match, and the agent's own check says so.
        let b = c.as_bytes();
        let n = b.len().min(15);
        out[..n].copy_from_slice(&b[..n]);
    }
    out
}

/// Bit (sig - 1) per signal asked for; 0 for all.
pub fn sig_mask(sigs: &[i32]) -> u64 {
    sigs.iter()
        .filter(|s| (1..=64).contains(*s))
        .fold(0, |m, s| m | 1 << (s - 1))
}

pub fn filters(q: &Query) -> u32 {
    let mut f = 0;
    if !q.pids.is_empty() {
        f |= FILTER_TARGET_PID;
    }
    // A name longer than the kernel's 15 bytes matches nothing in the
    // kernel; leave it to the agent's own check, which says so.
    if q.comm.as_ref().is_some_and(|c| c.len() <= 15) {
        f |= FILTER_TARGET_COMM;
    }
    if !q.sender_pids.is_empty() {
        f |= FILTER_SENDER_PID;
    }
    if q.sender_comm.as_ref().is_some_and(|c| c.len() <= 15) {
        f |= FILTER_SENDER_COMM;
    }
    f
}

fn ring_bytes(kb: u32) -> u32 {
    // A power of two pages, as the kernel requires (kernel/bpf/ringbuf.c).
    (kb.max(64) as u64 * 1024).next_power_of_two().min(1 << 30) as u32
}

/// `WAKE_BYTES`: a quarter of the ring, at most 64 KiB (about 500
/// events), so that a storm wakes the agent in batches and the agent's
/// own timer ([`crate::run::DRAIN`]) picks up the rest.
pub fn wake_bytes(buffer_kb: u32) -> u64 {
    (ring_bytes(buffer_kb) as u64 / 4).min(1 << 16)
}

/// The program's constants that come from the query and the options.
struct Consts {
    sigs: u64,
    wake: u64,
    filters: u32,
    fold: u32,
    comms: [[u8; 16]; 2],
}

fn loader_for<'a>(
    s: &'a Setup<'_>,
    c: &'a Consts,
    output: Output,
    buffer_kb: u32,
    cpus: u32,
) -> EbpfLoader<'a> {
    let mut l = EbpfLoader::new();
    // No BTF: nothing is relocated against the kernel's types, so a
    // kernel without CONFIG_DEBUG_INFO_BTF loads the same object.
    l.btf(None);
    let o = &s.formats.signal;
    let t = &s.formats.tasks;
    l.override_global("SIG_OFF", &o.sig, true)
        .override_global("ERRNO_OFF", &o.errno, true)
        .override_global("CODE_OFF", &o.code, true)
        .override_global("COMM_OFF", &o.comm, true)
        .override_global("PID_OFF", &o.pid, true)
        .override_global("GROUP_OFF", &o.group, true)
        .override_global("RESULT_OFF", &o.result, true)
        .override_global("NEWTASK_PID_OFF", &t.newtask_pid, true)
        .override_global("NEWTASK_FLAGS_OFF", &t.newtask_flags, true)
        .override_global("EXIT_PID_OFF", &t.exit_pid, true)
        .override_global("DELIVER_SIG_OFF", &t.deliver_sig, true)
        .override_global("DELIVER_HANDLER_OFF", &t.deliver_handler, true)
        .override_global("SIGS", &c.sigs, true)
        .override_global("WAKE_BYTES", &c.wake, true)
        .override_global("FILTERS", &c.filters, true)
        .override_global("FOLD", &c.fold, true)
        .override_global("TARGET_COMM", &c.comms[0], true)
        .override_global("SENDER_COMM", &c.comms[1], true);
    match output {
        Output::RingBuf => l.map_max_entries("events", ring_bytes(buffer_kb)),
        Output::PerfArray => l.map_max_entries("events", cpus),
    };
    l
}

fn load_one(s: &Setup<'_>, output: Output, buffer_kb: u32) -> Result<Ebpf> {
    let consts = Consts {
        sigs: sig_mask(&s.query.sigs),
        wake: wake_bytes(buffer_kb),
        filters: filters(&s.query),
        fold: s.fold as u32,
        comms: [
            comm16(s.query.comm.as_deref()),
            comm16(s.query.sender_comm.as_deref()),
        ],
    };
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| AgentError::io("cannot read", what, e))?;
    let mut ebpf = loader_for(s, &consts, output, buffer_kb, cpus as u32)
        .load(output.object())
        .map_err(|e| bpf_error("cannot load the eBPF maps", &e))?;
    let names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    for name in names {
        let loaded = match ebpf.program_mut(&name).expect("listed") {
            Program::TracePoint(p) => p.load(),
            Program::RawTracePoint(p) => p.load(),
            _ => return Err(missing(&format!("a tracepoint program {name}"))),
        };
        loaded.map_err(|e| bpf_error(&format!("the kernel refused program {name}"), &e))?;
    }
    Ok(ebpf)
}

/// Loads the ring-buffer build, else the perf-array one; fills the maps;
/// attaches. On any error everything loaded so far is released (dropped).
pub fn load(s: &Setup<'_>, buffer_kb: u32, output: Option<Output>) -> Result<Loaded> {
    preflight()?;
    let first = output.unwrap_or(Output::RingBuf);
    let (mut ebpf, output) = match load_one(s, first, buffer_kb) {
        Ok(e) => (e, first),
        // Asked for: no other.
        Err(e) if output.is_some() => return Err(e),
        Err(ring) => match load_one(s, Output::PerfArray, buffer_kb) {
            Ok(e) => {
                eprintln!(
                    "whosent-ebpf-agent: note: no BPF ring buffer here ({}); using a perf event array, without the sender's namespace pid",
                    ring.message
                );
                (e, Output::PerfArray)
            }
            Err(_) => return Err(ring),
        },
    };
    let namespaces = pidns::scan("/proc", &[]);
    set_namespaces(&mut ebpf, &namespaces)?;
    let mut irq_context = true;
    for (prog, ev) in IRQ_PROGRAMS {
        if attach_raw(&mut ebpf, prog, ev).is_err() {
            irq_context = false;
        }
    }
    if !irq_context {
        eprintln!("whosent-ebpf-agent: note: the irq/timer tracepoints are missing; signals from interrupt context are reported as from the running task's context");
    }
    // The task and fate events before the signals: the table knows a
    // task before any signal names it.
    for (kind, ev, required, _) in EVENTS {
        if s.formats.kinds.get(kind).is_none() {
            continue;
        }
        let (cat, name) = ev.split_once('/').expect("category/event");
        let prog = PROGRAMS[kind as usize];
        match attach(&mut ebpf, prog, cat, name) {
            Ok(()) => {}
            Err(e) if required => return Err(e),
            Err(e) => eprintln!("whosent-ebpf-agent: note: {}; {}", e.message, lacks(kind)),
        }
    }
    attach(&mut ebpf, "signal_generate", "signal", "signal_generate")?;
    // Filled once everything is attached: from here on the programs
    // keep the maps current, so a thread or process /proc shows now
    // cannot be missed (and one gone by now is told, not waited for).
    fill_targets(&mut ebpf, s)?;
    Ok(Loaded {
        ebpf,
        output,
        namespaces,
        irq_context,
    })
}

/// Detaches every program at once. A tracepoint's last perf user waits
/// for RCU grace periods as it goes (`tracepoint_synchronize_unregister`
/// in `perf_trace_event_unreg`, kernel/trace/trace_event_perf.c): one
/// after the other that was 1.1 s for the 14 programs on this 2-CPU
/// machine, and more than the 3 s whosent-deploy gives an agent to exit
/// after its stdin closed on the emulated armv7 board; in parallel the
/// waits overlap. What is left (maps) goes with the descriptors.
pub fn detach_all(ebpf: &mut Ebpf) {
    std::thread::scope(|s| {
        for (_, p) in ebpf.programs_mut() {
            match p {
                Program::TracePoint(t) => {
                    s.spawn(move || {
                        let _ = t.unload();
                    });
                }
                Program::RawTracePoint(t) => {
                    s.spawn(move || {
                        let _ = t.unload();
                    });
                }
                _ => {}
            }
        }
    });
}

fn attach(ebpf: &mut Ebpf, prog: &str, category: &str, event: &str) -> Result<()> {
    let p: &mut TracePoint = ebpf
        .program_mut(prog)
        .ok_or_else(|| missing(&format!("program {prog}")))?
        .try_into()
        .map_err(|e| bpf_error(&format!("program {prog}"), &e))?;
    p.attach(category, event)
        .map_err(|e| bpf_error(&format!("cannot attach to {category}:{event}"), &e))?;
    Ok(())
}

fn attach_raw(ebpf: &mut Ebpf, prog: &str, event: &str) -> Result<()> {
    let p: &mut RawTracePoint = ebpf
        .program_mut(prog)
        .ok_or_else(|| missing(&format!("program {prog}")))?
        .try_into()
        .map_err(|e| bpf_error(&format!("program {prog}"), &e))?;
    p.attach(event)
        .map_err(|e| bpf_error(&format!("cannot attach to the raw tracepoint {event}"), &e))?;
    Ok(())
}

fn fill_targets(ebpf: &mut Ebpf, s: &Setup) -> Result<()> {
    let mut targets: HashMap<&mut MapData, u32, u32> = ebpf
        .map_mut("targets")
        .ok_or_else(|| missing("map targets"))?
        .try_into()
        .map_err(|e| bpf_error("map targets", &e))?;
    for (tid, tgid) in (s.targets)()? {
        targets
            .insert(tid as u32, tgid as u32, 0)
            .map_err(|e| bpf_error("cannot fill map targets", &e))?;
    }
    // Every thread's process, as /proc has them now; task_newtask keeps
    // the map current from here on. A failed insert (a full map) only
    // leaves that target's process to /proc.
    let mut tgids: HashMap<&mut MapData, u32, u32> = ebpf
        .map_mut("tgids")
        .ok_or_else(|| missing("map tgids"))?
        .try_into()
        .map_err(|e| bpf_error("map tgids", &e))?;
    for p in whosent_agent::procfs::pids("/proc") {
        for t in whosent_agent::procfs::threads("/proc", p).unwrap_or_default() {
            let _ = tgids.insert(t as u32, p as u32, 0);
        }
    }
    let mut senders: HashMap<&mut MapData, u32, u32> = ebpf
        .map_mut("senders")
        .ok_or_else(|| missing("map senders"))?
        .try_into()
        .map_err(|e| bpf_error("map senders", &e))?;
    for &p in &s.query.sender_pids {
        senders
            .insert(p as u32, 1, 0)
            .map_err(|e| bpf_error("cannot fill map senders", &e))?;
    }
    Ok(())
}

/// Writes `ns` into the program's `pidns` map (index order matters:
/// the program returns 1 + the index it matched).
pub fn set_namespaces(ebpf: &mut Ebpf, ns: &[Ns]) -> Result<()> {
    let mut arr: Array<&mut MapData, PidnsKey> = ebpf
        .map_mut("pidns")
        .ok_or_else(|| missing("map pidns"))?
        .try_into()
        .map_err(|e| bpf_error("map pidns", &e))?;
    for (i, n) in ns.iter().enumerate().take(pidns::MAX) {
        arr.set(
            i as u32,
            PidnsKey {
                dev: n.dev,
                ino: n.ino,
            },
            0,
        )
        .map_err(|e| bpf_error("cannot fill map pidns", &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_becomes_the_programs_constants() {
        assert_eq!(sig_mask(&[]), 0);
        assert_eq!(sig_mask(&[9, 15, 64]), 1 << 8 | 1 << 14 | 1 << 63);
        let q = Query {
            pids: vec![3],
            sender_comm: Some("kill".into()),
            comm: Some("a-name-longer-than-15".into()),
            ..Default::default()
        };
        assert_eq!(filters(&q), FILTER_TARGET_PID | FILTER_SENDER_COMM);
        assert_eq!(&comm16(Some("kill"))[..5], b"kill\0");
        assert_eq!(ring_bytes(2048), 2 << 20);
        assert_eq!(ring_bytes(100), 128 << 10);
        assert_eq!((wake_bytes(2048), wake_bytes(64)), (64 << 10, 16 << 10));
    }
}
