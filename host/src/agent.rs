//! The agents as a deploy backend: the payload is the static
//! `whosent-agent` (ftrace) or `whosent-ebpf-agent` for the board's
//! architecture (built here, or `--agent`), in a tar.gz bundle with its
//! manifest where the board has tar. Either agent runs with the query
//! as its flags and `--stream`: it records, and its stdout is the binary
//! capture stream (docs/stream-format.md: pages from the ftrace agent,
//! EVENT frames from the eBPF agent), decoded here by
//! [`crate::stream::Feed`]; `--count` and `--until-exit` are the feed's.
//! Either agent times and ends the capture itself.
//!
//! `--backend auto` picks the eBPF agent when the probe's facts allow
//! it ([`crate::bpf::verdict`]), else the ftrace agent.

use crate::board::Facts;
use crate::build::{self, Target as Arch};
use crate::bundle;
use crate::deploy::push::{method, Pusher};
use crate::deploy::Backend;
use crate::died::{Exit, LastWords};
use crate::error::HostError;
use crate::session::Session;
use crate::ssh::upload::quote;
use crate::stream::Feed;
use crate::transport::Flow;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// Which agent `--backend` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Ftrace,
    Ebpf,
    /// eBPF where the board can run it, else ftrace.
    Auto,
}

pub struct Agent {
    /// The agent's flags (the query, --count, --duration), without
    /// `--stream`, which only the ftrace agent takes.
    args: Vec<String>,
    choice: Choice,
    /// Decided in `prepare`.
    kind: build::Agent,
    /// `--agent`, else the one built for the board.
    given: Option<PathBuf>,
    /// Filled by `prepare`.
    bytes: Vec<u8>,
    hash: String,
    arch: Option<Arch>,
    feed: Feed,
    /// The agent's last line on stderr.
    words: LastWords,
    /// Human output, folded: the eBPF agent folds storms in the kernel
    /// (`--fold`, crate::fold).
    fold: bool,
}

impl Agent {
    /// `args` are the agent's flags, `--stream` excluded; `feed`
    /// decodes what it records.
    pub fn new(args: Vec<String>, given: Option<PathBuf>, feed: Feed) -> Self {
        Self::choose(Choice::Ftrace, args, given, feed)
    }

    /// As [`Agent::new`], for the agent `choice` names.
    pub fn choose(choice: Choice, args: Vec<String>, given: Option<PathBuf>, feed: Feed) -> Self {
        Agent {
            args,
            choice,
            kind: build::Agent::Ftrace,
            given,
            bytes: Vec::new(),
            hash: String::new(),
            arch: None,
            feed,
            words: LastWords::default(),
            fold: false,
        }
    }

    /// With the eBPF agent's `--fold`.
    pub fn fold(mut self, on: bool) -> Self {
        self.fold = on;
        self
    }

    /// An agent already at hand (tests): `prepare` keeps it.
    pub fn with_bytes(args: Vec<String>, bytes: Vec<u8>, feed: Feed) -> Self {
        let mut a = Agent::new(args, None, feed);
        a.hash = bundle::sha256_hex(&bytes);
        a.bytes = bytes;
        a
    }

    /// The same, for the agent `choice` names (tests).
    pub fn with_choice(mut self, choice: Choice) -> Self {
        self.choice = choice;
        self
    }

    /// Uploads the bundle (or the bare agent where there is no tar);
    /// returns how it travelled.
    fn upload(&self, p: &Pusher<'_>, arch: Arch) -> Result<String, HostError> {
        let agent = &self.bytes;
        let name = self.kind.name();
        p.need_free((agent.len() as u64 * 2).div_ceil(1024), |kb| {
            format!(
                "the board has {kb} KiB free in /tmp, too little for the {} KiB agent",
                agent.len() / 1024
            )
        })?;
        if !p.facts.has("tar") {
            let m = p.put(name, agent, 0o755, "uploading")?;
            return Ok(format!(
                "{} KiB agent via {} (no tar on the board)",
                agent.len() / 1024,
                method(m)
            ));
        }
        let b = bundle::build_named(name, agent, arch.name())
            .map_err(|e| HostError::Io("building the bundle".into(), e))?;
        let m = p.put("bundle.tar.gz", &b, 0o600, "uploading")?;
        p.unpack(
            &format!(
                "cd {} && tar -xzf bundle.tar.gz && rm -f bundle.tar.gz",
                quote(p.dir)
            ),
            "the bundle",
        )?;
        Ok(format!("{} KiB bundle via {}", b.len() / 1024, method(m)))
    }
}

