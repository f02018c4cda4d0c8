//! The Markdown report: machine, goals (met or missed, with the reason
//! the harness can see), the capture table per workload, ratios against
//! trace-cmd, ready times, the board, agent sizes and SystemTap.

use crate::goals;
use crate::local::{ReadyRow, RunRow};
use crate::machine::Machine;
use crate::sizes::AgentBuild;
use crate::storm::{StormResult, Workload};
use std::fmt::Write;
use std::time::Duration;

pub struct Report {
    pub smoke: bool,
    pub machine: Machine,
    pub load_after: String,
    pub total: Duration,
    pub workloads: Vec<Workload>,
    pub baselines: Vec<(String, Vec<StormResult>)>,
    pub rows: Vec<RunRow>,
    pub unavailable: Vec<(String, String)>,
    pub ready: Vec<ReadyRow>,
    pub sizes: Vec<AgentBuild>,
    pub board: Result<crate::remote::Figures, String>,
    /// The tool label of the shipped agent, whose rows the goals use.
    pub shipped: String,
    pub peer_ref: String,
    pub buffer_kb: u64,
    /// Hand-written analysis (scripts/bench/notes.md), appended as is.
    pub analysis: Option<String>,
}

pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

pub fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    (!v.is_empty()).then(|| v[v.len() / 2])
}

