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
    let mut s = Session::new(Query::default(), None);
    s.recording = recording;
    let mut out = Collect::default();
    let mut ending = whosent_stream::decode::Ending::Complete;
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            s.next_segment();
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
