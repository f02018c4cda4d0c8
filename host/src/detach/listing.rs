//! What the board holds of its detached captures, read in one command:
//! each capture directory's `meta`, `stat`, `ready`, `collected`, its
//! segments, whether its agent is alive, and its last line on stderr
//! (the layout: docs/detached.md). The script is POSIX sh with builtins
//! and `cat` only, as the upload directory's (the bare board has little
//! else); its output is parsed here, free of I/O.

use super::cursor::Cursor;
use crate::ssh::upload::quote;

/// The script listing the captures under `base` (`--dir`).
///
/// Alive: stat's pid is a process whose executable is this capture's
/// agent (`test -ef` compares the files /proc/PID/exe and the agent
/// name, device and inode), so a reused pid does not pass for it, nor
/// does another capture's agent. Before its stat (the agent writes it
/// just before `ready`) the agent is looked for among all processes.
pub fn script(base: &str) -> String {
    format!(
        r#"echo "now $(date +%s)"
read -r b </proc/sys/kernel/random/boot_id && echo "boot $b"
for d in {base}/whosent-cap-*; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  echo "cap ${{d##*/whosent-cap-}}"
  [ -f "$d/meta" ] && while IFS= read -r l; do echo "meta $l"; done <"$d/meta"
  s=; [ -f "$d/stat" ] && read -r s <"$d/stat" && echo "stat $s"
  [ -e "$d/ready" ] && echo ready
  [ -f "$d/collected" ] && read -r c <"$d/collected" && echo "collected $c"
  for f in "$d"/seg.*; do [ -f "$f" ] && echo "seg ${{f##*/seg.}}"; done
  p=; for w in $s; do case $w in pid=*) p=${{w#pid=}};; esac; done
  if [ -n "$p" ]; then [ /proc/$p/exe -ef "$d/whosent-agent" ] && echo alive
  else for q in /proc/[0-9]*; do [ $q/exe -ef "$d/whosent-agent" ] && echo "pid ${{q#/proc/}}" && echo alive && break; done; fi
  e=; [ -f "$d/agent.err" ] && while IFS= read -r l; do [ -n "$l" ] && e=$l; done <"$d/agent.err"
  [ -n "$e" ] && echo "err $e"
done
true"#,
        base = quote(base)
    )
}

/// The agent's `stat` line (docs/detached.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    pub pid: Option<i32>,
    /// Signal events written in all segments ever.
    pub signals: u64,
    /// Those among them in deleted segments.
    pub dropped: u64,
    pub dropped_segments: u64,
    /// The current sum of the segments' sizes.
    pub bytes: u64,
    /// The oldest segment present when it was written: `dropped` is
    /// the signal events of the segments before it.
    pub first: Option<u64>,
    /// `running`, `ended` or `error`.
    pub state: String,
}

impl Stat {
    /// Reads `v1 pid=P signals=N …`; unknown keys are skipped (the
    /// recorder may add some), another version is `None`.
    pub fn parse(line: &str) -> Option<Stat> {
        let mut words = line.split_whitespace();
        if words.next()? != "v1" {
            return None;
        }
        let mut s = Stat::default();
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            let n = || v.parse::<u64>().unwrap_or(0);
            match k {
                "pid" => s.pid = v.parse().ok(),
                "signals" => s.signals = n(),
                "dropped" => s.dropped = n(),
                "dropped_segments" => s.dropped_segments = n(),
                "bytes" => s.bytes = n(),
                "first" => s.first = v.parse().ok(),
                "state" => s.state = v.to_string(),
                _ => {}
            }
        }
        Some(s)
    }
}

/// What became of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its agent is recording.
    Alive,
    /// Its agent has not said `ready` yet, and runs.
    Starting,
    /// Its agent ended by itself (`--duration`) or on an error, with
    /// its END or ERROR frame.
    Ended,
    /// Its agent is gone without its end (kill -9, the OOM killer).
    Died,
    /// The board rebooted since it started: the capture ended then.
    Rebooted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Alive => "alive",
            State::Starting => "starting",
            State::Ended => "ended",
            State::Died => "died",
            State::Rebooted => "rebooted",
        }
    }
}

