//! Cross-building the agent (issue #3). Boards have no compiler, so
//! whosent-deploy builds a fully static `whosent-agent` for the board's
//! architecture from the project's own `target-agent/` sources, with
//! the local Rust toolchain (rust-lld, no C cross compiler, no Docker)
//! or with `cross`, and caches it.
//!
//! - [`Target`]: the supported boards and their names;
//! - [`agent_for`]: the agent for a target, built or from the cache;
//! - [`check_elf`]: refuses a prebuilt agent (`--agent PATH`) that is
//!   not a static ELF for the board.

mod builder;
mod cache;
pub mod elf;
mod recipe;
mod target;
mod toolchain;

pub use builder::{Builder, LINK_DIR_ENV};
pub use elf::{check_elf, parse as parse_elf, ElfInfo};
pub use recipe::{GNUEABIHF_LIBC_PACKAGE, GNUEABIHF_LINKER, GNUEABIHF_LINKER_PACKAGE};
pub use target::{supported, Target, ALL};
pub use toolchain::RUSTUP_ENV;

use crate::cli::BuildArgs;
use crate::error::HostError;
use recipe::Recipe;
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use toolchain::Toolchain;

/// Names the whosent checkout to build the agent from, for a
/// whosent-deploy installed away from its sources.
pub const SOURCE_DIR_ENV: &str = "WHOSENT_SOURCE_DIR";

/// Which agent to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    /// `whosent-agent` (target-agent/): tracefs only, under the size budget.
    Ftrace,
    /// `whosent-ebpf-agent` (target-agent-ebpf/): aya and the BPF program.
    Ebpf,
}

impl Agent {
    /// The package, which is also the binary's name.
    pub fn name(self) -> &'static str {
        match self {
            Agent::Ftrace => "whosent-agent",
            Agent::Ebpf => "whosent-ebpf-agent",
        }
    }
}

/// `whosent-deploy build --target T [--builder B] [--ebpf]`: the agent's
/// path on stdout, progress on stderr.
pub fn command(b: &BuildArgs) -> Result<i32, HostError> {
    let target = Target::parse(&b.target)?;
    let kind = if b.ebpf { Agent::Ebpf } else { Agent::Ftrace };
    let path = agent_for(kind, target, &b.builder, true)?;
    crate::stdout::print(format!("{}\n", path.display()).as_bytes())?;
    Ok(0)
}

/// The workspace to build from: `WHOSENT_SOURCE_DIR`, else the checkout
/// this whosent-deploy was compiled in.
pub fn workspace() -> Result<PathBuf, HostError> {
    let (dir, from) = match std::env::var_os(SOURCE_DIR_ENV).filter(|d| !d.is_empty()) {
        Some(d) => (PathBuf::from(d), SOURCE_DIR_ENV),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
            "where whosent-deploy was built",
        ),
    };
    match dir.join("target-agent/Cargo.toml").is_file() {
        true => Ok(dir.canonicalize().unwrap_or(dir)),
        false => Err(HostError::Other {
            message: format!(
                "cannot find whosent's sources to build the agent: {} ({from}) has no target-agent/Cargo.toml",
                dir.display()
            ),
            help: format!("set {SOURCE_DIR_ENV} to a whosent checkout, or pass --agent PATH with a prebuilt static agent"),
        }),
    }
}

fn say(progress: bool, msg: std::fmt::Arguments) {
    if progress {
        say!("whosent: {msg}");
    }
}

/// The name of the audit reader binary (target-agent/src/bin).
pub const AUDIT_READER: &str = "whosent-audit-reader";

/// The audit reader built with the agent at `agent` (its cache entry).
pub fn audit_reader(agent: &Path) -> PathBuf {
    agent.with_file_name(AUDIT_READER)
}

