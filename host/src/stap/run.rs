//! `whosent-deploy --backend stap`: the ftrace deploy's path
//! ([`crate::remote`]) with a module instead of the agent.
//!
//! 1. Check the flags and the local files before connecting.
//! 2. Connect and probe the board; pick its staprun, or the bundle.
//! 3. Check the kernel tree against the board, build (or reuse) the
//!    module, check the module's vermagic against the board.
//! 4. Upload the module (and the bundle) into a private directory and
//!    check their sha256 there.
//! 5. Run [`wrapper`] on the board, turn the module's lines into
//!    records as they come, stop it on count, duration or Ctrl-C.
//!
//! # Unloading on every way out
//!
//! stapio unloads the module when it gets SIGINT, SIGTERM or SIGHUP, or
//! when the script calls `exit()` (`max_events`). What it does *not*
//! notice is the SSH channel closing: exec commands run without a
//! terminal, so no SIGHUP comes, and stapio does not read its stdin; it
//! was seen to stay loaded after the connection dropped until its next
//! write failed. So the board runs stapio under a small sh that turns
//! EOF on stdin into SIGTERM: the host stops a session by closing stdin
//! (count, duration, Ctrl-C, stdout gone), and a dropped connection or
//! a killed whosent-deploy closes it too. The sh then checks
//! /proc/modules and unloads a module stapio left behind, and removes
//! the directory. The host checks /proc/modules once more at the end.

use super::params::{self, Plan};
use super::parse::{self, Line};
use super::script::MODULE_NAME;
use super::tree::{self, Tree};
use super::{build, other, vermagic};
use crate::board::Facts;
use crate::build::Target as Arch;
use crate::bundle::sha256_hex;
use crate::cli::RunArgs;
use crate::error::HostError;
use crate::remote::{self, RemoteDir};
use crate::report::Report;
use crate::ssh::upload::quote;
use crate::ssh::{self, Conn, SshError, UploadOpts};
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};
use whosent_proto::query::Query;
use whosent_proto::record::{End, EndReason, Ready};

/// staprun's buffer in MB; the default (about 32 MB) is a lot for a
/// small board, and signals are few (docs/stap-notes.md).
const BUFFER_MB: u32 = 1;
/// How long to wait for the board to unload after a stop that the
/// SSH layer gave up on.
const UNLOAD_WAIT: Duration = Duration::from_secs(15);

/// How the board runs staprun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staprun {
    /// The board's own `staprun` (in PATH).
    Board,
    /// The bundle's bytes; pushed and run as `DIR/rt/run-staprun`.
    Bundle(Vec<u8>),
}

/// A `--staprun-bundle`, read and looked into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub data: Vec<u8>,
    /// `e_machine` of its `bin/staprun`.
    pub machine: u16,
}

const BUNDLE_HINT: &str =
    "build one with scripts/staprun-bundle.sh ARCH (a tar.gz with run-staprun, bin/ and lib/)";

/// Reads and checks a `--staprun-bundle`: a tar.gz with `run-staprun`
/// and an ELF `bin/staprun`.
pub fn read_bundle(path: &Path) -> Result<Bundle, HostError> {
    let data = std::fs::read(path).map_err(|e| {
        other(
            format!("cannot read --staprun-bundle {}: {e}", path.display()),
            BUNDLE_HINT,
        )
    })?;
    let bad = |why: String| {
        other(
            format!("--staprun-bundle {}: {why}", path.display()),
            BUNDLE_HINT,
        )
    };
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(data.as_slice()));
    let (mut runner, mut machine) = (false, None);
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a tar.gz ({e})")))?;
    for e in entries {
        let mut e = e.map_err(|e| bad(format!("not a tar.gz ({e})")))?;
        let p = e
            .path()
            .map(|p| p.to_string_lossy().trim_start_matches("./").to_string());
        match p.as_deref() {
            Ok("run-staprun") => runner = true,
            Ok("bin/staprun") => {
                let mut head = [0u8; 20];
                if e.read_exact(&mut head).is_ok() && head.starts_with(b"\x7fELF") {
                    let m = [head[18], head[19]];
                    machine = Some(if head[5] == 2 {
                        u16::from_be_bytes(m)
                    } else {
                        u16::from_le_bytes(m)
                    });
                }
            }
            _ => {}
        }
    }
    if !runner {
        return Err(bad("it has no run-staprun at its top".into()));
    }
    let machine = machine.ok_or_else(|| bad("it has no bin/staprun ELF binary".into()))?;
    Ok(Bundle { data, machine })
}

