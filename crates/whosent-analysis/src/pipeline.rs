//! Pages in, records out: each page is decoded with the kernel's own
//! layouts, its events held until the round's horizon says their order
//! is final, then applied in time order: task and uid events to the
//! process table, signals built into records, matched against the query
//! and handed to a [`Sink`] with the sender's lineage.

use crate::facts::FactSource;
#[cfg(feature = "exits")]
use crate::fate::Fates;
use crate::merge::{merge_runs, Horizon};
use crate::proctable::ProcTable;
use whosent_ftrace::fate_events::{FateEvent, FateLayouts, VictimFacts};
use whosent_ftrace::header_page::PageLayout;
use whosent_ftrace::page::{Page, PageError};
use whosent_ftrace::signal_generate::{RawSignal, SignalLayout};
use whosent_ftrace::task_events::{TaskEvent, TaskLayouts};
use whosent_ftrace::uid_events::{UidEvent, UidLayouts};
use whosent_proto::cause::Hints;
use whosent_proto::query::Query;
use whosent_proto::record::{
    lineage_json, Ancestor, ExitRec, Lost, OomVictim, Outcome, SignalEvent, Task,
};

/// This kernel's layouts, from its format files.
#[derive(Debug, Clone)]
pub struct Layouts {
    pub page: PageLayout,
    pub signal: SignalLayout,
    pub tasks: TaskLayouts,
    pub uid: UidLayouts,
    pub fate: FateLayouts,
}

/// A sender's lineage, walked and encoded once per sender and table
/// generation: in a storm from one sender, once.
#[derive(Debug, Default)]
pub struct Lineage {
    pub list: Vec<Ancestor>,
    /// `list` as its JSON array (`record::lineage_json`).
    pub json: String,
    key: Option<(i32, u64)>,
}

/// What the eBPF agent's program read of the running task at the moment
/// of a signal, in its context (issue #15): it outranks the table and
/// /proc, which may describe the task later, or not at all once it has
/// exited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Running {
    pub tgid: i32,
    /// The real uid.
    pub uid: u32,
    /// Its cgroup v2 id (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
    pub comm: String,
    /// Its pid per namespace, where the program could tell.
    pub nspid: Option<Vec<i32>>,
    /// The target's process, from the program's thread map.
    pub target_pid: Option<i32>,
    /// The task had passed `sched_process_exit`.
    pub exited: bool,
}

/// What the eBPF agent's program read, as its capture stream carries it.
impl From<whosent_stream::frame::Facts> for Running {
    fn from(f: whosent_stream::frame::Facts) -> Self {
        Running {
            tgid: f.tgid,
            uid: f.uid,
            cgroup_id: f.cgroup_id,
            comm: f.comm,
            nspid: (!f.nspid.is_empty()).then_some(f.nspid),
            target_pid: (f.target_tgid > 0).then_some(f.target_tgid),
            exited: f.exited,
        }
    }
}

/// What a signal carries of [`Running`]: with the `kernel-facts`
/// feature (the eBPF agent); otherwise a type with no value, so that
/// the ftrace agent carries no code for it.
#[cfg(feature = "kernel-facts")]
pub type Kernel = Option<Box<Running>>;
#[cfg(not(feature = "kernel-facts"))]
pub type Kernel = Option<std::convert::Infallible>;

/// Where the records go.
pub trait Sink {
    fn signal(&mut self, e: &SignalEvent, lineage: Option<&Lineage>);
    fn lost(&mut self, l: &Lost);
    /// A watched process ended (`--pid`, `--comm`).
    fn exit(&mut self, x: &ExitRec);
}

enum Item {
    /// With what the mark_victim that followed it said, for an OOM
    /// kill, and what the eBPF program read of the running task.
    Signal(u64, u32, RawSignal, Option<Box<VictimFacts>>, Kernel),
    Task(u64, TaskEvent),
    Uid(u64, UidEvent),
    Fate(u64, FateEvent),
}

impl Item {
    fn ts(&self) -> u64 {
        match self {
            Item::Signal(ts, ..) | Item::Task(ts, _) | Item::Uid(ts, _) | Item::Fate(ts, _) => *ts,
        }
    }
}

/// A SIGKILL that may be the OOM killer's: `mark_victim` follows it on
/// the same CPU (`__oom_kill_process`), SI_KERNEL since 4.20 and
/// SI_USER (SEND_SIG_FORCED) before.
fn oom_candidate(s: &RawSignal) -> bool {
    s.sig == whosent_proto::signal::SIGKILL && (s.code == 0x80 || s.code == 0)
}

