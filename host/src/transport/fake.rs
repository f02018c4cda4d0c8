//! A board in memory, for unit tests of the deploy flow: it answers the
//! probe from scripted facts, keeps uploads in a map, unpacks bundles,
//! hashes files, removes directories, and replays recorded agent (or
//! module) output as the stream. Every command is logged, so a test can
//! check what was asked of the board and what is left on it.
//!
//! It plays a board that behaves; the faults are switches
//! ([`Board::corrupt_uploads`], [`Script::drop_after`], no `tar` in
//! [`Board::tools`], a small [`Board::tmp_free_kb`]) or a scripted reply
//! to any command ([`FakeBoard::on`]).

use super::{Flow, Output, SshError, Transport, UploadMethod};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the board is and holds.
#[derive(Debug, Clone)]
pub struct Board {
    pub arch: String,
    pub release: String,
    pub login_uid: u32,
    /// Commands the board has (the probe's `has_*`).
    pub tools: Vec<&'static str>,
    pub tmp_free_kb: u64,
    /// `sudo -n true` works for the login user.
    pub sudo_ok: bool,
    /// Flips a byte of every upload as it lands (a failing /tmp).
    pub corrupt_uploads: bool,
    /// Path to content: uploads and what bundles unpacked to.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Modules listed in /proc/modules.
    pub modules: Vec<String>,
    /// The kernel has the bpf system call (the probe's
    /// `unprivileged_bpf_disabled`).
    pub bpf: bool,
}

impl Default for Board {
    /// A root login on a busybox aarch64 board with room in /tmp.
    fn default() -> Self {
        Board {
            arch: "aarch64".into(),
            release: "6.1.0-56-arm64".into(),
            login_uid: 0,
            tools: vec!["tar", "sha256sum", "mktemp", "gzip"],
            tmp_free_kb: 250_000,
            sudo_ok: false,
            corrupt_uploads: false,
            files: BTreeMap::new(),
            modules: Vec::new(),
            bpf: false,
        }
    }
}

/// What the streamed command prints.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub stdout: Vec<String>,
    /// Printed after the stdout lines.
    pub stderr: String,
    pub status: i32,
    /// The channel drops after this many lines: the stream fails.
    pub drop_after: Option<usize>,
    /// What the command prints once its stdin closes early (the
    /// agent's `end` record), instead of the rest of `stdout`.
    pub on_stop: Vec<String>,
    /// Ctrl-C comes before this many lines: `ctrl_c` (the flag given to
    /// the flow as its `stop`) is set, and the stream waits for the flow
    /// to turn it into a stop of the stream.
    pub stop_at: Option<usize>,
    pub ctrl_c: Option<std::sync::Arc<AtomicBool>>,
}

#[derive(Default)]
struct State {
    board: Board,
    script: Script,
    rules: Vec<(String, Output)>,
    log: Vec<String>,
}

pub struct FakeBoard {
    st: RefCell<State>,
}

/// Where the fake makes its private directories.
pub const DIR: &str = "/tmp/whosent.fake";

