//! What a run measures: the agents per target, the tools in the line-up
//! and the workloads, full or smoke.

use crate::cli::{say, Opts};
use crate::sizes::{self, AgentBuild};
use crate::storm::Workload;
use crate::tools::{
    bpftrace::Bpftrace, catpipe::CatPipe, recorder::Recorder, tracecmd::TraceCmd, whosent::Whosent,
    Tool,
};
use std::path::{Path, PathBuf};

/// Per-CPU ring buffer for every ftrace-based tool: whosent's default.
pub const BUFFER_KB: u64 = 2048;
/// The label of the shipped agent's rows, which the goals judge.
pub const SHIPPED: &str = "whosent";
/// The peer the ratios compare with.
pub const PEER: &str = "trace-cmd record";
/// Issue #11's recorder alone: the shipped agent with `--stream`.
pub const RECORDER: &str = "whosent-agent --stream (recorder alone)";
/// Issue #15's eBPF agent (`--backend ebpf`), the workspace's build.
pub const EBPF: &str = "whosent-ebpf-agent (--backend ebpf)";
/// Issue #11's whole local pipeline, as the product runs it.
pub const PIPELINE: &str = "whosent-deploy --host local";

/// The agent that ships for each target (`whosent-deploy build`).
pub fn agents(deploy: &Path, smoke: bool) -> Vec<AgentBuild> {
    let targets: &[&str] = if smoke {
        &["x86_64"]
    } else {
        &["x86_64", "aarch64", "armv7"]
    };
    targets
        .iter()
        .map(|t| {
            say(&format!("agent for {t}"));
            sizes::build(deploy, t)
        })
        .collect()
}

pub fn agent_path(agents: &[AgentBuild], target: &str) -> Option<PathBuf> {
    agents
        .iter()
        .find(|b| b.target == target)
        .and_then(|b| b.path.clone())
}

/// A tool that cannot run here: its name and why.
pub type Unavailable = (String, String);

/// The tools that can run here, and why the others cannot.
pub fn lineup(o: &Opts, shipped: &Path, deploy: &Path) -> (Vec<Box<dyn Tool>>, Vec<Unavailable>) {
    // The workspace's own build of the agent, for comparison with the
    // size-optimized one that ships.
    let profile = o
        .bin_dir
        .file_name()
        .map_or("workspace".into(), |p| p.to_string_lossy().into_owned());
    let candidates: Vec<Box<dyn Tool>> = vec![
        Box::new(Recorder {
            label: RECORDER.into(),
            agent: shipped.to_path_buf(),
            deploy: deploy.to_path_buf(),
        }),
        Box::new(Whosent::deploy_local(
            PIPELINE,
            deploy.to_path_buf(),
            shipped.to_path_buf(),
        )),
        Box::new(Whosent::agent(SHIPPED, shipped.to_path_buf())),
        Box::new(Whosent::agent(
            &format!("whosent ({profile} build)"),
            o.bin_dir.join("whosent-agent"),
        )),
        // JSON Lines like the ftrace agent's, one ring buffer of the
        // same 2048 KiB (its --buffer-kb default).
        Box::new(Whosent::agent(EBPF, o.bin_dir.join("whosent-ebpf-agent"))),
        Box::new(TraceCmd {
            buffer_kb: BUFFER_KB,
        }),
        Box::new(CatPipe {
            buffer_kb: BUFFER_KB,
        }),
        Box::new(Bpftrace),
    ];
    let mut tools = Vec::new();
    let mut unavailable = Vec::new();
    for t in candidates {
        match t.unavailable() {
            Some(why) => {
                say(&format!("{} not run: {why}", t.name()));
                unavailable.push((t.name(), why));
            }
            None => tools.push(t),
        }
    }
    (tools, unavailable)
}

pub fn workloads(o: &Opts) -> Vec<Workload> {
    if !o.wants("runs") {
        Vec::new()
    } else if o.smoke {
        vec![
            Workload::storm(2000, false),
            Workload::forks(200),
            Workload::storm(2000, true),
        ]
    } else {
        vec![
            Workload::storm(100_000, false),
            Workload::storm(1_000_000, false),
            Workload::forks(5000),
            Workload::storm(100_000, true),
            Workload::storm(1_000_000, true),
        ]
    }
}
