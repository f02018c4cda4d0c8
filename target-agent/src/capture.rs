//! Setting up a capture: tracefs, the private instance, the layouts
//! read from the kernel's format files, the filter, the events, the
//! readers. Every error path drops the instance, which removes it.

use crate::args::Options;
use crate::error::{AgentError, Result};
use crate::instance::{self, Instance};
use crate::reader::Readers;
use crate::uprobe::{self, ArgvProbe};
use crate::{procfs, tracefs};
use std::fs;
use std::path::Path;
use whosent_ftrace::fate_events::{FateLayouts, DELIVER_FATAL_FILTER, FATE_EVENTS};
use whosent_ftrace::filter;
use whosent_ftrace::format::EventFormat;
use whosent_ftrace::header_page::PageLayout;
use whosent_ftrace::signal_generate::SignalLayout;
use whosent_ftrace::task_events::TaskLayouts;
use whosent_ftrace::uid_events::{UidLayouts, UID_EVENTS};
use whosent_stream::frame::{role, ProcFacts};

/// Events kept in the same instance beside the signals: the task
/// lifecycle for the process table (a kernel without some of them just
/// names fewer exited tasks), then [`FATE_EVENTS`]: OOM kills always, and
/// how a target died only when one is named (`--pid`, `--comm`).
const EVENTS: [(&str, u8); 7] = [
    ("task/task_newtask", role::TASK),
    ("task/task_rename", role::TASK),
    ("sched/sched_process_exec", role::TASK),
    ("sched/sched_process_exit", role::TASK),
    (FATE_EVENTS[0], role::FATE),
    (FATE_EVENTS[1], role::FATE),
    (FATE_EVENTS[2], role::FATE),
];

pub struct Capture {
    pub tracefs: String,
    pub signal: SignalLayout,
    pub tasks: TaskLayouts,
    pub uid: UidLayouts,
    pub fate: FateLayouts,
    pub page: PageLayout,
    /// The kernel's texts behind the layouts, for the capture stream:
    /// (FORMAT role, text).
    pub formats: Vec<(u8, Vec<u8>)>,
    pub filter: String,
    /// What /proc said at the start about the watched processes and,
    /// with lineage, every process (the snapshot).
    pub known: Vec<ProcFacts>,
    // Field order matters: readers must close before the instance is
    // removed, the instance before the probe, and fields drop in
    // declaration order.
    pub readers: Readers,
    pub instance: Instance,
    pub argv_probe: Option<ArgvProbe>,
}