/// How many events back a mark_victim looks for its SIGKILL: the OOM
/// killer writes them one after the other on the same CPU, with only the
/// victim's task lock taken between.
const VICTIM_LOOKBACK: usize = 64;

pub struct Pipeline {
    pub layouts: Layouts,
    pub query: Query,
    /// Report each sender's lineage.
    pub lineage: bool,
    pub count: Option<u64>,
    pub table: ProcTable,
    /// Signal records handed to the sink.
    pub signals: u64,
    /// signal_generate events taken, matched or not (decodable or not):
    /// what the recorder counts in a detached capture's `stat`, so that
    /// the host can tell how many of a deleted segment's it had read.
    pub generated: u64,
    /// Events the pages said were lost, per CPU.
    pub lost_reported: Vec<(u32, u64)>,
    /// `--count` was reached, or with `until_exit` every `--pid` target
    /// ended: later signals are not reported.
    pub done: bool,
    /// End when every `--pid` target has ended (`--until-exit`).
    pub until_exit: bool,
    /// `done` came from `until_exit`.
    pub targets_exited: bool,
    #[cfg(feature = "exits")]
    pub fates: Fates,
    /// An OOM candidate (cpu, ts) read with nothing after it on its CPU
    /// yet: its mark_victim may still be in the kernel's buffer. One is
    /// enough: OOM kills are serialized (`oom_lock`).
    open: Option<(u32, u64)>,
    /// Rounds the open candidates have held the others back.
    held_rounds: u8,
    /// The task that ran the OOM killer, at the last mark_victim.
    last_victim: Option<i32>,
    items: Vec<Item>,
    horizon: Horizon,
    release: u64,
    cache: Lineage,
}

/// Fills in a task from the process table; `comm` is what the trace
/// itself knew, used when the table does not know the task.
fn task(
    table: &mut ProcTable,
    src: &mut dyn FactSource,
    tid: i32,
    comm: Option<&str>,
    full: bool,
) -> Task {
    let Some(p) = table.lookup(src, tid) else {
        return Task {
            tid,
            comm: comm.unwrap_or("<...>").to_string(),
            ..Default::default()
        };
    };
    Task {
        pid: p.tgid,
        tid,
        comm: if p.comm.is_empty() {
            comm.unwrap_or("<...>").to_string()
        } else {
            p.comm.clone()
        },
        uid: if full { p.uid } else { None },
        cmdline: if full { p.cmdline.clone() } else { None },
        nspid: (!p.nstgid.is_empty()).then(|| p.nstgid.clone()),
        lineage: None,
        cgroup_id: None,
    }
}

impl Pipeline {
    pub fn new(layouts: Layouts, query: Query, lineage: bool, count: Option<u64>) -> Self {
        let mut table = ProcTable::new();
        table.uid_events = !layouts.uid.is_empty();
        #[cfg(feature = "exits")]
        let fates = Fates::new(&query.pids, query.comm.as_deref());
        Pipeline {
            layouts,
            query,
            lineage,
            count,
            table,
            signals: 0,
            generated: 0,
            lost_reported: Vec::new(),
            done: false,
            until_exit: false,
            targets_exited: false,
            #[cfg(feature = "exits")]
            fates,
            open: None,
            held_rounds: 0,
            last_victim: None,
            items: Vec::new(),
            horizon: Horizon::default(),
            release: 0,
            cache: Lineage::default(),
        }
    }

    /// Takes one page read from `cpu`; returns how many events it held.
    pub fn page(&mut self, cpu: u32, buf: &[u8], sink: &mut dyn Sink) -> Result<usize, PageError> {
        let page = Page::parse(&self.layouts.page, buf)?;
        if let Some(count) = page.missed {
            sink.lost(&Lost { cpu, count });
            match self.lost_reported.iter_mut().find(|l| l.0 == cpu) {
                Some(l) => l.1 += count.unwrap_or(0),
                None => self.lost_reported.push((cpu, count.unwrap_or(0))),
            }
        }
        let mut n = 0;
        for ev in page.events() {
            let ev = ev?;
            n += usize::from(self.record(cpu, ev.ts, ev.data, None));
        }
        Ok(n)
    }