/// One capture directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    pub id: String,
    /// `meta`'s lines, key and value.
    pub meta: Vec<(String, String)>,
    pub stat: Option<Stat>,
    pub ready: bool,
    pub collected: Option<Cursor>,
    /// The segments present, by index, oldest first.
    pub segments: Vec<u64>,
    pub alive: bool,
    /// The agent's pid found without a stat (it is starting).
    pub found_pid: Option<i32>,
    /// The last line of `agent.err`.
    pub err: Option<String>,
}

impl Capture {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Its state, on a board whose boot is `boot` (`None`: unknown).
    pub fn state(&self, boot: Option<&str>) -> State {
        if let (Some(now), Some(then)) = (boot, self.meta("boot_id")) {
            if now != then {
                return State::Rebooted;
            }
        }
        let state = self.stat.as_ref().map(|s| s.state.as_str());
        match (self.alive, self.ready, state) {
            (_, _, Some("ended" | "error")) if !self.alive => State::Ended,
            (true, false, _) => State::Starting,
            (true, true, _) => State::Alive,
            _ => State::Died,
        }
    }

    /// The agent's pid: stat's, else the one found running.
    pub fn pid(&self) -> Option<i32> {
        self.stat.as_ref().and_then(|s| s.pid).or(self.found_pid)
    }

    /// Seconds since it started, by the board's clock.
    pub fn age(&self, now: Option<u64>) -> Option<u64> {
        let started: u64 = self.meta("started")?.parse().ok()?;
        Some(now?.saturating_sub(started))
    }
}

/// All of the board's captures under one `--dir`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The board's `date +%s`.
    pub now: Option<u64>,
    pub boot: Option<String>,
    pub captures: Vec<Capture>,
}

impl Listing {
    pub fn parse(text: &str) -> Listing {
        let mut l = Listing::default();
        for line in text.lines() {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            if k == "cap" {
                l.captures.push(Capture {
                    id: v.to_string(),
                    ..Capture::default()
                });
                continue;
            }
            let Some(c) = l.captures.last_mut() else {
                match k {
                    "now" => l.now = v.trim().parse().ok(),
                    "boot" => l.boot = Some(v.trim().to_string()),
                    _ => {}
                }
                continue;
            };
            match k {
                "meta" => {
                    if let Some((mk, mv)) = v.split_once('=') {
                        c.meta.push((mk.to_string(), mv.to_string()));
                    }
                }
                "stat" => c.stat = Stat::parse(v),
                "ready" => c.ready = true,
                "collected" => c.collected = Cursor::parse(v),
                "seg" => c.segments.extend(v.trim().parse::<u64>().ok()),
                "alive" => c.alive = true,
                "pid" => c.found_pid = v.trim().parse().ok(),
                "err" => c.err = Some(v.to_string()),
                _ => {}
            }
        }
        for c in &mut l.captures {
            c.segments.sort_unstable();
        }
        l
    }

