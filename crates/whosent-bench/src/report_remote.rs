//! The report's remote part: ready over SSH on the emulated board, the
//! agent sizes per target, and the SystemTap backend.

use crate::remote;
use crate::report::{median, ms, spread, Report};
use std::fmt::Write;
use std::time::Duration;

impl Report {
    pub(crate) fn render_board(&self, s: &mut String) {
        let _ = writeln!(s, "## Ready on the emulated aarch64 board over SSH\n");
        let f = match &self.board {
            Err(why) => {
                let _ = writeln!(s, "Not measured: {why}.\n");
                return;
            }
            Ok(f) => f,
        };
        if let Some(e) = &f.error {
            let _ = writeln!(s, "**The board part failed: {e}**\n");
        }
        let _ = writeln!(s, "QEMU TCG board (docs/boards.md), dropbear, reached over 127.0.0.1; booted in {}. whosent-deploy is given the aarch64 agent from `whosent-deploy build --target aarch64` (`--agent`), so no build is timed. The probe is a `sleep` on the board sent SIGWINCH every 2 ms by a board-side loop; each whosent-deploy run ends at `--count 1`. whosent-deploy runs the agent with `--stream` and decodes on this side, as the product does since issue #11.\n",
            f.boot.map_or("–".into(), ms));
        let ssh = median(&f.ssh_true);
        let _ = writeln!(s, "| command | until ready record | until the probe was caught | whole command | ÷ bare SSH round trip |\n|---|---:|---:|---:|---:|");
        let _ = writeln!(
            s,
            "| `ssh board true` (OpenSSH client) | | | {} | 1 |",
            spread(&f.ssh_true)
        );
        let mut line = |name: &str, runs: &[remote::DeployRun]| {
            let ready: Vec<Duration> = runs.iter().filter_map(|r| r.ready).collect();
            let caught: Vec<Duration> = runs.iter().filter_map(|r| r.caught).collect();
            let exit: Vec<Duration> = runs.iter().map(|r| r.exit).collect();
            let ratio = match (median(&caught), ssh) {
                (Some(c), Some(t)) => format!("{:.2}×", c.as_secs_f64() / t.as_secs_f64()),
                _ => "–".into(),
            };
            let errs: Vec<String> = runs.iter().filter_map(|r| r.error.clone()).collect();
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {ratio}{} |",
                spread(&ready),
                spread(&caught),
                spread(&exit),
                if errs.is_empty() {
                    String::new()
                } else {
                    format!(" **{}**", errs[0])
                }
            );
        };
        line("whosent-deploy, agent uploaded each time", &f.uncached);
        if let Some(r) = &f.first_keep {
            line(
                "whosent-deploy --keep, first run (uploads and keeps)",
                std::slice::from_ref(r),
            );
        }
        line(
            "whosent-deploy --keep, agent cached on the board",
            &f.cached,
        );
        if let Some(st) = f.stap.as_ref().filter(|st| st.backend) {
            if !st.cached.is_empty() {
                line(
                    "whosent-deploy --backend stap, module cached on the host",
                    &st.cached,
                );
            }
        }
        let _ = writeln!(s);
    }

    pub(crate) fn render_sizes(&self, s: &mut String) {
        let _ = writeln!(s, "## Agent size per target\n");
        let _ = writeln!(s, "| target | triple | size | |\n|---|---|---:|---|");
        for b in &self.sizes {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                b.target,
                b.triple,
                if b.size > 0 {
                    format!("{} bytes ({:.0} KiB)", b.size, b.size as f64 / 1024.0)
                } else {
                    "–".into()
                },
                b.error
                    .as_deref()
                    .map(|e| format!("**{e}**"))
                    .unwrap_or_else(|| if b.cached {
                        "cached build".into()
                    } else {
                        format!("built in {:.1} s", b.took.as_secs_f64())
                    })
            );
        }
        let _ = writeln!(s);
    }

    pub(crate) fn render_stap(&self, s: &mut String) {
        let _ = writeln!(s, "## SystemTap backend on the board\n");
        let f = match &self.board {
            Err(why) => {
                let _ = writeln!(s, "Not measured: {why}.\n");
                return;
            }
            Ok(f) => f,
        };
        let Some(st) = &f.stap else {
            let _ = writeln!(s, "Not measured (--no-stap, or the board failed first).\n");
            return;
        };
        if let Some(e) = &st.error {
            let _ = writeln!(s, "**Failed: {e}**\n");
        }
        let _ = writeln!(s, "| step | time | how |\n|---|---:|---|");
        if st.backend {
            let build = |r: &Option<remote::DeployRun>| match r {
                Some(r) => match (r.build_secs, &r.error) {
                    (Some(b), _) => format!("{b:.1} s"),
                    (None, Some(e)) => format!("**{e}**"),
                    (None, None) => "–".into(),
                },
                None => "–".into(),
            };
            let _ = writeln!(s, "| cold build to a module | {} | `whosent-deploy --backend stap` with empty stap caches (stap first builds its ~20 MB tracepoint cache for the kernel); its own \"built the module in\" |", build(&st.cold));
            let _ = writeln!(s, "| warm build to a module | {} | the same with stap's cache kept and whosent's module cache emptied |", build(&st.warm));
            if let Some(n) = st.ko_size {
                let _ = writeln!(s, "| module size | {n} bytes | |");
            }
            let e2e = |r: &Option<remote::DeployRun>| {
                r.as_ref().map_or("–".into(), |r| {
                    r.caught.map_or_else(
                        || format!("**{}**", r.error.clone().unwrap_or_default()),
                        ms,
                    )
                })
            };
            let _ = writeln!(s, "| command → probe caught, cold | {} | build + upload of module and staprun bundle + load |", e2e(&st.cold));
            let _ = writeln!(s, "| command → probe caught, warm | {} | |", e2e(&st.warm));
            let c: Vec<Duration> = st.cached.iter().filter_map(|r| r.caught).collect();
            let errs: Vec<String> = st.cached.iter().filter_map(|r| r.error.clone()).collect();
            let _ = writeln!(s, "| command → probe caught, module cached | {} | {} |", spread(&c),
                errs.first().map(|e| format!("**{e}**")).unwrap_or_else(|| "upload of module and bundle + load (the stap backend never keeps them on the board)".into()));
        } else if let Some(b) = &st.script_build {
            let _ = writeln!(s, "| cold build to a module | {} | scripts/stap/build-module.sh, empty `SYSTEMTAP_DIR` (this whosent-deploy has no `--backend stap`) |", match &b.cold { Ok(d) => ms(*d), Err(e) => format!("**{e}**") });
            let ok: Vec<Duration> = b
                .warm
                .iter()
                .filter_map(|r| r.as_ref().ok().copied())
                .collect();
            let errs: Vec<&String> = b.warm.iter().filter_map(|r| r.as_ref().err()).collect();
            let _ = writeln!(
                s,
                "| warm build to a module | {} | {} |",
                spread(&ok),
                errs.first().map(|e| format!("**{e}**")).unwrap_or_else(|| {
                    "the same script again (stap's module cache is off with `-m`)".into()
                })
            );
            if let Some(n) = st.ko_size {
                let _ = writeln!(s, "| module size | {n} bytes | |");
            }
        }
        match &st.load {
            Some(Ok(loads)) => {
                let r: Vec<Duration> = loads.iter().map(|l| l.ready).collect();
                let c: Vec<Duration> = loads.iter().filter_map(|l| l.caught).collect();
                let u: Vec<Duration> = loads.iter().filter_map(|l| l.unload).collect();
                let _ = writeln!(s, "| load: `run-staprun -b 1 MODULE.ko target_pid=… target_sig=28` until the module's ready line | {} | timed on the board (`date +%s%N`, else `/proc/uptime` in 10 ms steps), bundle and module already there |", spread(&r));
                let _ = writeln!(
                    s,
                    "| load until the probe signal was printed | {} | |",
                    spread(&c)
                );
                let _ = writeln!(
                    s,
                    "| unload: SIGINT to stapio until it exited | {} | |",
                    spread(&u)
                );
            }
            Some(Err(e)) => {
                let _ = writeln!(s, "| load on the board | | **failed: {e}** |");
            }
            None => {
                let _ = writeln!(
                    s,
                    "| load on the board | | not measured: no module was built |"
                );
            }
        }
        let _ = writeln!(s);
    }
}
