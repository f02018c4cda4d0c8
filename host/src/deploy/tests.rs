//! The deploy flow against the fake board: what the user sees (the
//! records, the one-line error and its help, the exit status) and what
//! is left on the board, for each way a deploy goes wrong.

use super::flow::{self, Plan};
use super::Backend;
use crate::agent::{Agent, Choice};
use crate::error::{HostError, EXIT_STATUS};
use crate::ssh::upload::quote;
use crate::stap::backend::Stap;
use crate::stap::staprun::Staprun;
use crate::transport::fake::{Board, FakeBoard, Script, DIR};
use std::sync::atomic::AtomicBool;
use whosent_proto::query::Query;

const AGENT: &[u8] = b"\x7fELF pretend agent for the fake board";
const READY: &str = r#"{"type":"ready","v":1,"agent":"0.1.0","backend":"ftrace","kernel":"6.1","arch":"aarch64","instance":"whosent-1-2","filter":"sig == 9"}"#;
const SIGNAL: &str = r#"{"type":"signal","ts":1.5,"cpu":0,"sig":9,"signame":"SIGKILL","code":0,"code_name":"SI_USER","errno":0,"group":true,"result":"delivered","context":"task","sender":{"pid":6993,"tid":6993,"comm":"test_sender","uid":0,"cmdline":null},"running":null,"target":{"pid":6985,"tid":6985,"comm":"test_receiver"}}"#;
/// What the remote command runs first (deploy::dir's guard).
const MARK: &str = ": >/tmp/whosent.fake/started; ";
const END: &str = r#"{"type":"end","reason":"count","signals":1,"lost":0}"#;

fn plan() -> Plan {
    Plan {
        login: "root@board:22".into(),
        host: "board".into(),
        json: true,
        quiet: true,
        ..Plan::default()
    }
}

fn agent_script() -> Script {
    Script {
        stdout: vec![READY.into(), SIGNAL.into(), END.into()],
        ..Script::default()
    }
}

fn agent() -> Agent {
    // The fake board replays the agent's JSON lines (an agent that
    // answers without --stream): the feed decodes them as lines.
    let feed = crate::stream::Feed::new(Default::default(), None, None, false);
    Agent::with_bytes(vec!["--sig".into(), "9".into()], AGENT.to_vec(), feed)
}

/// Runs the flow; returns its result and what it printed on stdout.
fn deploy(
    board: &FakeBoard,
    plan: &Plan,
    backend: &mut dyn Backend,
) -> (Result<i32, HostError>, String) {
    let mut out = Vec::new();
    let never = AtomicBool::new(false);
    let res = flow::run(board, plan, backend, &mut out, &never);
    (res, String::from_utf8(out).unwrap())
}

/// The error as main prints it, its exit status, and that the board
/// was cleaned up (the directory removed, nothing left).
fn fails(board: &FakeBoard, res: Result<i32, HostError>, message: &str, help: &str) {
    let e = res.expect_err("the deploy should fail");
    let line = e.line();
    assert!(line.starts_with("whosent-deploy: error: "), "{line}");
    assert!(!line.contains('\n'), "{line}");
    assert!(line.contains(message), "{line}");
    assert!(e.help().contains(help), "{}", e.help());
    assert_eq!(EXIT_STATUS, 2);
    let rm = format!("rm -rf {}", quote(DIR));
    assert!(
        board.log().iter().any(|c| c.contains(&rm)),
        "{:#?}",
        board.log()
    );
    assert!(board.files().is_empty(), "{:#?}", board.files().keys());
}

fn tagged(line: &str) -> String {
    format!("{{\"host\":\"board\",{}", &line[1..])
}

