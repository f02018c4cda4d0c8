//! The detached commands over hand-made capture directories on this
//! machine (the local transport runs their scripts in sh, as a board's
//! shell would), with segments cut from a stream recorded from a real
//! kernel (`tests/fixtures/host-6.18/stream-kill.wst`: two kills), and
//! `start` against the fake board.
//!
//! The oracle for what `collect` prints is `parse` of the unsplit
//! stream: a live run's decoding of the same bytes.

use super::collect::{collect, CollectOpts};
use super::listing::State;
use super::segments::Print;
use super::status::{status, StatusOpts};
use super::stop::{stop, StopOpts};
use super::Board;
use crate::error::HostError;
use crate::transport::local::Local;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

const KILL: &[u8] = include_bytes!("../../../tests/fixtures/host-6.18/stream-kill.wst");

/// Where each frame of `bytes` ends, and its kind.
fn frame_ends(bytes: &[u8]) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    let mut at = whosent_stream::HEADER_LEN;
    while at + 5 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        out.push((at + 5 + len, bytes[at]));
        at += 5 + len;
    }
    out
}

/// The fixture as a recorder cuts it into two segments: the first up
/// to a frame after READY, the second with the preamble again.
fn two_segments() -> (Vec<u8>, Vec<u8>) {
    let ends = frame_ends(KILL);
    let ready = ends
        .iter()
        .find(|(_, k)| *k == whosent_stream::frame::kind::READY)
        .unwrap()
        .0;
    // Between the two kills: the first segment has one signal's page.
    let pages: Vec<usize> = ends
        .iter()
        .filter(|(e, k)| *e > ready && *k == whosent_stream::frame::kind::ROUND)
        .map(|(e, _)| *e)
        .collect();
    let cut = pages[pages.len() / 2];
    (
        KILL[..cut].to_vec(),
        [&KILL[..ready], &KILL[cut..]].concat(),
    )
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn base(name: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("whosent-detach-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

/// A capture directory as the agent leaves it: `segments` by index,
/// stat with `state` (and pid 1 stands for no agent of ours).
fn capture(base: &Path, id: &str, segments: &[(u64, &[u8])], stat: &str) -> PathBuf {
    let d = base.join(format!("whosent-cap-{id}"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("meta"),
        format!(
            "id={id}\nquery=--sig 10\nstarted=100\nboot_id={}\nmax_size=1048576\nhost=board\n",
            boot_id()
        ),
    )
    .unwrap();
    for (i, bytes) in segments {
        std::fs::write(d.join(super::segments::name(*i)), bytes).unwrap();
    }
    put_stat(&d, format!("{stat}\n")).unwrap();
    std::fs::write(d.join("ready"), "").unwrap();
    d
}

fn board(base: &Path) -> Board<'static> {
    Board {
        t: &Local,
        host: "board".into(),
        dir: base.display().to_string(),
        sudo: false,
    }
}

fn json_opts(id: Option<&str>) -> CollectOpts {
    CollectOpts {
        id: id.map(String::from),
        print: Print {
            json: true,
            every: false,
            stopped: None,
        },
        follow: false,
    }
}

fn records(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `parse` of the whole stream, the oracle.
fn oracle() -> Vec<Value> {
    let mut out = Vec::new();
    let q = crate::query::from_pairs([("--sig", "10")]).unwrap();
    crate::offline::parse(KILL, "fixture", &q, &mut out, true, false).unwrap();
    records(&out)
}

fn without_host(mut v: Vec<Value>) -> Vec<Value> {
    for r in &mut v {
        assert_eq!(r["host"], "board", "{r}");
        r.as_object_mut().unwrap().remove("host");
    }
    v
}

fn never() -> &'static AtomicBool {
    Box::leak(Box::new(AtomicBool::new(false)))
}

/// Two segments of an ended capture print exactly what the unsplit
/// stream gives a live run's decoding, each record with the host; a
/// second collect prints the same; `stop` then has nothing new to
/// print (exit 1) and leaves no directory.
#[test]
fn collect_prints_the_segments_as_a_live_run_and_stop_only_the_rest() {
    let tmp = base("ended");
    let (s0, s1) = two_segments();
    let dir = capture(
        &tmp.0,
        "0000abcd",
        &[(0, &s0), (1, &s1)],
        "v1 pid=1 signals=2 dropped=0 dropped_segments=0 bytes=100 first=0 last=1 state=ended",
    );
    let b = board(&tmp.0);
    let mut out = Vec::new();
    let st = collect(&b, &json_opts(None), &mut out, never()).unwrap();
    assert_eq!(st, 0);
    let got = without_host(records(&out));
    assert_eq!(got, oracle());
    assert_eq!(got.iter().filter(|r| r["type"] == "signal").count(), 2);
    // Again: the same records (nothing was lost or consumed).
    let mut again = Vec::new();
    collect(&b, &json_opts(Some("0000abcd")), &mut again, never()).unwrap();
    assert_eq!(again, out);
    let o = StopOpts {
        id: Some("0000abcd".into()),
        print: Print {
            json: true,
            every: false,
            stopped: None,
        },
    };
    let mut rest = Vec::new();
    assert_eq!(stop(&b, &o, &mut rest).unwrap(), 1);
    let rest = records(&rest);
    assert!(
        rest.iter().all(|r| r["type"] != "signal"),
        "printed again: {rest:?}"
    );
    assert_eq!(rest.last().unwrap()["type"], "end");
    assert!(!dir.exists());
}

/// Without a collect before it, `stop` prints everything, in human
/// lines, as a live run.
#[test]
fn stop_without_a_collect_prints_all_of_it() {
    let tmp = base("stopall");
    let (s0, s1) = two_segments();
    capture(
        &tmp.0,
        "0000abce",
        &[(0, &s0), (1, &s1)],
        "v1 pid=1 signals=2 dropped=0 bytes=1 state=ended",
    );
    let b = board(&tmp.0);
    let mut out = Vec::new();
    let st = stop(&b, &StopOpts::default(), &mut out).unwrap();
    assert_eq!(st, 0);
    let mut want = Vec::new();
    let q = crate::query::from_pairs([("--sig", "10")]).unwrap();
    crate::offline::parse(KILL, "f", &q, &mut want, false, false).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(String::from_utf8_lossy(&out).lines().count(), 2);
}

/// The oldest segment deleted (the storage filled): the rest decodes
/// from the first one present, and the deleted signal events are one
/// `lost` record with `cpu` null right after the ready, counted in the
/// end.
#[test]
fn deleted_segments_are_reported_as_lost() {
    let tmp = base("deleted");
    let (_, s1) = two_segments();
    capture(
        &tmp.0,
        "0000abcf",
        &[(1, &s1)],
        "v1 pid=1 signals=9 dropped=7 dropped_segments=1 bytes=1 first=1 last=1 state=ended",
    );
    let mut out = Vec::new();
    let st = collect(&board(&tmp.0), &json_opts(None), &mut out, never()).unwrap();
    let r = records(&out);
    assert_eq!(r[0]["type"], "ready", "{r:?}");
    assert_eq!(
        (
            &r[1]["type"],
            &r[1]["cpu"],
            &r[1]["count"],
            &r[1]["segments"]
        ),
        (&"lost".into(), &Value::Null, &7.into(), &1.into()),
        "{r:?}"
    );
    let signals = r.iter().filter(|x| x["type"] == "signal").count();
    assert_eq!(signals, 1, "the second kill only: {r:?}");
    assert_eq!(st, 0);
    let end = r.last().unwrap();
    assert_eq!((&end["type"], &end["lost"]), (&"end".into(), &7.into()));
}

/// An agent gone without its end (kill -9): what it recorded is
/// printed, then its `agent_died` error; status 2; `status` says died.
#[test]
fn a_dead_agents_data_is_collected_with_its_error() {
    let tmp = base("died");
    let (s0, _) = two_segments();
    capture(
        &tmp.0,
        "0000abd0",
        &[(0, &s0)],
        "v1 pid=1 signals=1 dropped=0 bytes=1 state=running",
    );
    let b = board(&tmp.0);
    let l = b.list().unwrap();
    assert_eq!(l.state(&l.captures[0]), State::Died);
    let mut out = Vec::new();
    let st = collect(&b, &json_opts(None), &mut out, never()).unwrap();
    let r = records(&out);
    assert_eq!(st, 2, "{r:?}");
    assert_eq!(r.iter().filter(|x| x["type"] == "signal").count(), 1);
    let err = r.iter().find(|x| x["type"] == "error").unwrap();
    assert_eq!(err["kind"], "agent_died", "{err}");
    assert_eq!(r.last().unwrap()["reason"], "error");
    let mut table = Vec::new();
    assert_eq!(status(&b, &StatusOpts::default(), &mut table).unwrap(), 0);
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.lines().nth(1).unwrap().contains("0000abd0  died"),
        "{table}"
    );
}

/// A capture still recording (its agent alive, its last segment
/// without STATS and END): what is there so far, no loss claimed, end
/// reason `eof`; status says alive, with its figures.
#[test]
fn a_live_capture_is_collected_so_far() {
    let tmp = base("alive");
    let ends = frame_ends(KILL);
    let last_round = ends
        .iter()
        .rev()
        .find(|(_, k)| *k == whosent_stream::frame::kind::ROUND)
        .unwrap()
        .0;
    // And half a frame: the agent is writing the next one.
    let partial = &KILL[..last_round + 3];
    let d = base_capture_alive(&tmp.0, partial);
    let mut agent = std::process::Command::new(d.join("whosent-agent"))
        .arg("30")
        .spawn()
        .unwrap();
    put_stat(&d,
        format!(
            "v1 pid={} signals=2 dropped=0 dropped_segments=0 bytes={} first=0 last=0 state=running\n",
            agent.id(),
            partial.len()
        ),
    )
    .unwrap();
    let b = board(&tmp.0);
    let mut out = Vec::new();
    let st = collect(&b, &json_opts(None), &mut out, never());
    let mut js = Vec::new();
    let st2 = status(&b, &StatusOpts { json: true }, &mut js);
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(st.unwrap(), 0);
    let r = records(&out);
    assert_eq!(r.iter().filter(|x| x["type"] == "signal").count(), 2);
    assert!(r.iter().all(|x| x["type"] != "lost"), "{r:?}");
    assert_eq!(r.last().unwrap()["reason"], "eof");
    assert_eq!(st2.unwrap(), 0);
    let s = &records(&js)[0];
    assert_eq!(
        (
            &s["type"],
            &s["state"],
            &s["signals"],
            &s["query"],
            &s["host"]
        ),
        (
            &"capture".into(),
            &"alive".into(),
            &2.into(),
            &"--sig 10".into(),
            &"board".into()
        ),
        "{s}"
    );
}

/// Replaces `stat` as the recorder does (target-agent/src/segments.rs:
/// write and rename), so that a collect reading it meanwhile never sees
/// it empty or half written.
fn put_stat(d: &Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    std::fs::write(d.join("stat.tmp"), text)?;
    std::fs::rename(d.join("stat.tmp"), d.join("stat"))
}

/// The capture's agent: a copy of sleep, so that /proc/PID/exe is the
/// capture's own whosent-agent. Copied by cp, not std::fs::copy: a file
/// open for writing in this process is open in any child another test
/// forks meanwhile, until its exec, and running it then fails with
/// ETXTBSY (seen: `a_live_capture_is_collected_so_far`, 1 run in ~7).
fn fake_agent(d: &Path) {
    let st = std::process::Command::new("cp")
        .arg("/bin/sleep")
        .arg(d.join("whosent-agent"))
        .status()
        .unwrap();
    assert!(st.success());
}

fn base_capture_alive(base: &Path, seg0: &[u8]) -> PathBuf {
    let d = capture(base, "0000abd1", &[(0, seg0)], "v1 state=running");
    // The agent: a copy of sleep, so that /proc/PID/exe is the
    // capture's own whosent-agent.
    fake_agent(&d);
    d
}

#[test]
fn unknown_ids_and_several_captures_without_one_are_clear_errors() {
    let tmp = base("ids");
    let (s0, _) = two_segments();
    for id in ["0000aaaa", "0000bbbb"] {
        capture(&tmp.0, id, &[(0, &s0)], "v1 pid=1 state=ended");
    }
    let b = board(&tmp.0);
    let e = collect(&b, &json_opts(Some("0000cccc")), &mut Vec::new(), never()).unwrap_err();
    assert!(matches!(e, HostError::Other { .. }), "{e:?}");
    assert_eq!(
        e.line(),
        format!(
            "whosent-deploy: error: no capture 0000cccc on board in {} (it has 0000aaaa, 0000bbbb) (help: give an id that `whosent-deploy status` lists, and the --dir the capture was started with)",
            tmp.0.display()
        )
    );
    let e = collect(&b, &json_opts(None), &mut Vec::new(), never()).unwrap_err();
    assert!(matches!(e, HostError::Usage(_)), "{e:?}");
    assert!(
        e.line()
            .contains("board has 2 captures: 0000aaaa, 0000bbbb; say which with --id ID"),
        "{}",
        e.line()
    );
    let e = collect(&b, &json_opts(Some("../../x")), &mut Vec::new(), never()).unwrap_err();
    assert!(matches!(e, HostError::Usage(_)), "{e:?}");
}

mod start {
    use super::super::start::{start, Source, StartOpts};
    use crate::deploy::flow::Plan;
    use crate::error::HostError;
    use crate::transport::fake::{Board as FakeSpec, FakeBoard, Script};
    use crate::transport::Output;
    use std::sync::atomic::AtomicBool;

    fn reply(stdout: &[u8]) -> Output {
        Output {
            status: 0,
            stdout: stdout.to_vec(),
            stderr: Vec::new(),
        }
    }

    fn opts() -> StartOpts {
        StartOpts {
            plan: Plan {
                login: "root@board:22".into(),
                host: "root@board".into(),
                ..Plan::default()
            },
            query: vec![
                ("--sig".into(), "TERM".into()),
                ("--comm".into(), "my app".into()),
            ],
            args: vec![
                "--sig".into(),
                "15".into(),
                "--comm".into(),
                "my app".into(),
            ],
            max_size: 1 << 20,
            agent: Source::Bytes(b"\x7fELF fake agent".to_vec()),
            ..StartOpts::default()
        }
    }

    /// The agent is uploaded and checked as for a live run, then run
    /// in the background with `--out` into its capture directory, no
    /// `--alive-timeout` (it must outlive the connection), stdin and
    /// stdout off the session; once `ready` exists the id is printed.
    #[test]
    fn start_uploads_launches_detached_and_prints_the_id_once_ready() {
        let board = FakeBoard::new(FakeSpec::default(), Script::default());
        board.on("& echo $!", reply(b"4242\n"));
        board.on("/ready ]", reply(b"ready\n"));
        let mut out = Vec::new();
        let st = start(&board, opts(), &mut out, &AtomicBool::new(false)).unwrap();
        assert_eq!(st, 0);
        let id = String::from_utf8(out).unwrap();
        let id = id.trim();
        assert!(super::super::check_id(id).is_ok(), "{id}");
        let dir = format!("/tmp/whosent-cap-{id}");
        let log = board.log();
        let launch = log.iter().find(|c| c.contains("& echo $!")).unwrap();
        assert!(
            launch.starts_with(&format!("cd {dir} || exit 3; {dir}/whosent-agent --sig 15 --comm 'my app' --out {dir} --max-size 1048576 --stream </dev/null >/dev/null 2>agent.err &")),
            "{launch}"
        );
        assert!(!launch.contains("--alive-timeout"), "{launch}");
        assert!(
            log.iter()
                .any(|c| c.contains(&format!("mkdir -m 700 {dir}"))),
            "{log:?}"
        );
        let meta = log.iter().find(|c| c.contains("/meta")).unwrap();
        assert!(
            meta.contains(r#""query=--sig TERM --comm 'my app'""#),
            "{meta}"
        );
        assert!(
            meta.contains(&format!("id={id}")) && meta.contains("max_size=1048576"),
            "{meta}"
        );
        // Checked by its sha256 on the board before it ran.
        let files = board.files();
        assert!(
            files.contains_key(&format!("{dir}/whosent-agent")),
            "{files:?}"
        );
        assert!(log
            .iter()
            .any(|c| c.starts_with(&format!("sha256sum {dir}/whosent-agent"))));
        // Nothing removed: the capture stays.
        assert!(!log.iter().any(|c| c.contains("rm -rf")), "{log:?}");
    }

    /// An agent that ends before `ready` (its ERROR frame in the first
    /// segment): its error, one line, and the directory removed.
    #[test]
    fn an_agent_that_fails_before_ready_is_its_error_and_nothing_stays() {
        let board = FakeBoard::new(FakeSpec::default(), Script::default());
        board.on("& echo $!", reply(b"4242\n"));
        board.on("/ready ]", reply(b"gone\n"));
        let mut seg = Vec::new();
        whosent_stream::encode::header(&mut seg);
        whosent_stream::encode::error(
            &mut seg,
            "no_tracefs",
            "no tracefs at /sys/kernel/tracing",
            "mount it",
        );
        board.on("seg.00000000", reply(&seg));
        let mut out = Vec::new();
        let e = start(&board, opts(), &mut out, &AtomicBool::new(false)).unwrap_err();
        assert!(out.is_empty());
        assert_eq!(
            e.line(),
            "whosent-deploy: error: the agent on root@board failed: no tracefs at /sys/kernel/tracing (help: mount it)"
        );
        assert!(matches!(e, HostError::Other { .. }));
        let log = board.log();
        let rm = log.last().unwrap();
        assert!(rm.starts_with("rm -rf /tmp/whosent-cap-"), "{rm}");
        assert!(log[log.len() - 2].starts_with("kill -TERM 4242"), "{log:?}");
        assert!(
            board.files().keys().all(|k| !k.contains("whosent-cap-")),
            "{:?}",
            board.files()
        );
    }

    /// Ctrl-C while the agent starts: it is stopped, nothing stays.
    #[test]
    fn ctrl_c_while_it_starts_leaves_nothing() {
        let board = FakeBoard::new(FakeSpec::default(), Script::default());
        board.on("& echo $!", reply(b"4242\n"));
        board.on("/ready ]", reply(b"running\n"));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            s2.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let e = start(&board, opts(), &mut Vec::new(), &stop).unwrap_err();
        t.join().unwrap();
        assert!(matches!(e, HostError::Interrupted(_)), "{e:?}");
        assert!(board
            .log()
            .last()
            .unwrap()
            .contains("rm -rf /tmp/whosent-cap-"));
    }
}

/// `--follow` over a capture the agent is still writing: the first
/// segment is printed at once, the next one as it appears, and once
/// the agent has ended (its END in the last segment) the records are
/// exactly the unsplit stream's.
#[test]
fn follow_prints_new_segments_until_the_capture_ends() {
    let tmp = base("follow");
    let (s0, s1) = two_segments();
    let d = capture(&tmp.0, "0000abd2", &[(0, &s0)], "v1 state=running");
    let out = follow_while(&tmp.0, &d, "v1 pid={pid} signals=1 state=running\n", || {
        std::fs::write(d.join(super::segments::name(1)), &s1).unwrap();
        put_stat(&d, "v1 pid=1 signals=2 state=ended\n").unwrap();
    });
    assert_eq!(without_host(records(&out)), oracle());
}

/// `collect --follow --json` of the capture in `d` while its agent (a
/// copy of sleep) runs with `stat` (`{pid}` its pid): after 1.2 s
/// `meanwhile` plays the recorder, then the agent ends. Collect must
/// exit 0 (else its error and output are shown); returns its output.
fn follow_while(base: &Path, d: &Path, stat: &str, meanwhile: impl FnOnce()) -> Vec<u8> {
    fake_agent(d);
    let mut agent = std::process::Command::new(d.join("whosent-agent"))
        .arg("30")
        .spawn()
        .unwrap();
    put_stat(d, stat.replace("{pid}", &agent.id().to_string())).unwrap();
    let mut o = json_opts(None);
    o.follow = true;
    let ctrl_c = AtomicBool::new(false);
    let out = std::thread::scope(|sc| {
        let run = sc.spawn(|| {
            let b = board(base);
            let mut out = Vec::new();
            let st = collect(&b, &o, &mut out, &ctrl_c);
            (st, out)
        });
        std::thread::sleep(std::time::Duration::from_millis(1200));
        meanwhile();
        let _ = agent.kill();
        let _ = agent.wait();
        let (st, out) = run.join().unwrap();
        assert_eq!(
            st.as_ref().map_err(|e| e.line()),
            Ok(&0),
            "{}",
            String::from_utf8_lossy(&out)
        );
        out
    });
    assert!(!ctrl_c.load(std::sync::atomic::Ordering::SeqCst));
    out
}

/// The local transport, with `hook` called before each command runs:
/// it stands for the recorder, deleting segments while they are read.
struct Hooked<F: Fn(&str)> {
    hook: F,
}

impl<F: Fn(&str)> crate::transport::Transport for Hooked<F> {
    fn run(&self, cmd: &str) -> Result<crate::transport::Output, crate::ssh::SshError> {
        (self.hook)(cmd);
        Local.run(cmd)
    }
    fn upload(
        &self,
        data: &[u8],
        path: &str,
        mode: i32,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<crate::transport::UploadMethod, crate::ssh::SshError> {
        Local.upload(data, path, mode, progress)
    }
    fn stream(
        &self,
        cmd: &str,
        on_line: &mut dyn FnMut(&[u8]) -> crate::transport::Flow,
        on_stderr: &mut dyn FnMut(&[u8]),
        stop: &AtomicBool,
    ) -> Result<i32, crate::ssh::SshError> {
        Local.stream(cmd, on_line, on_stderr, stop)
    }
}

fn kinds(r: &[Value]) -> Vec<String> {
    r.iter()
        .map(|x| x["type"].as_str().unwrap().to_string())
        .collect()
}

/// The storage lost records (`cpu` null): (count, segments) each.
fn storage_lost(r: &[Value]) -> Vec<(Value, Value)> {
    r.iter()
        .filter(|x| x["type"] == "lost" && x["cpu"].is_null())
        .map(|x| (x["count"].clone(), x["segments"].clone()))
        .collect()
}

/// Collects `dir`'s capture (two segments, one kill each, listed with
/// nothing deleted) while `recorder` acts on the board before each of
/// collect's commands; returns its records.
fn collect_while(tmp: &Dir, id: &str, recorder: impl Fn(&str)) -> Vec<Value> {
    let t = Hooked { hook: recorder };
    let b = Board {
        t: &t,
        host: "board".into(),
        dir: tmp.0.display().to_string(),
        sudo: false,
    };
    let mut out = Vec::new();
    collect(&b, &json_opts(Some(id)), &mut out, never()).unwrap();
    records(&out)
}

const BOTH: &str =
    "v1 pid=1 signals=2 dropped=0 dropped_segments=0 bytes=1 first=0 last=1 state=ended";
const FIRST_GONE: &str =
    "v1 pid=1 signals=2 dropped=1 dropped_segments=1 bytes=1 first=1 last=1 state=ended";

/// Found by the board storm (host/tests/detached.rs): the recorder
/// deleted a segment after collect listed it and before its `cat`,
/// and its signals were only a warning, counted nowhere. Now they are
/// a `lost` record before the end, and in the end's `lost`: printed
/// plus lost is what the recorder counted.
#[test]
fn a_segment_deleted_before_it_is_read_is_counted_lost() {
    let tmp = base("midread");
    let (s0, s1) = two_segments();
    let d = capture(&tmp.0, "0000abe0", &[(0, &s0), (1, &s1)], BOTH);
    let r = collect_while(&tmp, "0000abe0", |cmd| {
        if cmd.starts_with("cat ") && cmd.contains("seg.00000000") {
            let _ = std::fs::remove_file(d.join("seg.00000000"));
            put_stat(&d, format!("{FIRST_GONE}\n")).unwrap();
        }
    });
    assert_eq!(r.iter().filter(|x| x["type"] == "signal").count(), 1);
    assert_eq!(storage_lost(&r), [(1.into(), 1.into())], "{r:?}");
    let k = kinds(&r);
    assert_eq!(&k[k.len() - 2..], ["lost", "end"], "{k:?}");
    assert_eq!(r.last().unwrap()["lost"], 1);
}

/// A segment deleted after collect read it is not lost: its signals
/// were printed.
#[test]
fn a_segment_deleted_after_it_was_read_is_not_lost() {
    let tmp = base("afterread");
    let (s0, s1) = two_segments();
    let d = capture(&tmp.0, "0000abe1", &[(0, &s0), (1, &s1)], BOTH);
    let r = collect_while(&tmp, "0000abe1", |cmd| {
        if cmd.starts_with("cat ") && cmd.contains("seg.00000001") {
            let _ = std::fs::remove_file(d.join("seg.00000000"));
            put_stat(&d, format!("{FIRST_GONE}\n")).unwrap();
        }
    });
    assert_eq!(without_host(r.clone()), oracle());
    assert!(storage_lost(&r).is_empty(), "{r:?}");
}

/// The recorder writes its stat at most once a second: right after a
/// deletion the stat still says the deleted segment is there. Collect
/// waits until the stat agrees with the segments present (the agent
/// runs: it will write it).
#[test]
fn a_stat_behind_the_segments_is_waited_for() {
    let tmp = base("stale");
    let (s0, s1) = two_segments();
    let d = capture(&tmp.0, "0000abe2", &[(0, &s0), (1, &s1)], BOTH);
    fake_agent(&d);
    let mut agent = std::process::Command::new(d.join("whosent-agent"))
        .arg("30")
        .spawn()
        .unwrap();
    let running = |line: &str| {
        format!(
            "{}\n",
            line.replace("pid=1", &format!("pid={}", agent.id()))
                .replace("ended", "running")
        )
    };
    put_stat(&d, running(BOTH)).unwrap();
    let checks = std::sync::atomic::AtomicU32::new(0);
    let r = collect_while(&tmp, "0000abe2", |cmd| {
        if cmd.starts_with("cat ") && cmd.contains("seg.00000000") {
            let _ = std::fs::remove_file(d.join("seg.00000000"));
        }
        // The listing after the read: the second one finds the stat
        // written.
        if cmd.contains("read -r s <") && !cmd.contains("whosent-cap-*") {
            let n = checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 1 {
                put_stat(&d, running(FIRST_GONE)).unwrap();
            }
        }
    });
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(checks.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(storage_lost(&r), [(1.into(), 1.into())], "{r:?}");
    assert_eq!(r.last().unwrap()["lost"], 1);
}

/// An agent that is gone will not write its stat again: if it does not
/// agree with the segments, how many were lost is not known (null),
/// and collect does not wait for it.
#[test]
fn a_stat_that_never_agrees_is_a_loss_of_unknown_count() {
    let tmp = base("never");
    let (s0, s1) = two_segments();
    let d = capture(&tmp.0, "0000abe5", &[(0, &s0), (1, &s1)], BOTH);
    let t0 = std::time::Instant::now();
    let r = collect_while(&tmp, "0000abe5", |cmd| {
        if cmd.starts_with("cat ") && cmd.contains("seg.00000000") {
            let _ = std::fs::remove_file(d.join("seg.00000000"));
        }
    });
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(storage_lost(&r), [(Value::Null, 0.into())], "{r:?}");
    assert_eq!(r.last().unwrap()["lost"], 0);
    // And stop after it cannot know either.
    let o = StopOpts {
        id: None,
        print: Print {
            json: true,
            every: false,
            stopped: None,
        },
    };
    let mut rest = Vec::new();
    stop(&board(&tmp.0), &o, &mut rest).unwrap();
    let rest = records(&rest);
    assert_eq!(storage_lost(&rest), [(Value::Null, 0.into())], "{rest:?}");
}

/// `stop` after a collect that printed both kills: the segment deleted
/// since was printed, not lost; only the loss no collect told is.
#[test]
fn stop_does_not_count_lost_what_collect_printed_before_it_was_deleted() {
    let tmp = base("stopafter");
    let (s0, s1) = two_segments();
    let d = capture(&tmp.0, "0000abe3", &[(0, &s0), (1, &s1)], BOTH);
    let b = board(&tmp.0);
    let mut out = Vec::new();
    collect(&b, &json_opts(None), &mut out, never()).unwrap();
    assert_eq!(
        records(&out)
            .iter()
            .filter(|x| x["type"] == "signal")
            .count(),
        2
    );
    let _ = std::fs::remove_file(d.join("seg.00000000"));
    put_stat(&d, format!("{FIRST_GONE}\n")).unwrap();
    let o = StopOpts {
        id: None,
        print: Print {
            json: true,
            every: false,
            stopped: None,
        },
    };
    let mut rest = Vec::new();
    assert_eq!(stop(&b, &o, &mut rest).unwrap(), 1);
    let rest = records(&rest);
    assert!(storage_lost(&rest).is_empty(), "{rest:?}");
    assert_eq!(rest.last().unwrap()["lost"], 0, "{rest:?}");
}

/// `--follow` read the first segment while the recorder was writing it
/// (one kill), and the recorder deleted it before its rest (the second
/// kill) was read: that one kill is lost, not the whole segment's two.
#[test]
fn a_segment_deleted_after_part_of_it_was_read_loses_only_the_rest() {
    let tmp = base("partial");
    let (s0, _) = two_segments();
    let ends = frame_ends(KILL);
    let ready = ends
        .iter()
        .find(|(_, k)| *k == whosent_stream::frame::kind::READY)
        .unwrap()
        .0;
    let stats = ends
        .iter()
        .rev()
        .find(|(_, k)| *k == whosent_stream::frame::kind::STATS)
        .map(|(e, _)| *e)
        .unwrap();
    let stats_start = ends
        .iter()
        .map(|(e, _)| *e)
        .filter(|&e| e < stats)
        .max()
        .unwrap();
    let d = capture(&tmp.0, "0000abe4", &[(0, &s0)], "v1 state=running");
    let stat = "v1 pid={pid} signals=1 dropped=0 dropped_segments=0 bytes=1 first=0 last=0 state=running\n";
    let out = follow_while(&tmp.0, &d, stat, || {
        // Segment 0 got the second kill and was deleted; segment 1 is
        // the preamble and the end.
        let s1 = [&KILL[..ready], &KILL[stats_start..]].concat();
        std::fs::write(d.join(super::segments::name(1)), &s1).unwrap();
        std::fs::remove_file(d.join(super::segments::name(0))).unwrap();
        put_stat(
            &d,
            "v1 pid=1 signals=2 dropped=2 dropped_segments=1 bytes=1 first=1 last=1 state=ended\n",
        )
        .unwrap();
    });
    let r = records(&out);
    let signals: Vec<&Value> = r.iter().filter(|x| x["type"] == "signal").collect();
    assert_eq!(signals.len(), 1, "{r:?}");
    assert_eq!(
        signals[0],
        &oracle()
            .into_iter()
            .find(|x| x["type"] == "signal")
            .map(|mut v| {
                v.as_object_mut()
                    .unwrap()
                    .insert("host".into(), "board".into());
                v
            })
            .unwrap()
    );
    assert_eq!(storage_lost(&r), [(1.into(), 1.into())], "{r:?}");
    assert_eq!(r.last().unwrap()["lost"], 1, "{r:?}");
}
