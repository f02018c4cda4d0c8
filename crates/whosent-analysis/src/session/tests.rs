//! The session over a stream recorded from a real kernel:
//! `tests/fixtures/host-6.18/stream-kill.wst` (see the README there).

use super::*;
use whosent_stream::decode::Decoder;

const KILL: &[u8] = include_bytes!("../../../../tests/fixtures/host-6.18/stream-kill.wst");

fn run(bytes: &[u8], q: Query, count: Option<u64>) -> Collect {
    let mut d = Decoder::new();
    d.push(bytes);
    let mut s = Session::new(q, count);
    let mut out = Collect::default();
    while let Some(f) = d.next_frame().unwrap() {
        s.frame(f, &mut out).unwrap();
    }
    s.finish(&d.finish(), EndReason::Eof, &mut out);
    out
}

#[test]
fn a_recorded_stream_gives_the_records_of_its_two_kills() {
    let out = run(KILL, Query::default(), None);
    assert_eq!(out.ready.len(), 1);
    assert_eq!(out.ready[0].filter, "sig == 10");
    let s = &out.signals;
    assert_eq!(s.len(), 2, "{s:?}");
    for e in s {
        assert_eq!((e.sig, e.target.comm.as_str()), (10, "test_receiver"));
        let sender = e.sender().unwrap();
        assert_eq!(sender.comm, "test_sender");
        // From the PROC frames the agent read at the sender's exec.
        assert_eq!(sender.uid, Some(0));
        assert!(sender
            .cmdline
            .as_deref()
            .unwrap()
            .contains("test_sender kill 10"));
        assert_eq!(sender.nspid.as_deref(), Some(&[sender.pid.unwrap()][..]));
    }
    assert!(s[0].ts_ns < s[1].ts_ns);
    assert_ne!(s[0].running.pid, s[1].running.pid);
    assert!(out.lost.is_empty());
    let end = &out.end[0];
    assert_eq!(
        (end.reason, end.signals, end.lost),
        (EndReason::StdinClosed, 2, 0)
    );
}

#[test]
fn the_query_and_count_apply_on_the_host() {
    let none = run(
        KILL,
        Query {
            sigs: vec![9],
            ..Default::default()
        },
        None,
    );
    assert_eq!((none.signals.len(), none.end[0].signals), (0, 0));
    let one = run(KILL, Query::default(), Some(1));
    assert_eq!(one.signals.len(), 1);
    assert_eq!(one.end[0].reason, EndReason::Count);
}

#[test]
fn a_cut_stream_reports_what_came_before_and_says_it_was_cut() {
    let whole = run(KILL, Query::default(), None);
    let (mut d, mut ends) = (Decoder::new(), Vec::new());
    d.push(KILL);
    while d.next_frame().unwrap().is_some() {
        ends.push(d.offset() as usize);
    }
    for cut in (0..KILL.len()).step_by(7).chain([KILL.len() - 1]) {
        let out = run(&KILL[..cut], Query::default(), None);
        if out.ready.is_empty() {
            // Cut before READY: nothing was live, nothing to report.
            assert!(out.end.is_empty() && out.signals.is_empty());
            continue;
        }
        // Every signal reported is one of the whole stream's, in order,
        // with the same values or null: a cut between an exec's page and
        // the /proc facts the agent sent after it loses the facts.
        for (got, want) in out.signals.iter().zip(&whole.signals) {
            let (g, w) = (&got.running, &want.running);
            assert_eq!(
                (got.ts_ns, got.sig, g.pid, &g.comm),
                (want.ts_ns, want.sig, w.pid, &w.comm)
            );
            assert!(
                g.cmdline.is_none() || g.cmdline == w.cmdline,
                "cut at {cut}"
            );
            assert!(g.nspid.is_none() || g.nspid == w.nspid, "cut at {cut}");
            assert!(g.uid.is_none() || g.uid == w.uid, "cut at {cut}");
        }
        assert!(out.signals.len() <= whole.signals.len());
        let end = out.end.last().unwrap();
        assert_eq!(end.reason, EndReason::Eof, "cut at {cut}");
        assert_eq!(end.signals, out.signals.len() as u64);
        assert!(
            !out.lost.is_empty() && out.lost.iter().all(|l| l.count.is_none()),
            "cut at {cut}: {:?}",
            out.lost
        );
    }
}

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

