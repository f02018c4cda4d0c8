//! whosent-bench: the harness behind `scripts/bench.sh` (issue #7).
//!
//! In one run it drives the same workloads against whosent and its
//! peers, then writes a Markdown report of figures, ratios and goals.
//! Exit status: 0 when the harness worked (whatever the figures), 1
//! when it broke (a workload could not run, an instance was left
//! behind), 2 on bad usage.

mod board;
mod child;
mod cleanup;
mod cli;
mod goals;
mod lines;
mod local;
mod machine;
mod plan;
mod remote;
mod report;
mod report_pipeline;
mod report_remote;
mod sizes;
mod stap;
mod storm;
mod tools;
mod tracefs;

use cli::say;
use std::time::Instant;
use tools::Tool;

fn main() {
    let o = cli::parse();
    let t0 = Instant::now();
    let mut broken: Vec<String> = Vec::new();
    let work = std::env::temp_dir().join(format!("{}-work", cleanup::tag()));
    let _ = std::fs::create_dir_all(&work);
    std::env::set_var("WSBENCH_WORKDIR", &work);
    let machine = machine::describe(&o.repo);
    let deploy = o.bin_dir.join("whosent-deploy");

    // 1. The agents that ship, and the line-up.
    let agents = plan::agents(&deploy, o.smoke);
    let Some(shipped) = plan::agent_path(&agents, "x86_64") else {
        let why = agents.first().and_then(|b| b.error.clone());
        eprintln!(
            "bench: no x86_64 agent from whosent-deploy build: {}",
            why.unwrap_or_default()
        );
        std::process::exit(1)
    };
    let (tools, unavailable) = plan::lineup(&o, &shipped, &deploy);

    // 2. Capture, cost and footprint: every workload under every tool.
    let workloads = plan::workloads(&o);
    let base_reps = if o.smoke { 2 } else { 3 };
    let storm = o.bin_dir.join("signal_storm");
    let (baselines, rows) = local::matrix(&storm, &workloads, &tools, base_reps, &mut broken);

    // 3. Ready, locally: the same tools (whosent-deploy --host local is
    // the product's --stream path), except the recorder alone, whose
    // raw stream the harness does not decode live.
    let ready_tools: Vec<&dyn Tool> = tools
        .iter()
        .map(|t| t.as_ref())
        .filter(|t| t.name() != plan::RECORDER)
        .collect();
    let ready = match (o.wants("ready"), o.smoke) {
        (false, _) => Vec::new(),
        (_, smoke) => local::ready_all(&ready_tools, if smoke { 2 } else { 5 }),
    };

    // 4. The emulated board: ready over SSH, then the SystemTap backend.
    let board = if o.smoke {
        Err("not run in --smoke".to_string())
    } else if !o.board || !(o.wants("board") || o.wants("stap")) {
        Err("not run (--no-board)".to_string())
    } else if let Some(agent) = plan::agent_path(&agents, "aarch64") {
        say("board: boot, ssh, whosent-deploy, SystemTap");
        Ok(remote::measure(&remote::Inputs {
            repo: &o.repo,
            deploy: &deploy,
            agent: &agent,
            stap: o.stap && o.wants("stap"),
            work: &work,
            reps: 3,
            storm: o
                .board_storm
                .as_deref()
                .filter(|_| o.wants("board"))
                .map(|p| (p, 100_000)),
        }))
    } else {
        Err("no aarch64 agent (see the agent sizes)".to_string())
    };

    // 5. Nothing of ours may stay behind in tracefs.
    let left = cleanup::leftovers();
    if !left.is_empty() {
        broken.push(format!("instances left behind: {}", left.join(" ")));
    }
    if rows.is_empty() && o.wants("runs") {
        broken.push("no tool ran".into());
    }

    // 6. The report.
    let rep = report::Report {
        smoke: o.smoke,
        machine,
        load_after: machine::loadavg(),
        total: t0.elapsed(),
        workloads,
        baselines,
        rows,
        unavailable,
        ready,
        sizes: agents,
        board,
        shipped: plan::SHIPPED.into(),
        peer_ref: plan::PEER.into(),
        buffer_kb: plan::BUFFER_KB,
        analysis: o
            .notes
            .as_ref()
            .filter(|_| !o.smoke)
            .and_then(|p| std::fs::read_to_string(p).ok()),
    };
    let mut text = rep.render();
    if !broken.is_empty() {
        text.push_str("\n## Harness errors\n\n");
        for b in &broken {
            text.push_str(&format!("- {b}\n"));
        }
    }
    match &o.out {
        Some(p) => {
            if let Err(e) = std::fs::write(p, &text) {
                eprintln!("bench: cannot write {}: {e}", p.display());
                std::process::exit(1)
            }
            say(&format!("wrote {}", p.display()));
        }
        None => print!("{text}"),
    }
    let _ = std::fs::remove_dir_all(&work);
    say(&format!("done in {:.0} s", t0.elapsed().as_secs_f64()));
    for b in &broken {
        eprintln!("bench: harness error: {b}");
    }
    if !broken.is_empty() {
        std::process::exit(1)
    }
}