#[test]
fn a_good_board_gets_the_bundle_runs_the_agent_and_is_left_clean() {
    let board = FakeBoard::new(Board::default(), agent_script());
    let (res, out) = deploy(&board, &plan(), &mut agent());
    assert_eq!(res.unwrap(), 0);
    assert_eq!(out, [READY, SIGNAL, END].map(tagged).join("\n") + "\n");
    let log = board.log();
    assert!(
        log.contains(&format!("upload {DIR}/bundle.tar.gz")),
        "{log:#?}"
    );
    let agent = quote(&format!("{DIR}/whosent-agent"));
    assert!(log
        .iter()
        .any(|c| c.starts_with(&format!("sha256sum {agent}"))));
    let run = log.last().unwrap();
    assert_eq!(
        run,
        // The ftrace agent records: prepare adds --stream.
        &format!(
            ": >{}/started; {agent} --sig 9 --stream; st=$?; rm -rf {}; exit $st",
            quote(DIR),
            quote(DIR)
        )
    );
    assert!(board.files().is_empty(), "{:#?}", board.files().keys());
}

#[test]
fn a_sha256_mismatch_stops_before_running_and_cleans_up() {
    let b = Board {
        corrupt_uploads: true,
        tools: vec!["sha256sum", "mktemp"],
        ..Board::default()
    };
    let board = FakeBoard::new(b, agent_script());
    let (res, out) = deploy(&board, &plan(), &mut agent());
    assert!(out.is_empty());
    fails(
        &board,
        res,
        "the agent on the board has sha256 ",
        "check the board's storage",
    );
    assert!(
        !board.log().iter().any(|c| c.contains("; exit $st")),
        "ran the agent"
    );
}

#[test]
fn no_tar_on_the_board_uploads_the_bare_agent() {
    let b = Board {
        tools: vec!["sha256sum", "mktemp"],
        ..Board::default()
    };
    let board = FakeBoard::new(b, agent_script());
    let (res, _) = deploy(&board, &plan(), &mut agent());
    assert_eq!(res.unwrap(), 0);
    let log = board.log();
    assert!(
        log.contains(&format!("upload {DIR}/whosent-agent")),
        "{log:#?}"
    );
    assert!(!log.iter().any(|c| c.contains("tar -xzf")), "{log:#?}");
    assert!(board.files().is_empty());
}

#[test]
fn a_bundle_that_does_not_unpack_is_an_error() {
    let board = FakeBoard::new(Board::default(), agent_script());
    board.on(
        "tar -xzf bundle.tar.gz",
        crate::transport::Output {
            status: 1,
            stdout: vec![],
            stderr: b"tar: write error: No space left on device\n".to_vec(),
        },
    );
    let (res, _) = deploy(&board, &plan(), &mut agent());
    // The scripted tar did not unpack: the bundle is still there until
    // the directory goes.
    fails(
        &board,
        res,
        "unpacking the bundle on the board failed: tar: write error: No space left on device",
        "check free space in /tmp",
    );
}

#[test]
fn a_full_tmp_is_refused_before_the_upload() {
    let b = Board {
        tmp_free_kb: 0,
        ..Board::default()
    };
    let board = FakeBoard::new(b, agent_script());
    let (res, _) = deploy(&board, &plan(), &mut agent());
    fails(
        &board,
        res,
        "the board has 0 KiB free in /tmp, too little for the 0 KiB agent",
        "free space in /tmp on the board",
    );
    assert!(!board.log().iter().any(|c| c.starts_with("upload ")));
}

#[test]
fn a_channel_dropped_mid_stream_keeps_what_came_and_exits_2() {
    let script = Script {
        drop_after: Some(2),
        ..agent_script()
    };
    let board = FakeBoard::new(Board::default(), script);
    let (res, out) = deploy(&board, &plan(), &mut agent());
    assert_eq!(out, [READY, SIGNAL].map(tagged).join("\n") + "\n");
    // The board's own command removes the directory when the agent
    // sees its stdin close.
    fails(
        &board,
        res,
        "I/O error while reading the output of ",
        "the connection to the board broke",
    );
}