pub fn spread(v: &[Duration]) -> String {
    match (median(v), v.iter().min(), v.iter().max()) {
        (Some(m), Some(a), Some(b)) if v.len() > 1 => {
            format!("{} ({}–{}, n={})", ms(m), ms(*a), ms(*b), v.len())
        }
        (Some(m), _, _) => ms(m),
        _ => "–".into(),
    }
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

impl Report {
    pub fn baseline(&self, workload: &str) -> Option<Duration> {
        let (_, v) = self.baselines.iter().find(|(w, _)| w == workload)?;
        median(&v.iter().map(|r| r.elapsed).collect::<Vec<_>>())
    }

    pub fn row(&self, tool: &str, workload: &str) -> Option<&RunRow> {
        self.rows
            .iter()
            .find(|r| r.tool == tool && r.workload == workload)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(s, "# Benchmarks\n");
        if self.smoke {
            let _ = writeln!(s, "**Smoke run** (`scripts/bench.sh --smoke`): small storms that only prove the harness works; the figures mean nothing.\n");
        } else {
            let _ = writeln!(s, "Written by `scripts/bench.sh` (crate `crates/whosent-bench`) in one run; do not edit by hand, run it again. The analysis at the end comes from `scripts/bench/notes.md`.\n");
        }
        let _ = writeln!(s, "## Machine\n");
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(s, "| date | {} |", m.date);
        let _ = writeln!(s, "| CPUs (nproc) | {} × {} |", m.nproc, m.cpu);
        let _ = writeln!(s, "| kernel | {} |", m.kernel);
        let _ = writeln!(s, "| memory | {} MiB |", m.mem_mib);
        let _ = writeln!(
            s,
            "| load average (1, 5, 15 min) | {} before, {} after: other work shared the machine |",
            m.load_before, self.load_after
        );
        let _ = writeln!(s, "| whosent | {} |", m.git);
        for (k, v) in &m.versions {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        let _ = writeln!(s, "| run time | {:.0} s |\n", self.total.as_secs_f64());
        goals::render(self, &mut s);
        self.render_pipeline(&mut s);
        self.render_capture(&mut s);
        self.render_ratios(&mut s);
        self.render_ready(&mut s);
        self.render_board(&mut s);
        self.render_sizes(&mut s);
        self.render_stap(&mut s);
        self.render_method(&mut s);
        if let Some(a) = &self.analysis {
            let _ = writeln!(s, "{}", a.trim_end());
        }
        s
    }

    fn render_capture(&self, s: &mut String) {
        let _ = writeln!(s, "## Capture, cost and footprint\n");
        let _ = writeln!(s, "Each workload ran untraced first (the baseline: median of {} runs), then once under each tool, filtered to the storm's receiver. *captured* counts the events for the receiver that the tool delivered (streamed lines, or `trace-cmd report` lines); *kernel lost* is what the tool's instance's per-CPU `stats` counted as overrun or dropped; *unread* is what was still in its buffer when it stopped. Per-CPU buffers: {} KiB for every ftrace-based tool.\n",
            self.baselines.first().map_or(0, |(_, v)| v.len()), self.buffer_kb);
        for w in &self.workloads {
            let base = self.baseline(&w.name);
            let _ = writeln!(s, "### {}\n", w.name);
            let _ = writeln!(
                s,
                "Untraced: {} for the sender{}.\n",
                base.map_or("–".into(), ms),
                self.baselines
                    .iter()
                    .find(|(n, _)| *n == w.name)
                    .map(|(_, v)| format!(
                        " ({})",
                        v.iter()
                            .map(|r| ms(r.elapsed))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .unwrap_or_default()
            );
            let _ = writeln!(s, "| tool | sent | captured | captured/sent | lost (tool said) | kernel lost / unread | sender time | slowdown | tool CPU | CPU per event | peak RSS | output per event | notes |");
            let _ = writeln!(
                s,
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
            );
            for r in self.rows.iter().filter(|r| r.workload == w.name) {
                self.render_row(s, r, base);
            }
            for (t, why) in &self.unavailable {
                let _ = writeln!(s, "| {t} | | | | | | | | | | | | not run: {why} |");
            }
            let _ = writeln!(s);
        }
    }

    fn render_row(&self, s: &mut String, r: &RunRow, base: Option<Duration>) {
        let Some(st) = r.storm else {
            let _ = writeln!(
                s,
                "| {} | | | | | | | | | | | | failed: {} |",
                r.tool,
                r.error.as_deref().unwrap_or("?")
            );
            return;
        };
        let Some(o) = &r.outcome else { return };
        let mut notes = Vec::new();
        if let Some(e) = o.error.as_ref().or(r.error.as_ref()) {
            notes.push(format!("**{e}**"));
        }
        if o.other > 0 {
            notes.push(format!("{} events for other processes", o.other));
        }
        if o.lost_unknown {
            notes.push("said it lost events (count unknown)".into());
        }
        if let Some(d) = r.drain {
            if d > Duration::from_millis(50) {
                notes.push(format!("caught up {} after the storm", ms(d)));
            }
        }
        if let (Some(h), true) = (o.hwm_tree_kb, o.processes > 1) {
            notes.push(format!("{} processes, Σ VmHWM {}", o.processes, mib(h)));
        }
        notes.extend(
            o.notes
                .iter()
                .filter(|n| !n.starts_with("instance "))
                .cloned(),
        );
        let k = o
            .kstats
            .map_or("–".into(), |k| format!("{} / {}", k.lost(), k.entries));
        let slow = base.map_or("–".into(), |b| {
            format!("{:.2}×", st.elapsed.as_secs_f64() / b.as_secs_f64())
        });
        let per = if o.matched > 0 {
            format!(
                "{:.2} µs",
                o.exit.cpu().as_secs_f64() * 1e6 / o.matched as f64
            )
        } else {
            "–".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2}% | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.tool,
            st.sent,
            o.matched,
            100.0 * o.matched as f64 / st.sent.max(1) as f64,
            o.lost_reported.map_or("–".into(), |n| n.to_string()),
            k,
            ms(st.elapsed),
            slow,
            ms(o.exit.cpu()),
            per,
            mib(o.own_hwm_kb.unwrap_or(o.exit.maxrss_kb)),
            o.bytes_per_event
                .map_or("–".into(), |b| format!("{b:.0} B")),
            notes.join("; ")
        );
    }

    fn render_ratios(&self, s: &mut String) {
        let _ = writeln!(s, "## whosent against {}\n", self.peer_ref);
        let _ = writeln!(s, "Ratios whosent ÷ {} on the same workload (below 1 is better for whosent, except *captured*).\n", self.peer_ref);
        let _ = writeln!(
            s,
            "| workload | captured | slowdown | tool CPU | peak RSS |\n|---|---:|---:|---:|---:|"
        );
        for w in &self.workloads {
            let (Some(a), Some(b)) = (
                self.row(&self.shipped, &w.name),
                self.row(&self.peer_ref, &w.name),
            ) else {
                continue;
            };
            let (Some(ao), Some(bo), Some(asr), Some(bsr)) =
                (&a.outcome, &b.outcome, a.storm, b.storm)
            else {
                continue;
            };
            let q = |x: f64, y: f64| {
                if y > 0.0 {
                    format!("{:.2}", x / y)
                } else {
                    "–".into()
                }
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                w.name,
                q(ao.matched as f64, bo.matched as f64),
                q(asr.elapsed.as_secs_f64(), bsr.elapsed.as_secs_f64()),
                q(ao.exit.cpu().as_secs_f64(), bo.exit.cpu().as_secs_f64()),
                q(ao.exit.maxrss_kb as f64, bo.exit.maxrss_kb as f64),
            );
        }
        let _ = writeln!(s);
    }

    fn render_ready(&self, s: &mut String) {
        let _ = writeln!(s, "## Ready, locally\n");
        let _ = writeln!(s, "From the command until the tool first reported a probe signal: a `sleep` sent SIGWINCH every {} ms, the tool filtered to it. For trace-cmd, which writes a file, \"caught\" is the probe's event appearing in its instance's per-CPU `stats`; for `cat trace_pipe` the command includes the harness's instance set-up. Median (min–max).\n", crate::local::PROBE_EVERY.as_millis());
        let _ = writeln!(s, "| tool | until the probe was caught | until its own ready line | |\n|---|---:|---:|---|");
        for r in &self.ready {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                r.tool,
                spread(&r.caught),
                spread(&r.ready_line),
                r.error
                    .as_deref()
                    .map(|e| format!("**{e}**"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(s);
    }

    fn render_method(&self, s: &mut String) {
        let _ = writeln!(s, "## How the figures are taken\n");
        let _ = writeln!(s, "- **Storm:** `signal_storm` (crates/whosent-testbins) forks a receiver, prints its pid and waits; the tool is started filtered to that pid and the storm begins once the tool is ready. *sender time* is the storm's own `elapsed_ns` for its kill() loop; *slowdown* divides it by the untraced median. Noise is a second, unrelated pair sending as many SIGUSR2 at the same time.");
        let _ = writeln!(s, "- **Issue #11's rows:** `{}` runs the shipped agent as `whosent-agent --stream --pid R` with its stdout into a file (ready = its READY frame is in the file; progress = the file growing), then decodes the file with `whosent-deploy parse --json`; its peak RSS is the agent's own VmHWM, read from /proc just before it is stopped (`ru_maxrss` of a child would include the harness's RSS before exec). `{}` is `whosent-deploy --host local --agent <shipped> --json --pid R` (it runs the agent with `--stream` and decodes on this side); its CPU is whosent-deploy's plus the agent's (reaped by it).", crate::plan::RECORDER, crate::plan::PIPELINE);
        let _ = writeln!(s, "- **Tools:** whosent = `whosent-agent --pid R` (the shipped build from `whosent-deploy build --target x86_64`, and the workspace's release build), its JSON Lines read from a pipe; `trace-cmd record --no-filter -B <instance> -d -b {} -e signal:signal_generate -f 'pid == R'` (its instance is removed afterwards; events counted with `trace-cmd report`); `cat trace_pipe` on a private instance set up like whosent's; `bpftrace` with a per-event `printf` (its own perf buffers, default size).", self.buffer_kb);
        let _ = writeln!(s, "- **After the storm** each tool runs until it makes no progress for 0.6 s (it has caught up), then gets SIGINT (SIGTERM for cat).");
        let _ = writeln!(s, "- **CPU and peak RSS** come from `wait4()`'s rusage of the tool's process: user+sys including its waited-for children, and `ru_maxrss` (the VmHWM of its largest process). *CPU per event* divides by the events captured, so set-up and tear-down are included.");
        let _ = writeln!(s, "- **Instances:** every ftrace instance the harness or a peer creates is private (`instances/<tag>-*`) and removed, also on errors (`scripts/bench.sh` traps); whosent creates and removes its own.");
        let _ = writeln!(s);
    }
}
