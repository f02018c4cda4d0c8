//! `stop`: ends a capture (SIGTERM to its agent, which removes its
//! ftrace instance and probe and writes its END), prints what no
//! `collect` printed yet, and removes everything: a dead agent's
//! leftovers (`whosent-agent --clean`), the process and the files.

use super::listing::{Capture, State};
use super::segments::{self, Print};
use super::Board;
use crate::error::HostError;
use crate::ssh::upload::quote;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct StopOpts {
    pub id: Option<String>,
    pub print: Print,
}

/// How long the agent may take to stop: its ftrace teardown takes up
/// to 1.5 s on the emulated boards.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// Returns the exit status of what it printed, as `collect`'s.
pub fn stop(b: &Board<'_>, o: &StopOpts, out: &mut dyn Write) -> Result<i32, HostError> {
    let l = b.list()?;
    let c = b.choose(&l, o.id.as_deref())?;
    let mut killed = false;
    let asked = matches!(l.state(c), State::Alive | State::Starting);
    if asked {
        killed = end_agent(b, c)?;
    }
    // Its last segment and stat, as it left them.
    let l = b.list()?;
    let c = l.captures.iter().find(|x| x.id == c.id).ok_or_else(|| {
        HostError::other(
            format!(
                "capture {} on {} went away while it was stopped",
                c.id, b.host
            ),
            "another `whosent-deploy stop` may have removed it",
        )
    })?;
    let state = l.state(c);
    let how = Print {
        stopped: c.pid().filter(|_| asked),
        ..o.print.clone()
    };
    let p = segments::print(b, c, state, &how, c.collected, out, None)?;
    let dirty = killed || state == State::Died;
    remove(b, c, dirty)?;
    if !o.print.json || std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        say!(
            "whosent: capture {} on {} stopped and removed, nothing left; {} signal(s) that no collect had printed",
            c.id, b.host, p.signals
        );
    }
    Ok(p.status)
}

/// SIGTERM to the agent (stat's pid, if /proc/PID/exe is this
/// capture's agent), then waits for it to exit; SIGKILL if it will
/// not. Returns whether it had to be killed.
fn end_agent(b: &Board<'_>, c: &Capture) -> Result<bool, HostError> {
    let d = quote(&b.path(&c.id));
    let Some(pid) = c.pid() else {
        return Ok(false);
    };
    let mine = format!("[ /proc/{pid}/exe -ef {d}/whosent-agent ]");
    b.run(&format!("{mine} && kill -TERM {pid}; true"))?;
    let t0 = Instant::now();
    while t0.elapsed() < STOP_WITHIN {
        let out = b.run(&format!("{mine} && echo alive; true"))?;
        if !String::from_utf8_lossy(&out.stdout).contains("alive") {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    say!(
        "whosent-deploy: warning: the agent of capture {} on {} did not stop within {} s of SIGTERM; killed",
        c.id,
        b.host,
        STOP_WITHIN.as_secs()
    );
    b.run(&format!("{mine} && kill -KILL {pid}; true"))?;
    Ok(true)
}

/// Removes the capture directory; first, for an agent that did not end
/// by itself, what it left in the kernel (`--clean`: its instance and
/// probe, whose owner is gone).
fn remove(b: &Board<'_>, c: &Capture, dirty: bool) -> Result<(), HostError> {
    if dirty {
        clean(b, c)?;
    }
    let d = quote(&b.path(&c.id));
    let out = b.run(&format!("rm -rf {d} && [ ! -e {d} ]"))?;
    if out.status != 0 {
        return Err(HostError::other(
            format!(
                "cannot remove {} on {}: {}",
                b.path(&c.id),
                b.host,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "remove it by hand as root",
        ));
    }
    Ok(())
}

/// `whosent-agent --clean`, with the capture's own agent: it removes
/// the instances and probes of agents that are gone; each name it
/// removed is told on stderr. Right after a kill -9 the kernel may
/// still hold the dead agent's instance busy for a moment (its rmdir
/// fails, as measured: gone 3 s later), so while one named after its
/// pid remains it is tried again, for up to 5 s.
pub fn clean(b: &Board<'_>, c: &Capture) -> Result<(), HostError> {
    let agent = quote(&format!("{}/whosent-agent", b.path(&c.id)));
    let pid = c.stat.as_ref().and_then(|s| s.pid).unwrap_or(0);
    let out = b.run(&format!(
        r#"[ -x {agent} ] || exit 0
n=0; while :; do
  {agent} --clean 2>&1
  left=; for i in /sys/kernel/tracing/instances/whosent-{pid}-* /sys/kernel/debug/tracing/instances/whosent-{pid}-*; do [ -d "$i" ] && left=1; done
  for f in /sys/kernel/tracing/uprobe_events /sys/kernel/debug/tracing/uprobe_events; do
    [ -f "$f" ] && while read -r l; do case $l in *whosent_{pid}_*) left=1;; esac; done <"$f"
  done
  [ -z "$left" ] || [ $n -ge 10 ] && break
  n=$((n+1)); sleep 0.5 2>/dev/null || sleep 1
done"#
    ))?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim();
        if !line.is_empty() {
            say!(
                "whosent: {} (capture {} on {})",
                whosent_proto::escape::escape(line.trim_start_matches("whosent-agent: ")),
                c.id,
                b.host,
            );
        }
    }
    Ok(())
}