impl Bundle {
    /// Its staprun must run on the board.
    fn check(self, arch: Arch, path: &Path) -> Result<Vec<u8>, HostError> {
        if self.machine != arch.elf_machine() {
            return Err(other(
                format!(
                    "--staprun-bundle {} holds a staprun for ELF machine {}, but the board is {}",
                    path.display(),
                    self.machine,
                    arch.name()
                ),
                "build the bundle for the board's architecture (scripts/staprun-bundle.sh arm64|armhf|amd64)",
            ));
        }
        Ok(self.data)
    }
}

/// The sh the board runs; see the module docs. `staprun` is the
/// command (already quoted), `args` the module options.
pub fn wrapper(dir: &str, staprun: &str, args: &[String]) -> String {
    let opts: Vec<String> = args.iter().map(|a| quote(a)).collect();
    format!(
        r#"d={dir}
cd "$d" || exit 2
exec 3<&0
{staprun} -b {BUFFER_MB} -R ./{MODULE_NAME}.ko {opts} </dev/null 3<&- &
p=$!
trap '' PIPE
(while read -r _; do :; done <&3; [ -d "$d" ] && kill -TERM "$p") >/dev/null 2>&1 &
w=$!
exec 3<&- 0</dev/null
wait "$p"; st=$?
kill "$w" 2>/dev/null
n={MODULE_NAME}; s="_$p"
m=$(echo "$n" | cut -c1-$((${{#n}} - ${{#s}})))$s
if grep -q "^$m " /proc/modules 2>/dev/null; then
  echo "whosent: stapio left $m loaded; unloading it" >&2
  {staprun} -d "$m" >/dev/null 2>&1 || rmmod "$m" 2>/dev/null
fi
cd / && rm -rf "$d"
exit "$st"
"#,
        dir = quote(dir),
        opts = opts.join(" "),
    )
}

/// Why the host stopped the session.
const WHY_NONE: u8 = 0;
const WHY_COUNT: u8 = 1;
const WHY_DURATION: u8 = 2;
const WHY_INTERRUPTED: u8 = 3;

/// What the stream has seen so far, and the records it makes of it.
struct Session<'a, W: Write> {
    report: Report<W>,
    query: &'a Query,
    plan: &'a Plan,
    count: Option<u64>,
    facts: &'a Facts,
    /// The name the module was loaded under, from its `ready` line.
    module: Option<String>,
    signals: u64,
    lost: u64,
    /// Why the module said `end`; the `end` record is written once the
    /// stream is over, because stap's loss warnings come after it.
    ended: Option<EndReason>,
    why: &'a AtomicU8,
    halt: &'a AtomicBool,
    err_buf: Vec<u8>,
    out_gone: bool,
}

impl<W: Write> Session<'_, W> {
    fn emit(&mut self, json: &str) -> ssh::Flow {
        if self.report.line(json.trim_end().as_bytes()).is_err() {
            self.out_gone = true;
            return ssh::Flow::Stop;
        }
        ssh::Flow::Continue
    }

    fn reason(&self) -> Option<EndReason> {
        match self.why.load(Ordering::SeqCst) {
            WHY_COUNT => Some(EndReason::Count),
            WHY_DURATION => Some(EndReason::Duration),
            WHY_INTERRUPTED => Some(EndReason::Interrupted),
            _ => None,
        }
    }

    fn line(&mut self, raw: &[u8]) -> ssh::Flow {
        let text = String::from_utf8_lossy(raw);
        let mut json = String::new();
        match parse::parse_line(&text) {
            Ok(Line::Ready(r)) => {
                self.check_params(&r);
                self.module = Some(r.module.clone());
                Ready::new(
                    "stap",
                    &self.facts.release,
                    &self.facts.arch,
                    &r.module,
                    &self.plan.params.describe(),
                )
                .encode(&mut json);
                self.emit(&json)
            }
            Ok(Line::Signal(e)) => {
                if !params::matches(self.query, &e) || self.count.is_some_and(|c| self.signals >= c)
                {
                    return ssh::Flow::Continue;
                }
                self.signals += 1;
                if self.count.is_some_and(|c| self.signals >= c) {
                    let _ = self.why.compare_exchange(
                        WHY_NONE,
                        WHY_COUNT,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                    // With max_events the module stops by itself; a stop
                    // from here would only race it.
                    if self.plan.params.max_events == 0 {
                        self.halt.store(true, Ordering::SeqCst);
                    }
                }
                e.encode(&mut json);
                self.emit(&json)
            }
            Ok(Line::End(end)) => {
                let max = self.plan.params.max_events;
                self.ended = Some(match self.reason() {
                    Some(r) => r,
                    None if max > 0 && end.matched >= max as u64 => EndReason::Count,
                    // Nobody here stopped it: stapio got a signal on the board.
                    None => EndReason::Terminated,
                });
                ssh::Flow::Continue
            }
            Ok(Line::Other(l)) => {
                if !l.is_empty() {
                    eprintln!("{l}");
                }
                ssh::Flow::Continue
            }
            Err(e) => {
                eprintln!("whosent-deploy: warning: {e}");
                ssh::Flow::Continue
            }
        }
    }

    fn end(&mut self, reason: EndReason) -> ssh::Flow {
        let mut json = String::new();
        End {
            reason,
            signals: self.signals,
            lost: self.lost,
        }
        .encode(&mut json);
        self.emit(&json)
    }

    /// The `ready` line echoes the parameters as the module saw them.
    fn check_params(&self, r: &parse::Ready) {
        for (k, v) in self.plan.params.pairs() {
            let want = match v {
                params::ParamValue::Int(n) => n.to_string(),
                params::ParamValue::Str(s) => s.to_string(),
            };
            if let Some(got) = r.param(k) {
                if got != want {
                    eprintln!(
                        "whosent-deploy: warning: the module reports {k}={got:?}, but {want:?} was passed"
                    );
                }
            }
        }
    }

    /// stderr from the board, passed on line by line; stap's loss
    /// warnings are counted as lost events.
    fn stderr(&mut self, chunk: &[u8]) {
        self.err_buf.extend_from_slice(chunk);
        while let Some(nl) = self.err_buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.err_buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            self.lost += lost_in(&line);
            eprint!("{line}");
        }
    }
}

/// Events a stap warning says were lost: "skipped probes: N" (probes
/// that could not run, runtime/translate) and "There were N transport
/// failures" (runtime/transport/transport.c).
pub fn lost_in(line: &str) -> u64 {
    let after = |pat: &str| -> Option<u64> {
        let rest = &line[line.find(pat)? + pat.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    after("skipped probes: ")
        .or_else(|| after("There were "))
        .filter(|_| line.contains("skipped probes") || line.contains("transport failures"))
        .unwrap_or(0)
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
    if r.keep {
        return bad(
            "--keep is for the ftrace agent; the stap backend always removes what it pushed",
        );
    }
    Ok(())
}

pub fn run(r: &RunArgs, host: &str, stop: &'static AtomicBool) -> Result<i32, HostError> {
    let s = &r.stap;
    check_flags(r, host)?;
    let q = crate::query::from_args(&r.query)?;
    // The same checks of --count and --duration as for the agent.
    crate::query::agent_args(&q, &r.capture)?;
    let plan = params::plan(&q, r.capture.count)?;
    if !plan.exact() {
        eprintln!(
            "whosent: the module filters on one value per flag; {} filtered here instead",
            plan.host_only.join(", ")
        );
    }
    let bundle = s.staprun_bundle.as_deref().map(read_bundle).transpose()?;
    // Before connecting: a missing tree is a typo, not a board problem.
    tree::locate(s.kernel_build.as_deref(), s.sysroot.as_deref(), None)?;

    let (target, conn) = remote::connect(&r.ssh)?;
    let facts = remote::probe(&conn, r.sudo)?;
    let arch = remote::arch(r.target.as_deref(), &facts)?;
    remote::check_privileges(&facts, r.sudo)?;
    eprintln!(
        "whosent: connected to {}@{}:{} ({}, Linux {})",
        target.user, target.host, target.port, facts.arch, facts.release
    );
    let staprun = match (facts.has("staprun"), bundle) {
        (true, _) => Staprun::Board,
        (false, Some(b)) => {
            Staprun::Bundle(b.check(arch, s.staprun_bundle.as_deref().unwrap_or(Path::new("")))?)
        }
        (false, None) => return Err(other(
            "board without staprun and no bundle: the board has no staprun to load the module with",
            "pass --staprun-bundle FILE (scripts/staprun-bundle.sh builds one), or install \
                 SystemTap's runtime (staprun, stapio) on the board",
        )),
    };
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
        eprintln!("whosent: using the cached module {}", module.ko.display());
    }
    let ko = std::fs::read(&module.ko)
        .map_err(|e| HostError::Io(format!("cannot read {}", module.ko.display()), e))?;

    let ko_hash = sha256_hex(&ko);
    let (mut dir, _) = remote::make_dir(&conn, &ko_hash, false)?;
    let staprun_cmd = push(&conn, &facts, &dir, &ko, &ko_hash, &staprun)?;
    let script = wrapper(&dir.path, &staprun_cmd, &plan.params.module_args());
    let sudo = if facts.is_root() { "" } else { "sudo -n " };
    let cmd = format!("{sudo}sh -c {}", quote(&script));
    // From here the wrapper removes the directory itself.
    dir.remove_on_drop = false;

    let mut report = Report::new(io::stdout().lock(), r.capture.json, Some(host.to_string()));
    report.quiet = r.capture.json && !io::stderr().is_terminal();
    let why = AtomicU8::new(WHY_NONE);
    let halt = AtomicBool::new(false);
    let mut sess = Session {
        report,
        query: &q,
        plan: &plan,
        count: r.capture.count,
        facts: &facts,
        module: None,
        signals: 0,
        lost: 0,
        ended: None,
        why: &why,
        halt: &halt,
        err_buf: Vec::new(),
        out_gone: false,
    };
    let deadline = r
        .capture
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let done = AtomicBool::new(false);
    let streamed = std::thread::scope(|sc| {
        // Ctrl-C and --duration become a stop of this stream.
        sc.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let why_now = if stop.load(Ordering::SeqCst) {
                    WHY_INTERRUPTED
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    WHY_DURATION
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let _ = why.compare_exchange(WHY_NONE, why_now, Ordering::SeqCst, Ordering::SeqCst);
                halt.store(true, Ordering::SeqCst);
                return;
            }
        });
        // Both callbacks feed the one session, never at the same time.
        let shared = std::cell::RefCell::new(&mut sess);
        let res = conn.stream(
            &cmd,
            &mut |line| shared.borrow_mut().line(line),
            &mut |chunk| shared.borrow_mut().stderr(chunk),
            &halt,
        );
        done.store(true, Ordering::SeqCst);
        res
    });
    let status = match streamed {
        Ok(st) => st,
        Err(SshError::NoExit { .. }) => {
            // The stop reached the board; stapio takes its time. The
            // wrapper still unloads; wait for that here.
            eprintln!("whosent: the board is slow to unload the module; waiting");
            wait_unloaded(&conn, sess.module.as_deref());
            0
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(m) = sess.module.clone() {
        let reason = sess.ended.or_else(|| {
            eprintln!("whosent-deploy: warning: the module's session ended without its end line (status {status})");
            Some(sess.reason().unwrap_or(EndReason::Error))
        });
        if !sess.out_gone {
            sess.end(reason.unwrap_or(EndReason::Error));
        }
        still_loaded(&conn, &m)?;
    }
    Ok(sess.report.status(status))
}

/// Uploads the module (and the bundle) into `dir`, checked; returns
/// the staprun command to use there.
fn push(
    conn: &Conn,
    facts: &Facts,
    dir: &RemoteDir,
    ko: &[u8],
    ko_hash: &str,
    staprun: &Staprun,
) -> Result<String, HostError> {
    let bundle_len = match staprun {
        Staprun::Bundle(b) => b.len() as u64,
        Staprun::Board => 0,
    };
    // The bundle unpacks to about 2.6 times its size.
    let need_kb = (ko.len() as u64 + bundle_len * 4) / 1024;
    if let Some(kb) = facts.tmp_free_kb {
        if kb < need_kb {
            return Err(other(
                format!("the board has {kb} KiB free in /tmp, and the module and staprun need about {need_kb} KiB"),
                "free space in /tmp on the board (or set TMPDIR for the login user)",
            ));
        }
    }
    let ko_path = format!("{}/{MODULE_NAME}.ko", dir.path);
    let mut bar = remote::progress_bar("uploading the module");
    conn.upload_with(
        ko,
        &ko_path,
        0o600,
        UploadOpts {
            progress: Some(&mut bar),
            ..Default::default()
        },
    )?;
    verify(conn, facts, &ko_path, ko_hash, "module")?;
    let cmd = match staprun {
        Staprun::Board => {
            eprintln!(
                "whosent: uploaded the module ({} KiB) to {}; using the board's staprun",
                ko.len() / 1024,
                dir.path
            );
            "staprun".to_string()
        }
        Staprun::Bundle(b) => {
            if dir.path.contains(char::is_whitespace) {
                return Err(other(
                    format!("the board's directory {:?} has a space, which the staprun bundle cannot run from", dir.path),
                    "set TMPDIR for the login user to a path without spaces",
                ));
            }
            if !facts.has("tar") {
                return Err(other(
                    "the board has no staprun and no tar to unpack the staprun bundle with",
                    "install tar (busybox tar will do) or SystemTap's runtime on the board",
                ));
            }
            let tgz = format!("{}/staprun.tar.gz", dir.path);
            let mut bar = remote::progress_bar("uploading staprun");
            conn.upload_with(
                b,
                &tgz,
                0o600,
                UploadOpts {
                    progress: Some(&mut bar),
                    ..Default::default()
                },
            )?;
            verify(conn, facts, &tgz, &sha256_hex(b), "staprun bundle")?;
            let rt = format!("{}/rt", dir.path);
            let out = conn.run(&format!(
                "mkdir {rt} && tar -xzf {tgz} -C {rt} && rm -f {tgz}",
                rt = quote(&rt),
                tgz = quote(&tgz)
            ))?;
            if out.status != 0 {
                return Err(other(
                    format!(
                        "unpacking the staprun bundle on the board failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                    "check free space in /tmp on the board (`whosent-deploy doctor`)",
                ));
            }
            eprintln!(
                "whosent: uploaded the module ({} KiB) and staprun ({} KiB) to {}; sha256 verified",
                ko.len() / 1024,
                b.len() / 1024,
                dir.path
            );
            quote(&format!("{rt}/run-staprun"))
        }
    };
    Ok(cmd)
}

fn verify(conn: &Conn, facts: &Facts, path: &str, hash: &str, what: &str) -> Result<(), HostError> {
    match remote::remote_sha256(conn, facts, path)? {
        Some(h) if h == hash => Ok(()),
        Some(h) => Err(other(
            format!("the {what} on the board has sha256 {h}, expected {hash}; not loading it"),
            "retry; if it persists, check the board's storage (a full or failing /tmp)",
        )),
        None => Err(other(
            format!("could not read back the uploaded {what} to check its sha256"),
            "check free space in /tmp on the board (`whosent-deploy doctor`)",
        )),
    }
}

fn loaded(conn: &Conn, module: &str) -> Result<bool, HostError> {
    let out = conn.run(&format!(
        "grep -q {} /proc/modules && echo loaded; true",
        quote(&format!("^{module} "))
    ))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("loaded"))
}

fn wait_unloaded(conn: &Conn, module: Option<&str>) {
    let Some(m) = module else { return };
    let end = Instant::now() + UNLOAD_WAIT;
    while Instant::now() < end {
        if !loaded(conn, m).unwrap_or(false) {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The last word: the module must be gone from the board.
fn still_loaded(conn: &Conn, module: &str) -> Result<(), HostError> {
    if !loaded(conn, module)? {
        return Ok(());
    }
    wait_unloaded(conn, Some(module));
    if loaded(conn, module)? {
        return Err(other(
            format!("the module {module} is still loaded on the board after the session ended"),
            format!("unload it there with `staprun -d {module}` or `rmmod {module}`"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_warnings() {
        assert_eq!(
            lost_in("WARNING: Number of errors: 0, skipped probes: 12\n"),
            12
        );
        assert_eq!(
            lost_in("WARNING: There were 3 transport failures. Try stap -s to increase the buffer size from 1.\n"),
            3
        );
        assert_eq!(lost_in("There were 3 cats\n"), 0);
        assert_eq!(lost_in("hello"), 0);
    }

    #[test]
    fn the_wrapper_quotes_what_it_is_given() {
        let w = wrapper(
            "/tmp/whosent.ab12",
            "staprun",
            &["target_comm=\"it's me\"".into(), "target_sig=9".into()],
        );
        assert!(w.starts_with("d='/tmp/whosent.ab12'\n"), "{w}");
        assert!(w.contains("staprun -b 1 -R ./whosent_session.ko 'target_comm=\"it'\\''s me\"' 'target_sig=9' </dev/null 3<&- &"), "{w}");
        assert!(
            w.contains("m=$(echo \"$n\" | cut -c1-$((${#n} - ${#s})))$s\n"),
            "{w}"
        );
    }
}