/// Decodes `segments` as one detached capture, as `whosent-deploy
/// collect` does: a decoder per segment, one session across them.
fn run_segments(segments: &[Vec<u8>], recording: bool) -> Collect {
    run_segments_gap(segments, recording, false)
}

/// As [`run_segments`]; with `gap`, segments were deleted before each
/// one after the first.
fn run_segments_gap(segments: &[Vec<u8>], recording: bool, gap: bool) -> Collect {
    let mut s = Session::new(Query::default(), None);
    s.recording = recording;
    let mut out = Collect::default();
    let mut ending = whosent_stream::decode::Ending::Complete;
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            s.next_segment(gap);
        }
        let mut d = Decoder::new();
        d.push(seg);
        while let Some(f) = d.next_frame().unwrap() {
            s.frame(f, &mut out).unwrap();
        }
        ending = d.finish();
    }
    s.finish(&ending, EndReason::Eof, &mut out);
    out
}

/// A detached capture's segments each repeat the preamble (header,
/// FORMAT, snapshot PROC, READY); decoded as one, wherever the recorder
/// cut between frames, they give exactly the records of the unsplit
/// stream: one ready, the same signals with the same senders (the
/// process table carried across), one end.
#[test]
fn segments_of_one_capture_decode_as_the_whole_stream() {
    let whole = run(KILL, Query::default(), None);
    let ends = frame_ends(KILL);
    let ready = ends
        .iter()
        .find(|(_, k)| *k == whosent_stream::frame::kind::READY)
        .unwrap()
        .0;
    let mut splits = 0;
    for &(cut, _) in ends.iter().filter(|(e, _)| *e > ready && *e < KILL.len()) {
        let first = KILL[..cut].to_vec();
        let second = [&KILL[..ready], &KILL[cut..]].concat();
        let out = run_segments(&[first, second], false);
        assert_eq!(out.ready.len(), 1, "split at {cut}");
        assert_eq!(out.signals, whole.signals, "split at {cut}");
        assert_eq!(out.end, whole.end, "split at {cut}");
        assert!(out.lost.is_empty(), "split at {cut}: {:?}", out.lost);
        splits += 1;
    }
    assert!(splits > 3, "{splits}");
}

/// A capture still recording ends where the recorder has got to: no
/// unknown loss is claimed, the end reason is the caller's, and events
/// lost before the first segment (deleted ones) count in the end.
#[test]
fn a_capture_still_recording_is_not_a_cut_and_counts_what_was_lost_before() {
    let ends = frame_ends(KILL);
    // Without its STATS and END: as the agent is still writing it.
    let last = ends
        .iter()
        .rev()
        .find(|(_, k)| *k == whosent_stream::frame::kind::ROUND)
        .unwrap()
        .0;
    let mut s = Session::new(Query::default(), None);
    s.recording = true;
    s.lost_before = 7;
    let mut out = Collect::default();
    let mut d = Decoder::new();
    d.push(&KILL[..last]);
    while let Some(f) = d.next_frame().unwrap() {
        s.frame(f, &mut out).unwrap();
    }
    s.finish(&d.finish(), EndReason::Eof, &mut out);
    assert_eq!(out.signals.len(), 2);
    assert!(out.lost.is_empty(), "{:?}", out.lost);
    assert_eq!(
        (out.end[0].reason, out.end[0].signals, out.end[0].lost),
        (EndReason::Eof, 2, 7)
    );
    let cut = run_segments(&[KILL[..last].to_vec()], false);
    assert!(cut.lost.iter().all(|l| l.count.is_none()) && !cut.lost.is_empty());
}

