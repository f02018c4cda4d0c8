//! `--backend stap` as a deploy backend: the payload is a SystemTap
//! module cross-compiled here for the board's kernel (and, on a board
//! without staprun, the staprun bundle); the command is [`wrapper`],
//! which unloads the module on every way out; the module's lines become
//! records in [`Lines`]. The host filters what the module cannot and
//! enforces `--count` (unless the module can) and `--duration`.
//!
//! 1. Before connecting: the flags, the query split, the local files.
//! 2. After the probe: the board's staprun or the bundle; the kernel
//!    tree checked against the board; the module built (or reused) and
//!    its vermagic checked.
//! 3. Push ([`super::push`]), stream, and at the end check
//!    /proc/modules once more.

use super::lines::Lines;
use super::params::{self, Plan};
use super::script::MODULE_NAME;
use super::staprun::{read_bundle, wrapper, Bundle, Staprun};
use super::tree::{self, Tree};
use super::{build, other, push, vermagic};
use crate::board::Facts;
use crate::build::Target as Arch;
use crate::cli::{RunArgs, StapArgs};
use crate::deploy::push::Pusher;
use crate::deploy::Backend;
use crate::error::HostError;
use crate::session::{Limits, Session};
use crate::ssh::upload::quote;
use crate::transport::{Flow, SshError, Transport};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use whosent_proto::query::Query;

pub struct Stap {
    args: StapArgs,
    query: Query,
    plan: Plan,
    limits: Limits,
    bundle: Option<Bundle>,
    /// The module's bytes and how the board runs staprun, once prepared.
    module: Option<(Vec<u8>, Staprun)>,
    lines: Option<Lines>,
    /// `--keep`: the directory stays on the board for the next run.
    keep: bool,
}

/// What the host enforces: `--duration` always, `--count` unless the
/// module counts itself (`max_events`).
pub fn limits(plan: &Plan, count: Option<u64>) -> Limits {
    Limits {
        count,
        duration: None,
        halt_on_count: plan.params.max_events == 0,
    }
}

fn check_flags(r: &RunArgs, host: &str) -> Result<(), HostError> {
    let bad = |m: &str| Err(HostError::Usage(m.into()));
    if host == "local" {
        return bad(
            "--backend stap runs on a board over SSH; --host local is for the ftrace agent",
        );
    }
    if r.agent.is_some() {
        return bad(
            "--agent is the ftrace agent; --backend stap pushes a SystemTap module instead",
        );
    }
    Ok(())
}

impl Stap {
    /// Checks the flags and the local files, before connecting: a
    /// missing tree is a typo, not a board problem.
    pub fn new(r: &RunArgs, host: &str) -> Result<Self, HostError> {
        check_flags(r, host)?;
        let q = crate::query::from_args(&r.query)?;
        // The same checks of --count and --duration as for the agent.
        crate::query::agent_args(&q, &r.capture)?;
        let plan = params::plan(&q, r.capture.count)?;
        if !plan.exact() {
            say!(
                "whosent: the module filters on one value per flag; {} filtered here instead",
                plan.host_only.join(", ")
            );
        }
        let s = &r.stap;
        let bundle = s.staprun_bundle.as_deref().map(read_bundle).transpose()?;
        tree::locate(s.kernel_build.as_deref(), s.sysroot.as_deref(), None)?;
        let mut limits = limits(&plan, r.capture.count);
        limits.duration = r.capture.duration;
        Ok(Stap {
            args: s.clone(),
            query: q,
            plan,
            limits,
            bundle,
            module: None,
            lines: None,
            keep: r.keep,
        })
    }

    /// A module already built (tests): `prepare` only checks the board.
    /// `keep` is `--keep`.
    pub fn with_module(
        q: Query,
        count: Option<u64>,
        ko: Vec<u8>,
        staprun: Staprun,
        keep: bool,
    ) -> Self {
        let plan = params::plan(&q, count).expect("a query the module can take");
        Stap {
            args: StapArgs::default(),
            limits: limits(&plan, count),
            query: q,
            plan,
            bundle: None,
            module: Some((ko, staprun)),
            lines: None,
            keep,
        }
    }

