//! `--backend audit`: the board's audit subsystem instead of ftrace, for
//! kernels that have audit but not the signal tracepoints (many
//! hardened and production kernels). The payload is
//! `whosent-audit-reader`, built with the agent (target-agent's second
//! binary); it adds whosent's rules over NETLINK_AUDIT, writes the
//! kernel's records as text and removes its rules on every way out.
//! whosent-audit turns the text into records here, and the host applies
//! the query, `--count` and `--duration`.

use crate::board::Facts;
use crate::build::{self, Target as Arch};
use crate::cli::RunArgs;
use crate::deploy::push::Pusher;
use crate::deploy::Backend;
use crate::error::HostError;
use crate::session::{Limits, Session};
use crate::ssh::upload::quote;
use crate::transport::{Flow, SshError, Transport};
use std::sync::atomic::AtomicBool;
use whosent_audit::{Item, Parser};
use whosent_proto::decode::Record;
use whosent_proto::query::Query;
use whosent_proto::record::{EndReason, Ready};

// What audit cannot see is in --help (cli.rs, AFTER_HELP) and
// docs/parse.md.

pub struct Audit {
    query: Query,
    /// The reader's arguments: the filters the kernel applies in the
    /// rules (one signal, one sender pid); the rest is filtered here.
    args: Vec<String>,
    limits: Limits,
    reader: Vec<u8>,
    hash: String,
    release: String,
    arch: String,
    parser: Option<Parser>,
    items: Vec<Item>,
    text: String,
}

impl Audit {
    pub fn new(r: &RunArgs) -> Result<Self, HostError> {
        if r.agent.is_some() {
            return Err(HostError::Usage(
                "--agent is the ftrace agent; --backend audit pushes whosent-audit-reader".into(),
            ));
        }
        let q = crate::query::from_args(&r.query)?;
        crate::query::agent_args(&q, &r.capture)?;
        let mut args = Vec::new();
        if let [sig] = q.sigs[..] {
            args.extend(["--sig".to_string(), sig.to_string()]);
        }
        if let ([pid], None) = (&q.sender_pids[..], q.pid_ns) {
            args.extend(["--sender-pid".to_string(), pid.to_string()]);
        }
        Ok(Audit {
            query: q,
            args,
            limits: Limits {
                count: r.capture.count,
                duration: r.capture.duration,
                halt_on_count: true,
            },
            reader: Vec::new(),
            hash: String::new(),
            release: String::new(),
            arch: String::new(),
            parser: Some(Parser::new()),
            items: Vec::new(),
            text: String::new(),
        })
    }

    /// Writes the records of the items parsed so far.
    fn drain(&mut self, s: &mut Session<'_>) -> Flow {
        for item in std::mem::take(&mut self.items) {
            let sig = match item {
                Ok(sig) => sig,
                Err(e) => {
                    say!(
                        "whosent-deploy: warning: {} (help: {})",
                        whosent_proto::escape::escape(&e.to_string()),
                        e.help()
                    );
                    continue;
                }
            };
            if !self.query.matches(&sig.event) {
                continue;
            }
            self.text.clear();
            sig.encode(&mut self.text);
            if s.rendered_signal(&self.text, &sig.human_line()) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }
}

impl Backend for Audit {
    fn prepare(&mut self, facts: &Facts, arch: Arch, _: &AtomicBool) -> Result<(), HostError> {
        self.release = facts.release.clone();
        self.arch = facts.arch.clone();
        let agent = build::agent_for(build::Agent::Ftrace, arch, "local", true)?;
        let path = build::audit_reader(&agent);
        self.reader = std::fs::read(&path)
            .map_err(|e| HostError::Io(format!("cannot read {}", path.display()), e))?;
        self.hash = crate::bundle::sha256_hex(&self.reader);
        Ok(())
    }

    fn push(&mut self, p: &Pusher<'_>, _existing: bool) -> Result<String, HostError> {
        let remote = p.path(build::AUDIT_READER);
        p.put(build::AUDIT_READER, &self.reader, 0o755, "audit reader")?;
        p.verify(&remote, &self.hash, "audit reader", "running")?;
        let args: Vec<String> = self.args.iter().map(|a| quote(a)).collect();
        Ok(format!("{} {}", quote(&remote), args.join(" "))
            .trim_end()
            .to_string())
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn line(&mut self, raw: &[u8], s: &mut Session<'_>) -> Flow {
        if let Some(rest) = raw.strip_prefix(b"ready ") {
            let rest = String::from_utf8_lossy(rest);
            let key = rest
                .split(' ')
                .find_map(|w| w.strip_prefix("key="))
                .unwrap_or("");
            let ready = Ready::new("audit", &self.release, &self.arch, key, "");
            return s.record(&Record::Ready(ready), None);
        }
        if let Some(p) = self.parser.as_mut() {
            p.line(raw, &mut self.items);
        }
        self.drain(s)
    }

    fn finish(
        &mut self,
        _t: &dyn Transport,
        streamed: Result<i32, SshError>,
        s: &mut Session<'_>,
    ) -> Result<i32, HostError> {
        let status = streamed?;
        if let Some(p) = self.parser.take() {
            p.finish(&mut self.items);
        }
        self.drain(s);
        let reason = s.why().unwrap_or(if status == 0 {
            EndReason::StdinClosed
        } else {
            EndReason::Error
        });
        s.end(reason);
        Ok(status)
    }
}
