//! Pages in, records out: each page is decoded with the kernel's own
//! layouts, its events held until the round's horizon says their order
//! is final, then applied in time order: task and uid events to the
//! process table, signals built into records, matched against the query
//! and handed to a [`Sink`] with the sender's lineage.

use crate::facts::FactSource;
use crate::merge::{merge_runs, Horizon};
use crate::proctable::ProcTable;
use whosent_ftrace::header_page::PageLayout;
use whosent_ftrace::page::{Page, PageError};
use whosent_ftrace::signal_generate::{RawSignal, SignalLayout};
use whosent_ftrace::task_events::{TaskEvent, TaskLayouts};
use whosent_ftrace::uid_events::{UidEvent, UidLayouts};
use whosent_proto::query::Query;
use whosent_proto::record::{lineage_json, Ancestor, Lost, Outcome, SignalEvent, Task};

/// This kernel's layouts, from its format files.
#[derive(Debug, Clone)]
pub struct Layouts {
    pub page: PageLayout,
    pub signal: SignalLayout,
    pub tasks: TaskLayouts,
    pub uid: UidLayouts,
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

/// Where the records go.
pub trait Sink {
    fn signal(&mut self, e: &SignalEvent, lineage: Option<&Lineage>);
    fn lost(&mut self, l: &Lost);
}

enum Item {
    Signal(u64, u32, RawSignal),
    Task(u64, TaskEvent),
    Uid(u64, UidEvent),
}

impl Item {
    fn ts(&self) -> u64 {
        match self {
            Item::Signal(ts, ..) | Item::Task(ts, _) | Item::Uid(ts, _) => *ts,
        }
    }
}

pub struct Pipeline {
    pub layouts: Layouts,
    pub query: Query,
    /// Report each sender's lineage.
    pub lineage: bool,
    pub count: Option<u64>,
    pub table: ProcTable,
    /// Signal records handed to the sink.
    pub signals: u64,
    /// Events the pages said were lost, per CPU.
    pub lost_reported: Vec<(u32, u64)>,
    /// `--count` was reached: later signals are not reported.
    pub done: bool,
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
    }
}

impl Pipeline {
    pub fn new(layouts: Layouts, query: Query, lineage: bool, count: Option<u64>) -> Self {
        let mut table = ProcTable::new();
        table.uid_events = !layouts.uid.is_empty();
        Pipeline {
            layouts,
            query,
            lineage,
            count,
            table,
            signals: 0,
            lost_reported: Vec::new(),
            done: false,
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
            self.horizon.event(cpu, ev.ts);
            let Some(id) = ev.id() else { continue };
            n += 1;
            let l = &self.layouts;
            if id == l.signal.id {
                if let Some(s) = l.signal.decode(ev.data) {
                    self.items.push(Item::Signal(ev.ts, cpu, s));
                }
            } else if let Some(t) = l.tasks.decode(id, ev.data) {
                self.items.push(Item::Task(ev.ts, t));
            } else if let Some(u) = l.uid.decode(id, ev.data) {
                self.items.push(Item::Uid(ev.ts, u));
            }
        }
        Ok(n)
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
        let horizon = if last { u64::MAX } else { self.release };
        let ready = self.items.partition_point(|i| i.ts() <= horizon);
        let later = self.items.split_off(ready);
        for item in std::mem::replace(&mut self.items, later) {
            match item {
                Item::Task(ts, t) => self.table.apply(src, ts, &t),
                Item::Uid(_, u) => self.table.apply_uid(&u),
                Item::Signal(..) if self.done => {}
                Item::Signal(ts, cpu, s) => self.signal(ts, cpu, s, src, sink),
            }
        }
    }

    fn signal(
        &mut self,
        ts: u64,
        cpu: u32,
        s: RawSignal,
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
        let e = SignalEvent {
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