/// The agent for `target`, built by `builder` ("local" or "cross"), or
/// the cached one when nothing that goes into it has changed. With
/// `progress`, says what it does on stderr and shows cargo's output.
pub fn agent_for(
    kind: Agent,
    target: Target,
    builder: &str,
    progress: bool,
) -> Result<PathBuf, HostError> {
    let bin = kind.name();
    let builder = Builder::parse(builder)?;
    let ws = workspace()?;
    let cache = cache::root().ok_or_else(|| HostError::Other {
        message: "no cache directory for built agents: neither XDG_CACHE_HOME nor HOME is set"
            .into(),
        help: "set XDG_CACHE_HOME or HOME".into(),
    })?;
    let link_dir = cache.join("link");
    let script = link_dir.join(recipe::DISCARD_EH_FILE);
    let tc = Toolchain::new(&ws);
    let rustc = tc.rustc_version()?;
    let key = |triple: &'static str| -> Result<String, HostError> {
        let r = Recipe::new(triple, builder, &script.to_string_lossy());
        let mut inputs: Vec<(&str, Vec<u8>)> = vec![
            ("agent", bin.into()),
            ("triple", triple.into()),
            ("builder", builder.name().into()),
            ("rustc", rustc.clone().into()),
            ("recipe", r.describe().into()),
        ];
        if builder == Builder::Cross {
            inputs.push((
                "Cross.toml",
                fs::read(ws.join("Cross.toml")).unwrap_or_default(),
            ));
        }
        let inputs: Vec<(&str, &[u8])> = inputs.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        cache::key(&ws, &inputs).map_err(|e| {
            HostError::Io(
                format!("cannot read the agent's sources in {}", ws.display()),
                e,
            )
        })
    };

    // The musl build, or for armv7 the static glibc fallback: whichever
    // is cached. (A cached fallback is used without asking rustup for
    // musl again, which would cost a failed download per run.)
    let triples: Vec<&'static str> = [Some(target.triple()), target.fallback_triple()]
        .into_iter()
        .flatten()
        .collect();
    for &triple in &triples {
        let p = cache::entry(&cache, target.name(), &key(triple)?, bin);
        // The ftrace agent's build also makes the audit reader, kept
        // beside it; the eBPF agent has none.
        let reader_ok = kind == Agent::Ebpf || audit_reader(&p).is_file();
        if p.is_file() && check_elf(&p, target).is_ok() && reader_ok {
            say(
                progress,
                format_args!(
                    "using cached {} for {target} ({triple}): {}",
                    match kind {
                        Agent::Ftrace => "agent",
                        Agent::Ebpf => "eBPF agent",
                    },
                    p.display()
                ),
            );
            return Ok(p);
        }
    }

    if builder == Builder::Cross {
        builder::check_cross()?;
    }
    let triple = pick_triple(target, builder, &tc)?;
    let recipe = Recipe::new(triple, builder, &script.to_string_lossy());
    write_if_changed(&script, recipe::DISCARD_EH_SCRIPT)?;
    let how = match builder {
        Builder::Local => "the local Rust toolchain",
        Builder::Cross => "cross",
    };
    say(
        progress,
        format_args!("building {bin} for {target} ({triple}) with {how} …"),
    );
    let target_dir = cache::target_dir(
        &cache,
        match builder {
            Builder::Local => "target",
            Builder::Cross => "target-cross",
        },
        &ws,
    );
    let mut cmd = builder::command(bin, builder, &tc, &ws, &recipe, &target_dir, &link_dir);
    // Several boards at once: cargo's output would carry no board name.
    let status = if progress && !crate::fleet::tag::in_fleet() {
        // cargo's progress to our stderr; nothing of it may reach our
        // stdout, which carries the path.
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| HostError::Io("cannot duplicate stderr".into(), e))?;
        cmd.stdout(Stdio::from(stderr))
            .stderr(Stdio::inherit())
            .status()
            .map(|s| (s, String::new()))
    } else {
        cmd.output().map(|o| (o.status, tail(&o.stderr, 15)))
    };
    let (status, log) =
        status.map_err(|e| HostError::Io(format!("cannot run the {} build", builder.name()), e))?;
    if !status.success() {
        return Err(HostError::Other {
            message: format!("building {bin} for {target} ({triple}) failed ({status}){log}"),
            help: format!(
                "the compiler's messages above say why; `cargo build -p {bin} --profile agent --target {triple}` in {} \
                 with the flags of docs/agent-size.md reproduces it",
                ws.display()
            ),
        });
    }
    let built = target_dir.join(triple).join("agent").join(bin);
    check_elf(&built, target).map_err(|e| HostError::Other {
        message: format!("the build made an unusable agent: {e}"),
        help: "report this as a whosent bug, with the output of `rustc -vV`".into(),
    })?;
    let dest = cache::entry(&cache, target.name(), &key(triple)?, bin);
    // The same build makes the audit reader (target-agent's second
    // binary, --backend audit): kept beside the agent, stored first so
    // that an agent in the cache always has its reader.
    if kind == Agent::Ftrace {
        let reader = built.with_file_name(AUDIT_READER);
        cache::store(&reader, &audit_reader(&dest)).map_err(|e| {
            HostError::Io(
                format!("cannot store the audit reader beside {}", dest.display()),
                e,
            )
        })?;
    }
    cache::store(&built, &dest)
        .map_err(|e| HostError::Io(format!("cannot store the agent in {}", dest.display()), e))?;
    let size = fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    say(
        progress,
        format_args!(
            "built {bin} for {target} ({triple}, {size} bytes): {}",
            dest.display()
        ),
    );
    Ok(dest)
}