/// The first segment's preamble without its /proc snapshot, and the
/// whole fixture as the segment after a hole: the deleted segments'
/// task events are gone, and only the later segment's snapshot tells
/// who the processes are. After a gap it is learned (the senders are
/// named as in the whole stream); read as a continuing segment it is
/// skipped, and they are not.
#[test]
fn after_deleted_segments_the_next_snapshot_is_learned() {
    let whole = run(KILL, Query::default(), None);
    let mut bare = KILL[..whosent_stream::HEADER_LEN].to_vec();
    let mut at = whosent_stream::HEADER_LEN;
    for (end, kind) in frame_ends(KILL) {
        let snapshot = kind == whosent_stream::frame::kind::PROC
            && KILL[at + 5] == whosent_stream::frame::why::SNAPSHOT;
        if !snapshot {
            bare.extend_from_slice(&KILL[at..end]);
        }
        at = end;
        if kind == whosent_stream::frame::kind::READY {
            break;
        }
    }
    let segs = [bare, KILL.to_vec()];
    let after_gap = run_segments_gap(&segs, false, true);
    assert_eq!(after_gap.signals, whole.signals);
    let continuing = run_segments_gap(&segs, false, false);
    assert_ne!(
        continuing.signals, whole.signals,
        "the fixture's senders must need the snapshot for this test to tell anything"
    );
}

