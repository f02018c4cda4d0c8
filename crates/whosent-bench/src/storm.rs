//! Driving `signal_storm` (crates/whosent-testbins): start it with
//! `--wait-stdin`, learn the receiver's pid, let the caller start a
//! tracer filtered to that pid, then send the line that starts the
//! storm and read its result.

use crate::child::{Exit, Proc};
use crate::lines::int_after;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// One workload: a storm of `count` signals, or `forks` short-lived
/// senders, optionally with an unrelated pair sending `noise` signals.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    pub count: Option<u64>,
    pub forks: Option<u64>,
    pub noise: Option<u64>,
}

impl Workload {
    pub fn storm(n: u64, noise: bool) -> Self {
        Workload {
            name: format!("storm {}{}", human(n), if noise { " + noise" } else { "" }),
            count: Some(n),
            forks: None,
            noise: noise.then_some(n),
        }
    }

    pub fn forks(k: u64) -> Self {
        Workload {
            name: format!("{} short-lived senders", human(k)),
            count: None,
            forks: Some(k),
            noise: None,
        }
    }

    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(n) = self.count {
            a.extend(["--count".into(), n.to_string()]);
        }
        if let Some(k) = self.forks {
            a.extend(["--forks".into(), k.to_string()]);
        }
        if let Some(m) = self.noise {
            a.extend(["--noise".into(), m.to_string()]);
        }
        a.push("--wait-stdin".into());
        a
    }
}

pub fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct StormResult {
    pub sent: u64,
    pub elapsed: Duration,
    pub received: u64,
    pub noise_sent: u64,
}

pub struct Storm {
    proc: Proc,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
    pub receiver: i32,
    pub noise_pids: Option<(i32, i32)>,
}

fn bad(msg: String) -> io::Error {
    io::Error::other(msg)
}

impl Storm {
    /// Starts the storm program and reads up to its `storm ready` line.
    pub fn start(bin: &Path, w: &Workload) -> io::Result<Storm> {
        Self::start_cmd(Command::new(bin).args(w.args()))
    }

    /// The same with the command given (e.g. `ssh board signal_storm …`).
    pub fn start_cmd(cmd: &mut Command) -> io::Result<Storm> {
        let (proc, pipes) = Proc::spawn(
            "signal_storm",
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        )?;
        let mut s = Storm {
            proc,
            stdin: pipes.stdin,
            out: BufReader::new(pipes.stdout.expect("piped")),
            receiver: 0,
            noise_pids: None,
        };
        loop {
            let l = s.line()?;
            if l.starts_with("noise sender=") {
                let b = l.as_bytes();
                s.noise_pids = int_after(b, b"sender=")
                    .zip(int_after(b, b"receiver="))
                    .map(|(a, b)| (a as i32, b as i32));
            } else if l.starts_with("storm ready") {
                s.receiver = int_after(l.as_bytes(), b"receiver=")
                    .ok_or_else(|| bad(format!("signal_storm: bad ready line {l:?}")))?
                    as i32;
                return Ok(s);
            }
        }
    }

    fn line(&mut self) -> io::Result<String> {
        let mut l = String::new();
        if self.out.read_line(&mut l)? == 0 {
            let e = self.proc.wait_timeout(Duration::from_secs(2));
            return Err(bad(format!(
                "signal_storm ended early ({})",
                e.map_or("still running".into(), |e| e.describe())
            )));
        }
        Ok(l.trim_end().to_string())
    }

    /// Starts the storm and waits for its end.
    pub fn go(mut self) -> io::Result<(StormResult, Exit)> {
        let mut stdin = self.stdin.take().expect("stdin");
        stdin.write_all(b"go\n")?;
        drop(stdin);
        let mut r = StormResult::default();
        let mut got = false;
        loop {
            let l = match self.line() {
                Ok(l) => l,
                Err(_) if got => break,
                Err(e) => return Err(e),
            };
            let b = l.as_bytes();
            if l.starts_with("storm sent=") || l.starts_with("forks=") {
                r.sent = int_after(b, b"sent=").unwrap_or(0) as u64;
                r.elapsed = Duration::from_nanos(int_after(b, b"elapsed_ns=").unwrap_or(0) as u64);
                r.received = int_after(b, b"received=").unwrap_or(0) as u64;
                got = true;
            } else if l.starts_with("noise sent=") {
                r.noise_sent = int_after(b, b"sent=").unwrap_or(0) as u64;
            }
        }
        let exit = self.proc.wait();
        if !got {
            return Err(bad("signal_storm printed no result".into()));
        }
        Ok((r, exit))
    }
}