    /// Takes one event record, laid out as its `format` file says
    /// (common fields first), read from `cpu` at `ts`: from a ring-buffer
    /// page, or as the eBPF agent's program copied it. `running`: what
    /// that program read of the running task at a signal. Returns
    /// whether it had an event id.
    pub fn record(&mut self, cpu: u32, ts: u64, data: &[u8], running: Kernel) -> bool {
        self.horizon.event(cpu, ts);
        let Some(id) = data.get(0..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else {
            return false;
        };
        let l = &self.layouts;
        // Anything after an OOM candidate on its CPU settles it.
        if self.open.is_some_and(|(c, _)| c == cpu) {
            self.open = None;
        }
        if id == l.signal.id {
            self.generated += 1;
            if let Some(s) = l.signal.decode(data) {
                if oom_candidate(&s) && l.fate.has_victim() {
                    self.open = Some((cpu, ts));
                }
                self.items.push(Item::Signal(ts, cpu, s, None, running));
            }
        } else if let Some(t) = l.tasks.decode(id, data) {
            self.items.push(Item::Task(ts, t));
        } else if let Some(u) = l.uid.decode(id, data) {
            self.items.push(Item::Uid(ts, u));
        } else if let Some(f) = l.fate.decode(id, data) {
            if let FateEvent::MarkVictim { tid, facts, .. } = &f {
                let sigkill =
                    self.items
                        .iter_mut()
                        .rev()
                        .take(VICTIM_LOOKBACK)
                        .find_map(|i| match i {
                            Item::Signal(_, c, s, v, _)
                                if *c == cpu && s.target_tid == *tid && oom_candidate(s) =>
                            {
                                Some(v)
                            }
                            _ => None,
                        });
                if let Some(v) = sigkill {
                    *v = Some(Box::new(facts.clone()));
                }
            }
            self.items.push(Item::Fate(ts, f));
        }
        true
    }

    /// Ends a drain round over `cpus` (`cut`: read only up to the page
    /// limit) and applies what is now in final order.
    pub fn end_round(
        &mut self,
        cpus: &[u32],
        cut: &[u32],
        src: &mut dyn FactSource,
        sink: &mut dyn Sink,
    ) {
        self.release = self.horizon.end_round(cpus, cut);
        self.process(false, src, sink);
    }

    /// Applies everything held back: the capture has ended.
    pub fn finish(&mut self, src: &mut dyn FactSource, sink: &mut dyn Sink) {
        self.process(true, src, sink);
    }

    /// Events read but not yet applied.
    pub fn held(&self) -> usize {
        self.items.len()
    }

    fn process(&mut self, last: bool, src: &mut dyn FactSource, sink: &mut dyn Sink) {
        merge_runs(&mut self.items, Item::ts);
        let mut horizon = if last { u64::MAX } else { self.release };
        // An OOM candidate whose mark_victim may not have been read
        // holds back itself and what follows, for two rounds at most.
        match self.open {
            Some((_, ts)) if !last && self.held_rounds < 2 && ts <= horizon => {
                self.held_rounds += 1;
                horizon = ts.saturating_sub(1);
            }
            _ => {
                self.held_rounds = 0;
                self.open = None;
            }
        }
        let ready = self.items.partition_point(|i| i.ts() <= horizon);
        let later = self.items.split_off(ready);
        for item in std::mem::replace(&mut self.items, later) {
            match item {
                Item::Task(ts, t) => self.task(ts, &t, src, sink),
                Item::Uid(_, u) => self.table.apply_uid(&u),
                Item::Fate(_, f) => self.fate(&f, src),
                Item::Signal(..) if self.done => {}
                Item::Signal(ts, cpu, s, victim, k) => {
                    self.signal(ts, cpu, s, (victim, k), src, sink)
                }
            }
        }
    }

    #[cfg(not(feature = "exits"))]
    fn task(&mut self, ts: u64, t: &TaskEvent, src: &mut dyn FactSource, _: &mut dyn Sink) {
        self.table.apply(src, ts, t);
    }

    #[cfg(feature = "exits")]
    fn task(&mut self, ts: u64, t: &TaskEvent, src: &mut dyn FactSource, sink: &mut dyn Sink) {
        if let TaskEvent::Exec { tid, .. } = *t {
            self.fates.exec(tid);
        }
        let TaskEvent::Exit {
            tid, group_dead, ..
        } = *t
        else {
            return self.table.apply(src, ts, t);
        };
        let (tgid, comm) = match self.table.get(tid) {
            Some(p) => (p.tgid.unwrap_or(tid), p.comm.clone()),
            None => (tid, String::new()),
        };
        self.table.apply(src, ts, t);
        // The process ended with its last thread (`group_dead`, 6.x);
        // older kernels do not say, and the leader's exit stands in.
        if !self.fates.active() || !group_dead.unwrap_or(tid == tgid) {
            return;
        }
        let comm = match (comm.is_empty(), t) {
            (true, TaskEvent::Exit { comm, .. }) => comm.clone(),
            _ => comm,
        };
        if let Some(x) = self.fates.ended(ts, tgid, &comm) {
            if !self.done {
                sink.exit(&x);
            }
            if self.until_exit && self.fates.all_ended() {
                self.done = true;
                self.targets_exited = true;
            }
        }
    }

    fn fate(&mut self, f: &FateEvent, src: &mut dyn FactSource) {
        #[cfg(feature = "exits")]
        let mut who = |tid: i32| match self.table.lookup(src, tid) {
            Some(p) => (p.tgid.unwrap_or(tid), p.comm.clone()),
            None => (tid, String::new()),
        };
        #[cfg(not(feature = "exits"))]
        let _ = src;
        match *f {
            FateEvent::MarkVictim { running, .. } => {
                // Its SIGKILL was told by looking ahead; the ones after
                // it, to the processes sharing the victim's memory, are
                // the same OOM kill.
                self.last_victim = Some(running);
            }
            #[cfg(feature = "exits")]
            FateEvent::FatalDeliver { tid, sig, .. } => {
                let (pid, comm) = who(tid);
                self.fates.fatal(pid, &comm, sig);
            }
            #[cfg(feature = "exits")]
            FateEvent::ExitGroup { tid, status } => {
                let (pid, comm) = who(tid);
                self.fates.exit_group(pid, &comm, status);
            }
            #[cfg(not(feature = "exits"))]
            _ => {}
        }
    }

    fn signal(
        &mut self,
        ts: u64,
        cpu: u32,
        s: RawSignal,
        // What mark_victim said, what the eBPF program read.
        (victim, kernel): (Option<Box<OomVictim>>, Kernel),
        src: &mut dyn FactSource,
        sink: &mut dyn Sink,
    ) {
        let mut running = task(&mut self.table, src, s.running_tid, None, true);
        if s.running_tid == 0 {
            // The idle task: pid 0 has no /proc entry.
            running.pid = Some(0);
            running.comm = format!("swapper/{cpu}");
        }
        let target = task(
            &mut self.table,
            src,
            s.target_tid,
            Some(&s.target_comm),
            false,
        );
        let mut target = target;
        let mut exited_in_kernel = false;
        #[cfg(not(feature = "kernel-facts"))]
        let _ = (kernel, &mut exited_in_kernel, &mut target);
        #[cfg(feature = "kernel-facts")]
        if let Some(k) = kernel {
            // Read in the sender's context at the moment of the signal:
            // right even for a sender that is gone by now, which the
            // table or /proc may no longer know.
            running.pid = Some(k.tgid);
            running.uid = Some(k.uid);
            running.cgroup_id = Some(k.cgroup_id);
            if !k.comm.is_empty() {
                running.comm = k.comm;
            }
            if k.nspid.is_some() {
                running.nspid = k.nspid;
            }
            target.pid = target.pid.or(k.target_pid);
            exited_in_kernel = k.exited;
        }
        let mut e = SignalEvent {
            ts_ns: ts,
            cpu,
            sig: s.sig,
            code: s.code,
            errno: s.errno,
            group: s.group,
            result: s.result.map(Outcome::from_raw),
            context: s.context,
            running,
            target: Task {
                comm: s.target_comm,
                ..target
            },
            cause: None,
            oom: None,
        };
        // The rest of one OOM kill: SIGKILL SI_KERNEL from the same
        // task to the processes that share the victim's memory.
        let follows_victim = self
            .last_victim
            .is_some_and(|t| t == s.running_tid && s.code == 0x80 && s.sig == 9);
        let running_exited =
            exited_in_kernel || self.table.get(s.running_tid).is_some_and(|p| p.exited);
        e.classify(Hints {
            oom: victim.is_some() || follows_victim,
            running_exited,
        });
        if victim.is_none() && !follows_victim {
            self.last_victim = None;
        }
        e.oom = victim;
        #[cfg(feature = "exits")]
        self.fates.signal(&e);
        if !self.query.matches(&e) {
            return;
        }
        // Only for matches: the walk costs a lookup per parent.
        let pid = e
            .running
            .pid
            .filter(|_| self.lineage && e.sender().is_some());
        if let Some(pid) = pid {
            let key = Some((pid, self.table.generation));
            if self.cache.key != key {
                let list = self.table.lineage(src, pid);
                self.cache = Lineage {
                    json: lineage_json(&list),
                    list,
                    key: Some((pid, self.table.generation)),
                };
            }
        }
        sink.signal(&e, pid.map(|_| &self.cache));
        self.signals += 1;
        self.done = self.count.is_some_and(|c| self.signals >= c);
    }
}