/// The triple to build: the musl one, after making sure rustup has it;
/// for armv7, when rustup cannot add it, the static glibc fallback.
fn pick_triple(
    target: Target,
    builder: Builder,
    tc: &Toolchain,
) -> Result<&'static str, HostError> {
    let musl = match tc.ensure_target(target.triple()) {
        Ok(()) => return Ok(target.triple()),
        Err(e) => e,
    };
    let Some(fallback) = target.fallback_triple() else {
        return Err(musl.into_error());
    };
    // Said even without progress: the user gets another kind of binary.
    say!(
        "whosent: {}; building a fully static glibc agent for {fallback} instead (docs/agent-size.md)",
        musl.into_error()
    );
    tc.ensure_target(fallback)
        .map_err(toolchain::Unavailable::into_error)?;
    if builder == Builder::Local && toolchain::find_in_path(GNUEABIHF_LINKER).is_none() {
        return Err(HostError::Other {
            message: format!("the static glibc armv7 agent ({fallback}) needs the C cross linker {GNUEABIHF_LINKER}, which is not installed"),
            help: format!("install the Debian package {GNUEABIHF_LINKER_PACKAGE} (`apt-get install {GNUEABIHF_LINKER_PACKAGE}`), or use --builder cross"),
        });
    }
    if builder == Builder::Local && !linker_has_crt1(GNUEABIHF_LINKER) {
        return Err(HostError::Other {
            message: format!("{GNUEABIHF_LINKER} is installed but has no C runtime (crt1.o) or static libc to link the armv7 agent with"),
            help: format!("install the Debian package {GNUEABIHF_LIBC_PACKAGE} (`apt-get install {GNUEABIHF_LIBC_PACKAGE}`; {GNUEABIHF_LINKER_PACKAGE} only recommends it), or use --builder cross"),
        });
    }
    Ok(fallback)
}

/// Whether a gcc finds its target's crt1.o: `-print-file-name` prints
/// the bare name back when the file is not in its search path.
fn linker_has_crt1(gcc: &str) -> bool {
    std::process::Command::new(gcc)
        .arg("-print-file-name=crt1.o")
        .output()
        .is_ok_and(|o| {
            let p = String::from_utf8_lossy(&o.stdout);
            o.status.success() && Path::new(p.trim()).is_absolute() && Path::new(p.trim()).exists()
        })
}

/// Writes `content` to `path` unless it is there already; through a
/// temporary file, so that a concurrent build never links with half a script.
fn write_if_changed(path: &Path, content: &str) -> Result<(), HostError> {
    if fs::read_to_string(path).is_ok_and(|c| c == content) {
        return Ok(());
    }
    let io = |e| HostError::Io(format!("cannot write {}", path.display()), e);
    fs::create_dir_all(path.parent().expect("the script has a directory")).map_err(io)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, content).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// The last `n` lines of captured output, for an error message.
fn tail(out: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(out);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|l| format!("\n  {l}")).collect()
}