#[test]
fn a_user_login_without_sudo_is_refused_before_anything_is_made() {
    let b = Board {
        login_uid: 1000,
        ..Board::default()
    };
    let board = FakeBoard::new(b, agent_script());
    let e = deploy(&board, &plan(), &mut agent()).0.unwrap_err();
    assert!(
        e.line().contains("the login user (uid 1000) is not root"),
        "{}",
        e.line()
    );
    assert!(e.help().contains("--sudo"));
    assert_eq!(board.log().len(), 1, "only the probe: {:#?}", board.log());
}

#[test]
fn sudo_that_wants_a_password_is_refused() {
    let b = Board {
        login_uid: 1000,
        ..Board::default()
    };
    let board = FakeBoard::new(b, agent_script());
    let plan = Plan {
        sudo: true,
        ..plan()
    };
    let e = deploy(&board, &plan, &mut agent()).0.unwrap_err();
    assert!(
        e.line().contains("`sudo -n true` fails on the board"),
        "{}",
        e.line()
    );
}

fn sudo_board() -> Board {
    Board {
        login_uid: 1000,
        sudo_ok: true,
        tools: vec!["tar", "sha256sum", "mktemp", "gzip", "sudo", "staprun"],
        ..Board::default()
    }
}

#[test]
fn sudo_as_a_user_login_prefixes_the_agent() {
    let board = FakeBoard::new(sudo_board(), agent_script());
    let plan = Plan {
        sudo: true,
        ..plan()
    };
    assert_eq!(deploy(&board, &plan, &mut agent()).0.unwrap(), 0);
    let run = board.log().last().unwrap().clone();
    let agent = quote(&format!("{DIR}/whosent-agent"));
    assert!(run.starts_with(&format!("{MARK}sudo -n {agent} ")), "{run}");
}

const SENDER: &str = include_str!("../../../tests/fixtures/stap/aarch64-6.1/sender.txt");

fn stap(q: Query) -> Stap {
    Stap::with_module(
        q,
        None,
        b"\x7fELF pretend module".to_vec(),
        Staprun::Board,
        false,
    )
}

fn stap_script() -> Script {
    Script {
        stdout: SENDER.lines().map(String::from).collect(),
        ..Script::default()
    }
}