    fn staprun(&mut self, facts: &Facts, arch: Arch) -> Result<Staprun, HostError> {
        match (facts.has("staprun"), self.bundle.take()) {
            (true, _) => Ok(Staprun::Board),
            (false, Some(b)) => {
                let path = self.args.staprun_bundle.as_deref().unwrap_or(Path::new(""));
                Ok(Staprun::Bundle(b.check(arch, path)?))
            }
            (false, None) => Err(other(
                "board without staprun and no bundle: the board has no staprun to load the module with",
                "pass --staprun-bundle FILE (scripts/staprun-bundle.sh builds one), or install \
                     SystemTap's runtime (staprun, stapio) on the board",
            )),
        }
    }
}

impl Backend for Stap {
    fn prepare(&mut self, facts: &Facts, arch: Arch, stop: &AtomicBool) -> Result<(), HostError> {
        self.lines = Some(Lines::new(self.query.clone(), self.plan.clone(), facts));
        if self.module.is_some() {
            return Ok(());
        }
        let staprun = self.staprun(facts, arch)?;
        let s = &self.args;
        let build_dir = tree::locate(
            s.kernel_build.as_deref(),
            s.sysroot.as_deref(),
            Some(&facts.release),
        )?;
        let tree = Tree::open(&build_dir)?;
        tree.check(&facts.release, arch)?;
        let module = build::module(
            &build::Request {
                tree: &tree,
                user_runtime: s.stap_runtime.as_deref(),
                defines: &s.define,
            },
            stop,
        )?;
        let info = vermagic::read(&module.ko)?;
        vermagic::check(&info, &facts.release, arch, MODULE_NAME)?;
        if module.cached {
            say!("whosent: using the cached module {}", module.ko.display());
        }
        let ko = std::fs::read(&module.ko)
            .map_err(|e| HostError::Io(format!("cannot read {}", module.ko.display()), e))?;
        self.module = Some((ko, staprun));
        Ok(())
    }

    /// With `--keep`: the hash of the module and the staprun bundle.
    fn keep(&self) -> Option<String> {
        let (ko, staprun) = self.module.as_ref()?;
        Some(push::keep_key(ko, staprun))
    }

    fn push(&mut self, p: &Pusher<'_>, existing: bool) -> Result<String, HostError> {
        let (ko, staprun) = self.module.as_ref().expect("prepared");
        let staprun_cmd = push::push(p, ko, staprun, existing, self.keep)?;
        let script = wrapper(
            p.dir,
            &staprun_cmd,
            &self.plan.params.module_args(),
            self.keep,
        );
        Ok(format!("sh -c {}", quote(&script)))
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn line(&mut self, raw: &[u8], s: &mut Session<'_>) -> Flow {
        self.lines.as_mut().expect("prepared").line(raw, s)
    }

    fn stderr(&mut self, chunk: &[u8], s: &mut Session<'_>) {
        self.lines.as_mut().expect("prepared").stderr(chunk, s)
    }

    fn finish(
        &mut self,
        t: &dyn Transport,
        streamed: Result<i32, SshError>,
        s: &mut Session<'_>,
    ) -> Result<i32, HostError> {
        let lines = self.lines.as_mut().expect("prepared");
        let status = match streamed {
            Ok(st) => st,
            Err(SshError::NoExit { .. }) => {
                // The stop reached the board; stapio takes its time. The
                // wrapper still unloads; wait for that here.
                say!("whosent: the board is slow to unload the module; waiting");
                push::wait_unloaded(t, lines.module());
                0
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(m) = lines.finish(status, s) {
            push::still_loaded(t, &m)?;
        }
        Ok(status)
    }
}