/// Reads a tracefs file in large reads: some (events/header_page) answer
/// only a read at offset 0 and return EOF to the small probe reads that
/// `fs::read` starts with.
fn read_whole(p: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = fs::File::open(p)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// One function for the three places, each of which was its own code in
/// the agent (docs/agent-size.md).
fn bad_format(message: String) -> AgentError {
    AgentError::new("bad_format", message, "report this with the kernel release")
}

fn read_format(root: &str, rel: &str) -> Result<(EventFormat, Vec<u8>)> {
    let p = Path::new(root).join(rel);
    let bytes =
        read_whole(&p).map_err(|e| AgentError::io("cannot read", &p.display().to_string(), e))?;
    let f = EventFormat::parse(bytes.as_slice())
        .map_err(|e| bad_format(format!("{}: {e}", p.display())))?;
    Ok((f, bytes))
}

/// Thread ids of each process named by `flag`; a pid that does not
/// exist is an error (it would otherwise silently match nothing).
fn threads_of(flag: &str, pids: &[i32]) -> Result<Vec<i32>> {
    let mut all = Vec::new();
    for &p in pids {
        let tids = procfs::threads("/proc", p).ok_or_else(|| {
            AgentError::new(
                "no_such_process",
                format!("{flag} {p}: no such process"),
                "check the pid with `ps` or `pidof NAME`; to wait for a program that has not started yet, use --comm",
            )
        })?;
        all.extend(tids);
    }
    Ok(all)
}

pub fn start(o: &Options) -> Result<Capture> {
    let target_tids = threads_of("--pid", &o.query.pids)?;
    let sender_tids = threads_of("--sender-pid", &o.query.sender_pids)?;
    let root = tracefs::locate(o.tracefs.as_deref())?;
    // Plain loops and extends rather than iterator chains in this
    // function: each chain is its own code in the agent
    // (docs/agent-size.md).
    let mut stale = instance::remove_stale(&root);
    stale.extend(uprobe::remove_stale(&root));
    for name in stale {
        crate::note!("whosent-agent: removed stale {name} (its owner is gone)");
    }
    if o.clean {
        // `--clean` is this and no more; nothing of ours exists yet.
        std::process::exit(0)
    }
    let (signal_fmt, text) = read_format(&root, "events/signal/signal_generate/format")?;
    let mut formats = vec![(role::SIGNAL, text)];
    let signal = SignalLayout::new(&signal_fmt).map_err(|e| bad_format(e.to_string()))?;
    let header = Path::new(&root).join("events/header_page");
    let header = read_whole(&header)
        .map_err(|e| AgentError::io("cannot read", &header.display().to_string(), e))?;
    let page = PageLayout::parse(header.as_slice()).map_err(|e| bad_format(e.to_string()))?;
    formats.push((role::HEADER_PAGE, header));

    let instance = Instance::create(&root)?;
    instance.set("buffer_size_kb", &o.buffer_kb.to_string())?;
    // Wake the reader on any data (Linux 6.x defaults to half full).
    let _ = instance.set("buffer_percent", "0");
    let filter = filter::build(&o.query);
    instance.set_filter("signal/signal_generate", &filter)?;

    let mut tasks = TaskLayouts::default();
    let mut fate = FateLayouts::default();
    // The deaths are told by whosent-deploy's pipeline, from the stream.
    let watch = o.stream && (!o.query.pids.is_empty() || o.query.comm.is_some());
    for (ev, r) in EVENTS {
        if r == role::FATE && !watch && ev != FATE_EVENTS[0] {
            continue;
        }
        let Ok((f, text)) = read_format(&root, &instance::event_file(ev, "format")) else {
            continue;
        };
        // The agent decodes mark_victim itself (standalone); the deaths'
        // events only travel in the stream. signal_deliver only for the
        // deaths: a fatal default action.
        let ok = match r {
            role::TASK => tasks.add(&f).is_ok(),
            _ if ev == FATE_EVENTS[0] => fate.add(&f).is_ok(),
            _ => {
                ev != FATE_EVENTS[1]
                    || instance
                        .set(&instance::event_file(ev, "filter"), DELIVER_FATAL_FILTER)
                        .is_ok()
            }
        };
        if ok {
            instance.set(&instance::event_file(ev, "enable"), "1")?;
            formats.push((r, text));
        }
    }
    // Uid changes, where the kernel has syscall events: all six or none,
    // since an exit without its enter (or the reverse) tells nothing.
    let mut uid = UidLayouts::default();
    let mut uid_formats = Vec::new();
    for ev in UID_EVENTS {
        match read_format(&root, &instance::event_file(ev, "format")) {
            Ok(f) => uid_formats.push(f),
            Err(_) => break,
        }
    }
    if uid_formats.len() == UID_EVENTS.len()
        && uid_formats.iter().all(|(f, _)| uid.add(f).is_ok())
        && UID_EVENTS.iter().all(|ev| {
            instance
                .set(&instance::event_file(ev, "enable"), "1")
                .is_ok()
        })
    {
        for (_, t) in uid_formats {
            formats.push((role::TASK, t));
        }
    } else {
        uid = UidLayouts::default();
        let _ = instance.set("events/syscalls/enable", "0");
    }
    let readers = Readers::open(&instance.dir)?;
    instance.set("events/signal/signal_generate/enable", "1")?;

    // Learn the watched processes now: a SIGKILL target is usually gone
    // by the time its event is read.
    let mut tids = target_tids;
    tids.extend(sender_tids);
    let mut known = Vec::new();
    for t in tids {
        known.extend(procfs::facts("/proc", t));
    }
    Ok(Capture {
        tracefs: root,
        signal,
        tasks,
        uid,
        fate,
        page,
        formats,
        filter,
        known,
        readers,
        instance,
        argv_probe: None,
    })
}

impl Capture {
    /// What lineage needs beyond the signals, done before `ready` so that
    /// `ready` still means everything is live (it costs ~20 ms: the
    /// kernel patches the loader in every process that maps it to enable
    /// the uprobe; `--no-lineage` skips it). The task events are on
    /// already, so every process is either in the /proc snapshot or born
    /// in the trace.
    pub fn add_lineage(&mut self) {
        self.argv_probe = ArgvProbe::create(&self.tracefs, &self.instance).and_then(|mut p| {
            let (f, text) =
                read_format(&self.tracefs, &instance::event_file(&p.event, "format")).ok()?;
            self.tasks.add_argv(&f).ok()?;
            self.formats.push((role::ARGV, text));
            p.enable(&self.instance).ok()?;
            Some(p)
        });
        if self.argv_probe.is_none() {
            crate::note!("whosent-agent: note: no argv uprobe here; command lines of programs that exit at once may be missing");
        }
        self.known.extend(procfs::snapshot());
    }
}