/// The agent for this board: `Err` when `--backend ebpf` cannot run
/// here, with the ftrace fallback named.
pub fn resolve(choice: Choice, facts: &Facts) -> Result<build::Agent, HostError> {
    match (choice, crate::bpf::verdict(facts)) {
        (Choice::Ftrace, _) => Ok(build::Agent::Ftrace),
        (Choice::Ebpf | Choice::Auto, Ok(())) => Ok(build::Agent::Ebpf),
        (Choice::Auto, Err(why)) => {
            say!(
                "whosent: --backend auto: using the ftrace agent ({})",
                whosent_proto::escape::escape(&why)
            );
            Ok(build::Agent::Ftrace)
        }
        (Choice::Ebpf, Err(why)) => Err(HostError::other(
            format!("this board cannot run the eBPF backend: {why}"),
            crate::bpf::FALLBACK_HELP,
        )),
    }
}

/// A stop from outside (Ctrl-C, SIGTERM, SIGHUP).
fn interrupted(why: Option<whosent_proto::record::EndReason>) -> bool {
    use whosent_proto::record::EndReason::*;
    matches!(why, Some(Interrupted | Terminated | Hangup))
}

impl Backend for Agent {
    fn prepare(&mut self, facts: &Facts, arch: Arch, _: &AtomicBool) -> Result<(), HostError> {
        self.arch = Some(arch);
        self.kind = resolve(self.choice, facts)?;
        // Either agent records (`--stream`) and the feed explains;
        // `--until-exit` and `--count` are the feed's.
        self.args.push("--stream".into());
        if self.kind == build::Agent::Ebpf && self.fold {
            self.args.push("--fold".into());
        }
        if !self.bytes.is_empty() {
            return Ok(());
        }
        let path = match &self.given {
            Some(p) => {
                build::check_elf(p, arch)?;
                p.clone()
            }
            None => build::agent_for(self.kind, arch, "local", true)?,
        };
        self.bytes = std::fs::read(&path)
            .map_err(|e| HostError::Io(format!("cannot read {}", path.display()), e))?;
        self.hash = bundle::sha256_hex(&self.bytes);
        Ok(())
    }

    fn keep(&self) -> Option<String> {
        Some(self.hash.clone())
    }

    fn push(&mut self, p: &Pusher<'_>, existing: bool) -> Result<String, HostError> {
        let remote = p.path(self.kind.name());
        let verify = || p.verify(&remote, &self.hash, "agent", "running");
        if existing && verify().is_ok() {
            say!(
                "whosent: using the agent kept on the board in {} (sha256 verified)",
                p.dir
            );
        } else {
            let how = self.upload(p, self.arch.expect("prepared"))?;
            verify()?;
            say!(
                "whosent: uploaded {how} to {}; sha256 verified on the board",
                p.dir
            );
        }
        let mut quoted: Vec<String> = self.args.iter().map(|a| quote(a)).collect();
        if let Some(t) = p.alive_timeout {
            // The connection's heartbeat: the agent ends by itself when a
            // dead link leaves it alone (ssh::alive).
            quoted.push(format!("--alive-timeout {}", t.as_secs_f64()));
        }
        Ok(format!("{} {}", quote(&remote), quoted.join(" ")))
    }

    fn raw_output(&self) -> bool {
        true
    }

    fn line(&mut self, raw: &[u8], s: &mut Session<'_>) -> Flow {
        match self.feed.bytes(raw, s) {
            // After a Ctrl-C the END frame is the agent's last word, and
            // its ftrace teardown (0.5-1.5 s on the emulated boards) needs
            // no audience: the run must end within a second, and the
            // board cleans up by itself. Other ends wait for it, so that
            // the board is clean when whosent-deploy exits.
            Flow::Continue if (s.ended || self.feed.ended()) && interrupted(s.why()) => Flow::Done,
            f => f,
        }
    }

    /// The records before a cut come out whatever ended the stream; a
    /// dropped connection ends it as `hangup`.
    fn finish(
        &mut self,
        _: &dyn crate::transport::Transport,
        streamed: Result<i32, crate::transport::SshError>,
        s: &mut Session<'_>,
    ) -> Result<i32, HostError> {
        let exit = streamed.as_ref().ok().map(|&status| Exit {
            status,
            last: self.words.last(),
        });
        let death = self
            .feed
            .finish(whosent_proto::record::EndReason::Hangup, exit, s);
        // The agent is stopped and gone: now the run's own error, if any.
        if let Some(e) = s.output_error() {
            return Err(e);
        }
        if let Some(d) = death {
            return Err(d.error());
        }
        Ok(streamed?)
    }

    /// Passed on (escaped), and its last line kept: it says why the
    /// agent died, if it does.
    fn stderr(&mut self, chunk: &[u8], _: &mut Session<'_>) {
        self.words.feed(chunk);
        let text = whosent_proto::escape::escape_lines(chunk);
        crate::fleet::tag::bytes(text.as_bytes());
    }
}
