//! The report's issue #11 part: the recorder alone and the whole local
//! pipeline per storm, against trace-cmd record (+ report) on the same
//! storm; and the storm on the emulated board traced over SSH.

use crate::plan::{PIPELINE, RECORDER};
use crate::report::{ms, Report};
use std::fmt::Write;

fn us(d: std::time::Duration, n: u64) -> String {
    if n == 0 {
        "–".into()
    } else {
        format!("{:.2} µs", d.as_secs_f64() * 1e6 / n as f64)
    }
}

impl Report {
    pub(crate) fn render_pipeline(&self, s: &mut String) {
        let _ = writeln!(s, "## The recorder and the host (issue #11)\n");
        let _ = writeln!(s, "From the storm rows below. *Recorder alone*: `{RECORDER}`, the shipped agent with its stdout into a file; *captured* and *lost* are what `whosent-deploy parse --json` of that file gives afterwards (signal records for the receiver; the end record's `lost`); *peak RSS* is the agent's own VmHWM just before it was stopped; *B per event* is the stream's size ÷ captured. *Decoding* is `whosent-deploy parse --json FILE > /dev/null` of that file: events ÷ its CPU time (one thread). *Pipeline*: `{PIPELINE} --json`, the CPU of whosent-deploy and the agent it waits for, against trace-cmd record's CPU plus `trace-cmd report`'s on the same storm.\n");
        let _ = writeln!(s, "| storm | recorder captured | lost | CPU per event | peak RSS | B per event | trace.dat B per event | ÷ trace.dat | decoding | pipeline captured | lost | pipeline CPU | trace-cmd record + report CPU | ÷ |");
        let _ = writeln!(
            s,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for w in self.workloads.iter().filter(|w| w.count.is_some()) {
            let rec = self.row(RECORDER, &w.name).and_then(|x| x.outcome.as_ref());
            let pipe = self.row(PIPELINE, &w.name).and_then(|x| x.outcome.as_ref());
            let tc = self
                .row(&self.peer_ref, &w.name)
                .and_then(|x| x.outcome.as_ref());
            let sent = self
                .row(RECORDER, &w.name)
                .and_then(|x| x.storm)
                .map_or(0, |st| st.sent);
            let dash = || "–".to_string();
            let lost =
                |o: &crate::tools::Outcome| o.lost_reported.map_or(dash(), |n| n.to_string());
            let tdat = tc.and_then(|t| t.bytes_per_event);
            let theirs = tc.and_then(|t| Some(t.exit.cpu() + t.post?.cpu()));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                w.name,
                rec.map_or(dash(), |o| format!("{} of {sent}", o.matched)),
                rec.map_or(dash(), lost),
                rec.map_or(dash(), |o| us(o.exit.cpu(), o.matched)),
                rec.and_then(|o| o.own_hwm_kb)
                    .map_or(dash(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0)),
                rec.and_then(|o| o.bytes_per_event)
                    .map_or(dash(), |b| format!("{b:.1} B")),
                tdat.map_or(dash(), |b| format!("{b:.1} B")),
                rec.and_then(|o| o.bytes_per_event)
                    .zip(tdat)
                    .map_or(dash(), |(a, b)| format!("{:.2}", a / b)),
                rec.and_then(|o| Some((o.matched, o.post_null?)))
                    .filter(|(n, p)| *n > 0 && !p.cpu().is_zero())
                    .map_or(dash(), |(n, p)| format!(
                        "{:.2} M/s",
                        n as f64 / p.cpu().as_secs_f64() / 1e6
                    )),
                pipe.map_or(dash(), |o| o.matched.to_string()),
                pipe.map_or(dash(), lost),
                pipe.map_or(dash(), |o| ms(o.exit.cpu())),
                theirs.map_or(dash(), ms),
                pipe.zip(theirs).map_or(dash(), |(o, t)| format!(
                    "{:.2}",
                    o.exit.cpu().as_secs_f64() / t.as_secs_f64().max(1e-9)
                )),
            );
        }
        let _ = writeln!(s);

        let _ = writeln!(s, "### A storm on the emulated aarch64 board, over SSH\n");
        let f = match &self.board {
            Err(why) => {
                let _ = writeln!(s, "Not measured: {why}.\n");
                return;
            }
            Ok(f) => f,
        };
        let Some(b) = &f.storm else {
            let _ = writeln!(
                s,
                "Not measured: {}.\n",
                f.error
                    .as_deref()
                    .unwrap_or("no aarch64 signal_storm (scripts/bench.sh cross-builds it)")
            );
            return;
        };
        let _ = writeln!(s, "`signal_storm --count {}` (crates/whosent-testbins, cross-built for aarch64-unknown-linux-musl with rust-lld) runs on the board; `whosent-deploy --host root@board --keep --agent <aarch64 agent> --pid R --json --save FILE` traces it from this machine. *captured* counts its signal records for the receiver; *lost* is its end record's; *bytes over the link* is the saved capture stream (SSH's own framing and encryption not counted). whosent-deploy is stopped with SIGINT once no record came for 2 s.\n", b.count);
        if let Some(e) = &b.error {
            let _ = writeln!(s, "**{e}**\n");
        }
        let _ = writeln!(s, "| sent | sender time | captured | lost | records caught up after the storm | bytes over the link | per event | host CPU (whosent-deploy) |\n|---:|---:|---:|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            b.sent,
            ms(b.elapsed),
            b.matched,
            b.lost.map_or("–".into(), |n| n.to_string()),
            b.drain.map_or("–".into(), ms),
            b.stream_bytes.map_or("–".into(), |n| format!("{n} B")),
            b.stream_bytes
                .filter(|_| b.matched > 0)
                .map_or("–".into(), |n| format!(
                    "{:.1} B",
                    n as f64 / b.matched as f64
                )),
            ms(b.host_cpu),
        );
    }
}