    pub fn state(&self, c: &Capture) -> State {
        c.state(self.boot.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A program copied by cp, not std::fs::copy: a file open for
    /// writing here is open in any child another test forks meanwhile
    /// (until its exec), and running it then fails with ETXTBSY.
    fn copy_by_cp(from: &str, to: &std::path::Path) {
        let st = Command::new("cp").arg(from).arg(to).status().unwrap();
        assert!(st.success());
    }

    #[test]
    fn stat_lines_are_read_and_other_versions_refused() {
        let s = Stat::parse("v1 pid=812 signals=40 dropped=3 dropped_segments=1 bytes=1048000 first=1 last=4 state=running new=1").unwrap();
        assert_eq!(
            (s.pid, s.signals, s.dropped, s.dropped_segments, s.bytes),
            (Some(812), 40, 3, 1, 1_048_000)
        );
        assert_eq!(s.first, Some(1));
        assert_eq!(s.state, "running");
        assert_eq!(Stat::parse("v2 pid=1"), None);
    }

    fn capture(alive: bool, ready: bool, state: &str, boot: &str) -> Capture {
        Capture {
            meta: vec![("boot_id".into(), boot.into())],
            stat: Stat::parse(&format!("v1 pid=5 state={state}")),
            ready,
            alive,
            ..Capture::default()
        }
    }

    #[test]
    fn a_capture_is_alive_ended_died_or_rebooted() {
        let b = Some("b1");
        assert_eq!(capture(true, true, "running", "b1").state(b), State::Alive);
        assert_eq!(
            capture(true, false, "running", "b1").state(b),
            State::Starting
        );
        assert_eq!(capture(false, true, "ended", "b1").state(b), State::Ended);
        assert_eq!(capture(false, true, "running", "b1").state(b), State::Died);
        assert_eq!(
            capture(false, true, "running", "b0").state(b),
            State::Rebooted
        );
        // An agent that never wrote stat and is gone died.
        let mut c = capture(false, false, "x", "b1");
        c.stat = None;
        assert_eq!(c.state(b), State::Died);
    }

    /// The script, run by this machine's sh over hand-made capture
    /// directories: what it prints parses into what they hold, and only
    /// a process running the capture's own agent is alive.
    #[test]
    fn the_script_lists_what_the_directories_hold() {
        let base = std::env::temp_dir().join(format!("whosent-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (a, b) = (
            base.join("whosent-cap-0000aaaa"),
            base.join("whosent-cap-0000bbbb"),
        );
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
            // The agent: a copy of sleep, so that /proc/PID/exe is it.
            copy_by_cp("/bin/sleep", &d.join("whosent-agent"));
        }
        let mut child = Command::new(a.join("whosent-agent"))
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        std::fs::write(
            a.join("meta"),
            "id=0000aaaa\nquery=--sig TERM\nstarted=100\n",
        )
        .unwrap();
        std::fs::write(a.join("stat"), format!("v1 pid={pid} signals=2 dropped=0 dropped_segments=0 bytes=10 first=2 last=10 state=running\n")).unwrap();
        std::fs::write(a.join("ready"), "").unwrap();
        for n in ["00000010", "00000002", "00000003"] {
            std::fs::write(a.join(format!("seg.{n}")), "x").unwrap();
        }
        std::fs::write(a.join("agent.err"), "one\nwhosent-agent: last words\n\n").unwrap();
        // b's stat names a's agent: another capture's, not alive for b.
        std::fs::write(b.join("stat"), format!("v1 pid={pid} state=running\n")).unwrap();
        // c has no stat yet, and its agent runs: found, starting.
        let c = base.join("whosent-cap-0000cccc");
        std::fs::create_dir_all(&c).unwrap();
        copy_by_cp("/bin/sleep", &c.join("whosent-agent"));
        let mut starting = Command::new(c.join("whosent-agent"))
            .arg("30")
            .spawn()
            .unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(script(&base.display().to_string()))
            .output()
            .unwrap();
        for p in [&mut child, &mut starting] {
            let _ = p.kill();
            let _ = p.wait();
        }
        let l = Listing::parse(&String::from_utf8_lossy(&out.stdout));
        assert!(l.now.is_some() && l.boot.is_some(), "{l:?}");
        assert_eq!(l.captures.len(), 3, "{l:?}");
        let cc = &l.captures[2];
        assert_eq!(
            (cc.pid(), l.state(cc)),
            (Some(starting.id() as i32), State::Starting),
            "{cc:?}"
        );
        let (ca, cb) = (&l.captures[0], &l.captures[1]);
        assert_eq!(ca.id, "0000aaaa");
        assert_eq!(ca.meta("query"), Some("--sig TERM"));
        assert_eq!(ca.segments, [2, 3, 10]);
        assert!(ca.alive && ca.ready, "{ca:?}");
        assert_eq!(ca.err.as_deref(), Some("whosent-agent: last words"));
        assert_eq!(ca.stat.as_ref().unwrap().signals, 2);
        assert!(!cb.alive, "{cb:?}");
        assert_eq!(cb.id, "0000bbbb");
        let _ = std::fs::remove_dir_all(&base);
    }
}