/// Issue 11: stap decided sudo from the probe's uid, which is root's
/// under --sudo, so a user login loaded the module without sudo.
#[test]
fn stap_with_sudo_as_a_user_login_loads_through_sudo() {
    let board = FakeBoard::new(sudo_board(), stap_script());
    let plan = Plan {
        sudo: true,
        ..plan()
    };
    let mut q = Query::default();
    q.parse_flag("--sig", "KILL").unwrap();
    let (res, out) = deploy(&board, &plan, &mut stap(q));
    assert_eq!(res.unwrap(), 0, "{out}");
    let run = board
        .log()
        .iter()
        .rfind(|c| c.contains("; exit $st"))
        .unwrap()
        .clone();
    // The wrapper runs through sudo, so the module is loaded as root.
    assert!(run.starts_with(&format!("{MARK}sudo -n sh -c ")), "{run}");
    assert!(run.contains(&format!("d={DIR}")), "{run}");
    assert!(
        run.ends_with(&format!("; st=$?; rm -rf {}; exit $st", quote(DIR))),
        "{run}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(r#"{"host":"board","type":"ready","#),
        "{out}"
    );
    assert!(lines[0].contains(r#""backend":"stap""#), "{out}");
    assert!(
        lines
            .last()
            .unwrap()
            .contains(r#""type":"end","reason":"terminated","signals":1"#),
        "{out}"
    );
    assert!(board.files().is_empty());
}

#[test]
fn stap_as_root_loads_without_sudo() {
    let b = Board {
        tools: vec!["tar", "sha256sum", "mktemp", "staprun"],
        ..Board::default()
    };
    let board = FakeBoard::new(b, stap_script());
    let (res, _) = deploy(&board, &plan(), &mut stap(Query::default()));
    assert_eq!(res.unwrap(), 0);
    let run = board
        .log()
        .iter()
        .rfind(|c| c.contains("; exit $st"))
        .unwrap()
        .clone();
    assert!(
        run.starts_with(&format!("{MARK}sh -c ")) && !run.contains("sudo"),
        "{run}"
    );
    assert!(board
        .log()
        .contains(&format!("upload {DIR}/whosent_session.ko")));
}

#[test]
fn stap_bundle_without_tar_is_an_error() {
    let b = Board {
        tools: vec!["sha256sum", "mktemp"],
        ..Board::default()
    };
    let board = FakeBoard::new(b, stap_script());
    let mut s = Stap::with_module(
        Query::default(),
        None,
        b"ko".to_vec(),
        Staprun::Bundle(b"tgz".to_vec()),
        false,
    );
    let res = deploy(&board, &plan(), &mut s).0;
    fails(&board, res, "no staprun and no tar", "install tar");
}

#[test]
fn a_stap_module_left_loaded_is_an_error() {
    let b = Board {
        tools: vec!["tar", "sha256sum", "mktemp", "staprun"],
        modules: vec![SENDER
            .lines()
            .find(|l| l.contains("\tready\t"))
            .unwrap()
            .split('\t')
            .nth(4)
            .unwrap()
            .into()],
        ..Board::default()
    };
    let board = FakeBoard::new(b, stap_script());
    let e = deploy(&board, &plan(), &mut stap(Query::default()))
        .0
        .unwrap_err();
    assert!(
        e.line().contains("is still loaded on the board"),
        "{}",
        e.line()
    );
    assert!(e.help().contains("staprun -d"));
}

#[test]
fn keep_reuses_the_agent_kept_on_the_board() {
    let board = FakeBoard::new(Board::default(), agent_script());
    let plan = Plan {
        keep: true,
        ..plan()
    };
    assert_eq!(deploy(&board, &plan, &mut agent()).0.unwrap(), 0);
    let kept: Vec<String> = board.files().into_keys().collect();
    assert_eq!(kept.len(), 2, "the agent and its manifest: {kept:?}");
    let run = board.log().last().unwrap().clone();
    assert!(!run.contains("rm -rf"), "{run}");
    let uploads = |b: &FakeBoard| b.log().iter().filter(|c| c.starts_with("upload ")).count();
    assert_eq!(uploads(&board), 1);
    let res = deploy(&board, &plan, &mut agent()).0;
    assert_eq!(res.unwrap(), 0, "{:#?}", board.log());
    assert_eq!(uploads(&board), 1, "uploaded again: {:#?}", board.log());
}

#[test]
fn stap_keep_reuses_the_module_kept_on_the_board() {
    // The board's staprun: the fake board does not unpack a bundle the
    // way the stap backend does (the bundle's reuse is tested on the
    // emulated board, host/tests/stap_backend.rs).
    let b = Board {
        tools: vec!["tar", "sha256sum", "mktemp", "staprun"],
        ..Board::default()
    };
    let board = FakeBoard::new(b, stap_script());
    let keep = Plan {
        keep: true,
        ..plan()
    };
    let stap = |keep: bool| {
        Stap::with_module(
            Query::default(),
            None,
            b"\x7fELF pretend module".to_vec(),
            Staprun::Board,
            keep,
        )
    };
    let uploads = |b: &FakeBoard| b.log().iter().filter(|c| c.starts_with("upload ")).count();
    let (res, out) = deploy(&board, &keep, &mut stap(true));
    assert_eq!(res.unwrap(), 0, "{out}");
    let mut kept: Vec<String> = board.files().into_keys().collect();
    kept.sort();
    let d = kept[0].rsplit_once('/').unwrap().0.to_string();
    assert!(d.starts_with("/tmp/whosent-keep-0-"), "{kept:?}");
    assert_eq!(kept, [format!("{d}/whosent_session.ko")]);
    let log = board.log();
    let run = log.iter().rfind(|c| c.contains("; exit $st")).unwrap();
    assert!(
        !run.contains("rm -rf"),
        "neither the flow nor the wrapper removes it: {run}"
    );
    assert_eq!(uploads(&board), 1);
    // The second run verifies the module on the board and uploads nothing.
    let (res, out) = deploy(&board, &keep, &mut stap(true));
    assert_eq!(res.unwrap(), 0, "{out}");
    assert_eq!(uploads(&board), 1, "uploaded again: {:#?}", board.log());
    let log = board.log();
    let sum = format!("sha256sum {}", quote(&format!("{d}/whosent_session.ko")));
    assert_eq!(
        log.iter().filter(|c| c.starts_with(&sum)).count(),
        2,
        "{log:#?}"
    );
    assert!(out.contains(r#""type":"signal""#), "{out}");
    // A changed module is another key: another directory, uploaded.
    let mut other = Stap::with_module(
        Query::default(),
        None,
        b"\x7fELF another module".to_vec(),
        Staprun::Board,
        true,
    );
    assert_eq!(deploy(&board, &keep, &mut other).0.unwrap(), 0);
    assert_eq!(uploads(&board), 2);
    assert_eq!(board.files().len(), 2, "two kept directories");
}

#[test]
fn stap_without_keep_leaves_nothing() {
    let b = Board {
        tools: vec!["tar", "sha256sum", "mktemp", "staprun"],
        ..Board::default()
    };
    let board = FakeBoard::new(b, stap_script());
    let mut s = Stap::with_module(
        Query::default(),
        None,
        b"\x7fELF pretend module".to_vec(),
        Staprun::Board,
        false,
    );
    assert_eq!(deploy(&board, &plan(), &mut s).0.unwrap(), 0);
    assert!(board.files().is_empty(), "{:#?}", board.files().keys());
    let log = board.log();
    let run = log.iter().rfind(|c| c.contains("; exit $st")).unwrap();
    assert!(run.contains("cd / && rm -rf \"$d\""), "{run}");
}

/// Issue #13 (6): the agent only sees its stdin close; the end record
/// says why the host stopped it (here a stop flag set as Ctrl-C sets
/// it), not `stdin_closed`.
#[test]
fn a_stop_closes_the_agents_stdin_and_the_end_says_why_the_host_stopped() {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let script = Script {
        stdout: vec![READY.into(), SIGNAL.into()],
        on_stop: vec![r#"{"type":"end","reason":"stdin_closed","signals":0,"lost":0}"#.into()],
        stop_at: Some(1),
        ctrl_c: Some(stop.clone()),
        ..Script::default()
    };
    let board = FakeBoard::new(Board::default(), script);
    let mut out = Vec::new();
    let st = flow::run(&board, &plan(), &mut agent(), &mut out, &stop).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.ends_with("\"reason\":\"interrupted\",\"signals\":0,\"lost\":0}\n"),
        "{out}"
    );
    assert_eq!(st, 1);
    assert!(board.files().is_empty());
}

/// Ctrl-C just after the agent was started, before its `ready`: the
/// agent stops cleanly on its closed stdin (its `ready` still comes, on
/// the way out), but nothing was traced, so the run is an interrupted
/// start (exit 2), not an empty capture (boards.rs saw exit 1 there).
#[test]
fn ctrl_c_after_the_agent_started_but_before_ready_is_an_interrupted_start() {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let script = Script {
        stdout: vec![READY.into(), SIGNAL.into()],
        on_stop: vec![
            READY.into(),
            r#"{"type":"end","reason":"stdin_closed","signals":0,"lost":0}"#.into(),
        ],
        stop_at: Some(0),
        ctrl_c: Some(stop.clone()),
        ..Script::default()
    };
    let board = FakeBoard::new(Board::default(), script);
    let mut out = Vec::new();
    let e = flow::run(&board, &plan(), &mut agent(), &mut out, &stop).unwrap_err();
    assert!(
        e.line().contains("interrupted while starting the agent"),
        "{}",
        e.line()
    );
    assert!(e.line().contains("nothing was traced"), "{}", e.line());
    assert!(board.files().is_empty(), "{:#?}", board.files().keys());
}

/// Issue 13 item 8: a Ctrl-C during the upload let the upload finish
/// and then started the agent just to stop it. Now the run ends at the
/// step it was in, the agent never starts, and the directory goes.
#[test]
fn ctrl_c_before_tracing_never_starts_the_agent() {
    let board = FakeBoard::new(Board::default(), agent_script());
    let stop = AtomicBool::new(true);
    let mut out = Vec::new();
    let e = flow::run(&board, &plan(), &mut agent(), &mut out, &stop).unwrap_err();
    assert!(e.line().contains("interrupted while"), "{}", e.line());
    assert!(e.line().contains("nothing was traced"), "{}", e.line());
    assert!(out.is_empty());
    assert!(
        !board.log().iter().any(|c| c.contains("whosent-agent")),
        "{:#?}",
        board.log()
    );
    assert!(board.files().is_empty(), "{:#?}", board.files().keys());
}

/// The agent is told to end by itself when the host's heartbeat stops
/// (issue 13 item 10); a plan without it (a detached capture) does not.
#[test]
fn the_agent_gets_the_alive_timeout_of_the_plan() {
    let board = FakeBoard::new(Board::default(), agent_script());
    let alive = Plan {
        alive_timeout: Some(std::time::Duration::from_secs(30)),
        ..plan()
    };
    assert_eq!(deploy(&board, &alive, &mut agent()).0.unwrap(), 0);
    let run = board.log().last().unwrap().clone();
    assert!(run.contains(" --alive-timeout 30;"), "{run}");
    let board = FakeBoard::new(Board::default(), agent_script());
    assert_eq!(deploy(&board, &plan(), &mut agent()).0.unwrap(), 0);
    let run = board.log().last().unwrap().clone();
    assert!(!run.contains("--alive-timeout"), "{run}");
}

#[test]
fn a_wrong_target_is_refused() {
    let board = FakeBoard::new(Board::default(), agent_script());
    let plan = Plan {
        target: Some("armv7".into()),
        ..plan()
    };
    let e = deploy(&board, &plan, &mut agent()).0.unwrap_err();
    assert!(
        e.line().contains("--target armv7 does not match the board"),
        "{}",
        e.line()
    );
}

/// A writer that takes `room` bytes, then fails every write with `errno`.
struct Failing {
    room: usize,
    errno: i32,
    took: Vec<u8>,
}

impl std::io::Write for Failing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::from_raw_os_error(self.errno));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        self.took.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Issue #13 (4): over SSH, a full stdout exited 0 with nothing
/// written. It is an error, the agent is stopped (its stdin closed: the
/// fake delivers nothing after that) and the board is left clean.
#[test]
fn a_full_stdout_over_ssh_is_an_error_and_stops_the_agent() {
    let script = Script {
        stdout: vec![READY.into(), SIGNAL.into(), SIGNAL.into(), END.into()],
        on_stop: vec![r#"{"type":"end","reason":"stdin_closed","signals":0,"lost":0}"#.into()],
        ..Script::default()
    };
    let board = FakeBoard::new(Board::default(), script);
    let mut out = Failing {
        room: 0,
        errno: libc::ENOSPC,
        took: Vec::new(),
    };
    let never = AtomicBool::new(false);
    let res = flow::run(&board, &plan(), &mut agent(), &mut out, &never);
    fails(
        &board,
        res,
        "cannot write to stdout: No space left on device",
        "where there is room",
    );
    assert!(out.took.is_empty());
}

/// Issue #13 (4): EPIPE is the reader going away, not an error: the run
/// ends quietly, and only the signal whose record was written counts
/// (status 0); with none written whole it is "nothing seen" (1).
#[test]
fn a_closed_stdout_over_ssh_counts_only_what_was_written() {
    let tagged_ready = tagged(READY).len() + 1;
    let tagged_signal = tagged(SIGNAL).len() + 1;
    for (room, status) in [(tagged_ready + tagged_signal, 0), (tagged_ready + 10, 1)] {
        let script = Script {
            stdout: vec![READY.into(), SIGNAL.into(), SIGNAL.into(), END.into()],
            ..Script::default()
        };
        let board = FakeBoard::new(Board::default(), script);
        let mut out = Failing {
            room,
            errno: libc::EPIPE,
            took: Vec::new(),
        };
        let never = AtomicBool::new(false);
        let res = flow::run(&board, &plan(), &mut agent(), &mut out, &never);
        assert_eq!(res.unwrap(), status, "room {room}");
        assert!(board.files().is_empty());
    }
}

/// Issue #13 (7): an agent killed on the board was silent. The channel's
/// exit status (the board's shell gives 128 + n) says how, with the
/// agent's last stderr line; --json gets an `agent_died` error record
/// before the end, and the run exits 2.
#[test]
fn an_agent_killed_on_the_board_is_reported_with_its_last_words() {
    let script = Script {
        stdout: vec![READY.into(), SIGNAL.into()],
        stderr: "whosent-agent: note: first\nwhosent-agent: note: last words\n".into(),
        status: 137,
        ..Script::default()
    };
    let board = FakeBoard::new(Board::default(), script);
    let (res, out) = deploy(&board, &plan(), &mut agent());
    fails(
        &board,
        res,
        "the agent was killed by signal 9 (SIGKILL) during the capture, without its end record; its last line on stderr: whosent-agent: note: last words",
        "the signals before it died are reported",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[1], tagged(SIGNAL));
    assert!(
        lines[2].contains(r#""type":"error","kind":"agent_died""#),
        "{out}"
    );
    assert!(
        lines[3].contains(r#""type":"end","reason":"error","signals":1"#),
        "{out}"
    );
}

/// Issue #13 (7): an "agent" that exits at once with status 1 and says
/// nothing (`--agent /bin/false`) gave exit 2 and no message.
#[test]
fn an_agent_that_exits_before_starting_says_so() {
    let script = Script {
        status: 1,
        ..Script::default()
    };
    let board = FakeBoard::new(Board::default(), script);
    let (res, _) = deploy(&board, &plan(), &mut agent());
    fails(
        &board,
        res,
        "the agent exited with status 1 before the capture started, without its end record; it wrote nothing on stderr",
        "run the agent by hand",
    );
}

#[test]
fn ebpf_on_a_board_without_bpf_stops_before_uploading_and_names_ftrace() {
    let board = FakeBoard::new(Board::default(), agent_script());
    let mut a = agent().with_choice(Choice::Ebpf);
    let (res, _) = deploy(&board, &plan(), &mut a);
    let e = res.expect_err("no bpf on this board");
    assert!(
        e.line()
            .contains("cannot run the eBPF backend: the kernel has no bpf system call"),
        "{}",
        e.line()
    );
    assert!(e.help().contains("--backend ftrace"), "{}", e.help());
    assert!(
        !board.log().iter().any(|c| c.contains("upload")),
        "{:#?}",
        board.log()
    );
}

#[test]
fn auto_picks_the_ebpf_agent_where_the_board_has_bpf_else_ftrace() {
    for (bpf, run) in [
        (true, "whosent-ebpf-agent --sig 9 --stream;"),
        (false, "whosent-agent --sig 9 --stream;"),
    ] {
        let board = FakeBoard::new(
            Board {
                bpf,
                ..Board::default()
            },
            agent_script(),
        );
        let (res, out) = deploy(&board, &plan(), &mut agent().with_choice(Choice::Auto));
        assert_eq!(res.unwrap(), 0, "bpf={bpf}");
        assert!(out.contains(r#""type":"signal""#), "{out}");
        let last = board.log().last().unwrap().clone();
        assert!(
            last.contains(&format!("; {}/{run}", quote(DIR).trim_end_matches('\''))),
            "bpf={bpf}: {last}"
        );
        assert!(board.files().is_empty(), "{:#?}", board.files().keys());
    }
}