/// The eBPF agent's stream (`whosent-ebpf-agent --stream`): EVENT
/// frames carry the program's records and what it read of the sender
/// in the kernel; the lineage and the cause are made here, on the host,
/// from the PROC frames and the events, by the ftrace backend's
/// pipeline.
#[cfg(feature = "kernel-facts")]
mod ebpf {
    use super::*;
    use whosent_stream::encode;
    use whosent_stream::frame::{why, Facts, ProcFacts, Ready, Repeat};

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/host-6.18"
    );

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{rel}")).unwrap()
    }

    fn proc(tid: i32, ppid: i32, comm: &str, cmdline: &str) -> ProcFacts {
        ProcFacts {
            why: why::SNAPSHOT,
            ts: 0,
            tid,
            tgid: tid,
            ppid,
            uid: 0,
            comm: comm.into(),
            exe: Some(format!("/bin/{comm}")),
            cmdline: Some(cmdline.into()),
            nstgid: vec![tid],
        }
    }

    /// signal_generate's record (ID 261 in the fixture's format): `sig`
    /// from `running` to `target`, delivered.
    fn signal(running: i32, sig: i32, target: i32, comm: &str) -> Vec<u8> {
        let mut r = vec![0u8; 48];
        r[0..2].copy_from_slice(&261u16.to_ne_bytes());
        r[4..8].copy_from_slice(&running.to_ne_bytes());
        r[8..12].copy_from_slice(&sig.to_ne_bytes());
        // errno 0, code 0 (SI_USER).
        r[20..20 + comm.len()].copy_from_slice(comm.as_bytes());
        r[36..40].copy_from_slice(&target.to_ne_bytes());
        r[40..44].copy_from_slice(&1i32.to_ne_bytes());
        r
    }

    fn stream(extra: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        stream_with_stats(extra, &[])
    }

    fn stream_with_stats(extra: impl FnOnce(&mut Vec<u8>), stats: &[(u32, u64)]) -> Vec<u8> {
        let mut s = Vec::new();
        encode::header(&mut s);
        encode::format(
            &mut s,
            role::HEADER_PAGE,
            &fixture("tracefs/events/header_page"),
        );
        encode::format(
            &mut s,
            role::SIGNAL,
            &fixture("tracefs/events/signal/signal_generate/format"),
        );
        encode::format(
            &mut s,
            role::TASK,
            &fixture("tracefs/events/task/task_newtask/format"),
        );
        // The board's processes: the sender's parents, as /proc told.
        for p in [
            proc(1, 0, "init", "/sbin/init"),
            proc(100, 1, "watchdog.sh", "/bin/sh /usr/bin/watchdog.sh"),
            proc(650, 1, "myapp", "myapp"),
        ] {
            encode::proc(&mut s, &p);
        }
        encode::ready(
            &mut s,
            &Ready {
                agent: "0.1.0".into(),
                kernel: "6.18.44".into(),
                arch: "x86_64".into(),
                instance: "bpf:ringbuf".into(),
                filter: "sig == 10".into(),
                lineage: true,
                ebpf: true,
                ..Default::default()
            },
        );
        // A short-lived `kill` the snapshot did not know, gone before
        // /proc was read: its PROC frame says only that it existed; the
        // program read its uid, comm and cgroup.
        encode::proc(
            &mut s,
            &ProcFacts {
                why: why::MISS,
                ts: 5_000,
                ..proc(200, 100, "kill", "/bin/kill -USR1 650")
            },
        );
        let facts = Facts {
            tgid: 200,
            tid: 200,
            uid: 1000,
            gid: 1000,
            cgroup_id: 4242,
            target_tgid: 650,
            exited: false,
            comm: "kill".into(),
            nspid: vec![200, 3],
        };
        encode::event(
            &mut s,
            1,
            5_000,
            Some(&facts),
            &signal(200, 10, 650, "myapp"),
        );
        extra(&mut s);
        encode::round(&mut s, &[]);
        encode::stats(&mut s, stats);
        encode::end_frame(&mut s, whosent_stream::frame::reason::STDIN_CLOSED);
        s
    }

    #[test]
    fn an_ebpf_stream_gets_its_lineage_and_cause_on_the_host() {
        let out = run(&stream(|_| {}), Query::default(), None);
        assert_eq!(out.ready[0].backend, "ebpf");
        assert_eq!(out.signals.len(), 1, "{out:?}");
        let e = &out.signals[0];
        assert_eq!(e.cause, Some(whosent_proto::cause::Cause::Kill));
        let s = e.sender().unwrap();
        // What the program read outranks the PROC frame's uid 0.
        assert_eq!(
            (s.pid, s.uid, s.cgroup_id),
            (Some(200), Some(1000), Some(4242))
        );
        assert_eq!(s.nspid.as_deref(), Some(&[200, 3][..]));
        // The lineage from the host's process table, fed by PROC frames.
        let l: Vec<(i32, &str)> = s
            .lineage
            .as_ref()
            .unwrap()
            .iter()
            .map(|a| (a.pid, a.comm.as_str()))
            .collect();
        assert_eq!(l, [(200, "kill"), (100, "watchdog.sh"), (1, "init")]);
        assert_eq!(s.cmdline.as_deref(), Some("/bin/kill -USR1 650"));
        assert_eq!((e.target.pid, e.target.comm.as_str()), (Some(650), "myapp"));
        assert_eq!(out.end[0].signals, 1);
    }

    /// The eBPF agent's STATS: cpu 1's ring-buffer loss, and the events
    /// the kernel did not run the program for (`recursion_misses`).
    #[test]
    fn events_the_kernel_did_not_run_the_program_for_are_lost_with_no_cpu() {
        let out = run(
            &stream_with_stats(|_| {}, &[(1, 3), (Lost::NOT_RUN, 2)]),
            Query::default(),
            None,
        );
        assert_eq!(
            out.lost,
            [
                Lost {
                    cpu: 1,
                    count: Some(3)
                },
                Lost {
                    cpu: Lost::NOT_RUN,
                    count: Some(2)
                }
            ]
        );
        assert_eq!((out.end[0].signals, out.end[0].lost), (1, 5));
        let mut json = String::new();
        out.lost[1].encode(&mut json);
        assert_eq!(
            json,
            "{\"type\":\"lost\",\"cpu\":null,\"count\":2,\"why\":\"not_run\"}\n"
        );
    }

    #[test]
    fn folded_counts_become_repeat_records_after_their_first() {
        let count = |n| Repeat {
            sender: 200,
            target: 650,
            sig: 10,
            code: 0,
            result: 0,
            count: n,
            first: 5_000,
            last: 9_000 + n,
        };
        let out = run(
            &stream(|s| {
                // Before the first signal was applied (it waits for the
                // ROUND): held, then counted once.
                encode::repeat(s, &count(40));
                encode::repeat(s, &count(99));
            }),
            Query::default(),
            None,
        );
        assert_eq!(out.repeats.len(), 1, "{:?}", out.repeats);
        let r = &out.repeats[0];
        assert_eq!((r.sender, r.count, r.ts_ns), (Some(200), 99, 9_099));
        assert_eq!(out.end[0].signals, 100);
        // A count of a key whose first did not match the query is never
        // reported.
        let none = run(
            &stream(|s| encode::repeat(s, &count(5))),
            Query {
                sigs: vec![9],
                ..Default::default()
            },
            None,
        );
        assert!(none.repeats.is_empty() && none.signals.is_empty());
        assert_eq!(none.end[0].signals, 0);
    }
}
