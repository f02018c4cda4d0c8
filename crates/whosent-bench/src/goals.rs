//! The goals of issue #7, judged from this run's figures for the
//! shipped agent. A goal that cannot be judged (its figure is missing)
//! counts as missed, with the reason.

use crate::report::{median, ms, Report};
use std::fmt::Write;
use std::time::Duration;

struct Goal {
    figure: &'static str,
    goal: &'static str,
    measured: String,
    met: Option<bool>,
    why: String,
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "**not measured**",
    }
}

/// The biggest storm without noise: the 1M storm, or the smoke run's.
fn headline(r: &Report) -> Option<String> {
    r.workloads
        .iter()
        .filter(|w| w.noise.is_none() && w.count.is_some())
        .max_by_key(|w| w.count)
        .map(|w| w.name.clone())
}

pub fn render(r: &Report, s: &mut String) {
    let mut goals = Vec::new();
    let head = headline(r).unwrap_or_default();
    let row = r.row(&r.shipped, &head);
    let run = row.and_then(|x| x.outcome.as_ref().zip(x.storm));

    // 1. Loss at the headline storm.
    goals.push(match (row, run) {
        (_, Some((o, st))) => {
            let missing = st.sent.saturating_sub(o.matched);
            let mut why = Vec::new();
            if let Some(e) = &o.error {
                why.push(format!("the agent failed: {e}"));
            }
            if let Some(k) = o.kstats {
                if k.lost() > 0 {
                    why.push(format!("the kernel overwrote {} events in the agent's buffer before it read them (per-CPU stats)", k.lost()));
                }
            }
            if o.lost_reported.unwrap_or(0) > 0 {
                why.push(format!("the agent reported {} lost", o.lost_reported.unwrap_or(0)));
            }
            Goal {
                figure: "lost events at the 1M storm, parsed records streamed",
                goal: "0",
                measured: format!("{missing} of {} not delivered ({head})", st.sent),
                met: Some(missing == 0 && o.error.is_none()),
                why: why.join("; "),
            }
        }
        (x, None) => Goal {
            figure: "lost events at the 1M storm, parsed records streamed",
            goal: "0",
            measured: "–".into(),
            met: None,
            why: x.and_then(|x| x.error.clone()).unwrap_or_else(|| "no run".into()),
        },
    });

    // 2. Sender slowdown at the headline storm.
    let base = r.baseline(&head);
    goals.push(match (run, base) {
        (Some((_, st)), Some(b)) => {
            let x = st.elapsed.as_secs_f64() / b.as_secs_f64();
            Goal {
                figure: "sender slowdown",
                goal: "≤ 1.5×",
                measured: format!("{x:.2}× ({head}: {} vs {} untraced)", ms(st.elapsed), ms(b)),
                met: Some(x <= 1.5),
                why: String::new(),
            }
        }
        _ => Goal {
            figure: "sender slowdown",
            goal: "≤ 1.5×",
            measured: "–".into(),
            met: None,
            why: "no run".into(),
        },
    });

    // 3. CPU per event.
    goals.push(match run {
        Some((o, _)) if o.matched > 0 => {
            let us = o.exit.cpu().as_secs_f64() * 1e6 / o.matched as f64;
            Goal {
                figure: "agent CPU, including JSON output",
                goal: "≤ 0.5 µs per event",
                measured: format!(
                    "{us:.2} µs ({} for {} events, {head})",
                    ms(o.exit.cpu()),
                    o.matched
                ),
                met: Some(us <= 0.5),
                why: if o.error.is_some() {
                    "partial: the agent stopped early".into()
                } else {
                    String::new()
                },
            }
        }
        _ => Goal {
            figure: "agent CPU, including JSON output",
            goal: "≤ 0.5 µs per event",
            measured: "–".into(),
            met: None,
            why: "no events captured".into(),
        },
    });

    // 4. Peak RSS, over every run of the shipped agent.
    let rss = r
        .rows
        .iter()
        .filter(|x| x.tool == r.shipped)
        .filter_map(|x| {
            x.outcome
                .as_ref()
                .map(|o| (o.exit.maxrss_kb, x.workload.clone()))
        })
        .max();
    goals.push(match rss {
        Some((kb, w)) => Goal {
            figure: "agent peak RSS",
            goal: "≤ 4 MiB",
            measured: format!("{:.1} MiB (largest, {w})", kb as f64 / 1024.0),
            met: Some(kb <= 4096),
            why: String::new(),
        },
        None => Goal {
            figure: "agent peak RSS",
            goal: "≤ 4 MiB",
            measured: "–".into(),
            met: None,
            why: "no run".into(),
        },
    });

    // 5. Ready locally, for the agent and for whosent-deploy --host local.
    for rr in r
        .ready
        .iter()
        .filter(|x| x.tool == r.shipped || x.tool.starts_with("whosent-deploy"))
    {
        let m = median(&rr.caught);
        goals.push(Goal {
            figure: "ready, locally",
            goal: "≤ 10 ms",
            measured: format!("{}: {}", rr.tool, m.map_or("–".into(), ms)),
            met: m.map(|m| m <= Duration::from_millis(10)),
            why: rr.error.clone().unwrap_or_default(),
        });
    }

    // 6. Ready on the board, agent cached, against a bare SSH round trip.
    goals.push(match &r.board {
        Ok(f) => {
            let c: Vec<Duration> = f.cached.iter().filter_map(|x| x.caught).collect();
            match (median(&c), median(&f.ssh_true)) {
                (Some(c), Some(t)) => {
                    let x = c.as_secs_f64() / t.as_secs_f64();
                    Goal {
                        figure: "ready on the board, agent cached",
                        goal: "≤ 1.5× a bare SSH round trip",
                        measured: format!("{x:.2}× ({} vs `ssh board true` {})", ms(c), ms(t)),
                        met: Some(x <= 1.5),
                        why: String::new(),
                    }
                }
                _ => Goal {
                    figure: "ready on the board, agent cached",
                    goal: "≤ 1.5× a bare SSH round trip",
                    measured: "–".into(),
                    met: None,
                    why: f
                        .error
                        .clone()
                        .or_else(|| f.cached.iter().find_map(|x| x.error.clone()))
                        .unwrap_or_else(|| "no run".into()),
                },
            }
        }
        Err(why) => Goal {
            figure: "ready on the board, agent cached",
            goal: "≤ 1.5× a bare SSH round trip",
            measured: "–".into(),
            met: None,
            why: why.clone(),
        },
    });

    let _ = writeln!(s, "## Goals (issue #7)\n");
    let _ = writeln!(s, "Judged on the shipped agent (`{}`).\n", r.shipped);
    let _ = writeln!(
        s,
        "| figure | goal | measured | | reason the harness sees |\n|---|---|---|---|---|"
    );
    for g in goals {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            g.figure,
            g.goal,
            g.measured,
            verdict(g.met),
            g.why
        );
    }
    let _ = writeln!(s);
}