fn out(status: i32, stdout: impl Into<Vec<u8>>, stderr: &str) -> Output {
    Output {
        status,
        stdout: stdout.into(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

impl FakeBoard {
    pub fn new(board: Board, script: Script) -> Self {
        FakeBoard {
            st: RefCell::new(State {
                board,
                script,
                ..State::default()
            }),
        }
    }

    /// Any command containing `pattern` gets `reply` (later rules win).
    pub fn on(&self, pattern: &str, reply: Output) {
        self.st
            .borrow_mut()
            .rules
            .insert(0, (pattern.into(), reply));
    }

    /// Every command run or streamed, in order; uploads as `upload PATH`.
    pub fn log(&self) -> Vec<String> {
        self.st.borrow().log.clone()
    }

    /// The files on the board now.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        self.st.borrow().board.files.clone()
    }

    fn probe(b: &Board, sudo: bool) -> String {
        let uid = if sudo && b.sudo_ok { 0 } else { b.login_uid };
        let mut s = format!(
            "login_uid={}\narch={}\nrelease={}\nuid={uid}\n",
            b.login_uid, b.arch, b.release
        );
        for t in [
            "tar",
            "sha256sum",
            "scp",
            "mktemp",
            "staprun",
            "sudo",
            "gzip",
        ] {
            s += &format!("has_{t}={}\n", u8::from(b.tools.contains(&t)));
        }
        s += "tracefs=/sys/kernel/tracing\nsignal_events=1\ninstances=1\n";
        s += &format!("tmp_df=tmpfs 252620 4 {} 0% /tmp\n", b.tmp_free_kb);
        if b.bpf {
            s += "unprivileged_bpf_disabled=2\nbpf_jit_enable=1\n";
        }
        if uid != 0 && b.sudo_ok {
            s += "sudo_ok=1\n";
        }
        s
    }

    /// Unpacks the tar.gz at `tgz` into `into`; false if it is no tar.gz.
    fn untar(b: &mut Board, tgz: &str, into: &str) -> bool {
        let Some(data) = b.files.remove(tgz) else {
            return false;
        };
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(data.as_slice()));
        let Ok(entries) = ar.entries() else {
            return false;
        };
        for e in entries {
            let Ok(mut e) = e else { return false };
            let name = e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let mut content = Vec::new();
            if e.read_to_end(&mut content).is_err() {
                return false;
            }
            b.files.insert(format!("{into}/{name}"), content);
        }
        true
    }

    fn answer(&self, cmd: &str) -> Output {
        let mut st = self.st.borrow_mut();
        st.log.push(cmd.to_string());
        if let Some((_, reply)) = st.rules.iter().find(|(p, _)| cmd.contains(p.as_str())) {
            return reply.clone();
        }
        let b = &mut st.board;
        let words = shlex::split(cmd.lines().next().unwrap_or("")).unwrap_or_default();
        let arg = |i: usize| words.get(i).cloned().unwrap_or_default();
        let has_tar = b.tools.contains(&"tar");
        if cmd.contains("login_uid=$(id -u)") {
            out(0, Self::probe(b, cmd.contains("sudo -n sh -c")), "")
        } else if cmd.contains("whosent-keep-$(id -u)-") {
            let h = cmd
                .split("$(id -u)-")
                .nth(1)
                .unwrap_or("")
                .get(..16)
                .unwrap_or("");
            let d = format!("/tmp/whosent-keep-{}-{h}", b.login_uid);
            let prefix = format!("{d}/");
            let existing = b.files.keys().any(|k| k.starts_with(&prefix));
            out(
                0,
                format!("{} {d}\n", if existing { "existing" } else { "new" }),
                "",
            )
        } else if cmd.contains("mktemp -d") {
            out(0, format!("new {DIR}\n"), "")
        } else if words.first().is_some_and(|w| w == "cd") && cmd.contains("tar -xzf") {
            let dir = arg(1);
            if !has_tar {
                out(127, "", "sh: tar: not found\n")
            } else if Self::untar(b, &format!("{dir}/bundle.tar.gz"), &dir) {
                out(0, "", "")
            } else {
                out(1, "", "tar: invalid magic\n")
            }
        } else if words.first().is_some_and(|w| w == "mkdir") && cmd.contains("tar -xzf") {
            match Self::untar(b, &arg(4), &arg(1)) {
                true => out(0, "", ""),
                false => out(1, "", "tar: invalid magic\n"),
            }
        } else if words.first().is_some_and(|w| w == "sha256sum") {
            match b.files.get(&arg(1)) {
                Some(d) => out(
                    0,
                    format!("{}  {}\n", crate::bundle::sha256_hex(d), arg(1)),
                    "",
                ),
                None => out(1, "", ""),
            }
        } else if words.first().is_some_and(|w| w == "cat") {
            match b.files.get(&arg(1)) {
                Some(d) => out(0, d.clone(), ""),
                None => out(1, "", ""),
            }
        } else if words.first().is_some_and(|w| w == "rm") && arg(1) == "-rf" {
            remove(b, &arg(2));
            out(0, "", "")
        } else if cmd.contains("/proc/modules") {
            let m = arg(2).trim_start_matches('^').trim_end().to_string();
            let loaded = b.modules.contains(&m);
            out(0, if loaded { "loaded\n" } else { "" }, "")
        } else {
            out(0, "", "")
        }
    }
}

/// `rm -rf DIR`: the directory and everything under it.
fn remove(b: &mut Board, dir: &str) {
    let prefix = format!("{dir}/");
    b.files.retain(|k, _| k != dir && !k.starts_with(&prefix));
}

impl Transport for FakeBoard {
    fn run(&self, cmd: &str) -> Result<Output, SshError> {
        Ok(self.answer(cmd))
    }

    fn upload(
        &self,
        data: &[u8],
        path: &str,
        _mode: i32,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<UploadMethod, SshError> {
        let mut st = self.st.borrow_mut();
        st.log.push(format!("upload {path}"));
        let mut data = data.to_vec();
        if st.board.corrupt_uploads {
            if let Some(b) = data.last_mut() {
                *b ^= 0xff;
            }
        }
        progress(data.len() as u64, data.len() as u64);
        st.board.files.insert(path.to_string(), data);
        Ok(UploadMethod::Exec)
    }

    fn stream(
        &self,
        cmd: &str,
        on_line: &mut dyn FnMut(&[u8]) -> Flow,
        on_stderr: &mut dyn FnMut(&[u8]),
        stop: &AtomicBool,
    ) -> Result<i32, SshError> {
        let script = {
            let mut st = self.st.borrow_mut();
            st.log.push(cmd.to_string());
            st.script.clone()
        };
        // The command's own clean-up (`…; rm -rf DIR; exit $st`) runs on
        // the board however the stream ends: the agent exits on EOF.
        let cleanup = cmd
            .rsplit_once("; rm -rf ")
            .and_then(|(_, rest)| shlex::split(rest.split(';').next()?))
            .and_then(|w| w.into_iter().next());
        let finish = |this: &Self| {
            if let Some(d) = &cleanup {
                remove(&mut this.st.borrow_mut().board, d);
            }
        };
        // Once `on_line` says stop, nothing more is delivered (as over
        // SSH); a stop from outside lets the command say its last words.
        let mut deliver = true;
        let mut stopped = false;
        for (i, line) in script.stdout.iter().enumerate() {
            if script.drop_after == Some(i) {
                finish(self);
                return Err(SshError::RemoteIo {
                    action: format!("reading the output of `{cmd}`"),
                    source: std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "Connection reset by peer",
                    ),
                });
            }
            if script.stop_at == Some(i) {
                if let Some(c) = &script.ctrl_c {
                    c.store(true, Ordering::SeqCst);
                }
                let t0 = std::time::Instant::now();
                while !stop.load(Ordering::SeqCst)
                    && t0.elapsed() < std::time::Duration::from_secs(2)
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
            if stop.load(Ordering::SeqCst) {
                stopped = true;
                break;
            }
            if on_line(line.as_bytes()) == Flow::Stop {
                deliver = false;
                stopped = true;
                break;
            }
        }
        if deliver && (stopped || stop.load(Ordering::SeqCst)) {
            for line in &script.on_stop {
                if on_line(line.as_bytes()) == Flow::Stop {
                    break;
                }
            }
        }
        on_stderr(script.stderr.as_bytes());
        finish(self);
        Ok(script.status)
    }
}
