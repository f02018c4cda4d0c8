use super::*;
use crate::encode;
use crate::frame::{reason, role};

fn facts() -> ProcFacts {
    ProcFacts {
        why: crate::frame::why::EXEC,
        ts: 123_456_789,
        tid: 812,
        tgid: 812,
        ppid: 810,
        uid: 65534,
        comm: "kill".into(),
        exe: Some("/bin/kill".into()),
        cmdline: None,
        nstgid: vec![812, 3],
    }
}

fn ready() -> Ready {
    Ready {
        agent: "0.1.0".into(),
        kernel: "6.1.0".into(),
        arch: "aarch64".into(),
        instance: "whosent-1-2".into(),
        filter: "sig == 9".into(),
        cpus: vec![0, 1, 3],
        pids: vec![650],
        sender_pids: vec![],
        lineage: true,
        uid_events: false,
        ebpf: false,
    }
}

/// One of every frame, as the agent writes a capture.
fn sample() -> Vec<u8> {
    let mut s = Vec::new();
    encode::header(&mut s);
    encode::format(&mut s, role::HEADER_PAGE, b"\tfield: u64 timestamp;");
    encode::ready(&mut s, &ready());
    encode::proc(&mut s, &facts());
    encode::page(&mut s, 1, &[7u8; 40]);
    encode::round(&mut s, &[1]);
    encode::stats(&mut s, &[(0, 0), (1, 42)]);
    encode::end_frame(&mut s, reason::STDIN_CLOSED);
    s
}

fn all(d: &mut Decoder) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        out.push(format!("{f:?}"));
    }
    out
}

#[test]
fn every_frame_round_trips() {
    let mut d = Decoder::new();
    d.push(&sample());
    let mut got = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        got.push(format!("{f:?}"));
        if let Frame::Proc(p) = &f {
            assert_eq!(*p, facts());
        }
        if let Frame::Ready(r) = &f {
            assert_eq!(*r, ready());
        }
    }
    assert_eq!(got.len(), 7);
    assert!(
        got[3].starts_with("Page { cpu: 1, data: [7, 7"),
        "{}",
        got[3]
    );
    assert_eq!(got[4], "Round { cut: [1] }");
    assert_eq!(got[5], "Stats([(0, 0), (1, 42)])");
    assert_eq!(got[6], "End { reason: 5 }");
    assert_eq!(d.finish(), Ending::Complete);
}

#[test]
fn bytes_may_arrive_one_at_a_time() {
    let s = sample();
    let mut d = Decoder::new();
    let mut n = 0;
    for b in &s {
        d.push(&[*b]);
        n += all(&mut d).len();
    }
    assert_eq!(n, 7);
    assert_eq!(d.finish(), Ending::Complete);
}

#[test]
fn a_cut_stream_yields_every_whole_frame_before_the_cut() {
    let s = sample();
    let mut whole = Decoder::new();
    whole.push(&s);
    let mut ends = Vec::new();
    while whole.next_frame().unwrap().is_some() {
        ends.push(whole.offset() as usize);
    }
    for cut in 0..s.len() {
        let mut d = Decoder::new();
        d.push(&s[..cut]);
        let n = all(&mut d).len();
        assert_eq!(
            n,
            ends.iter().filter(|&&e| e <= cut).count(),
            "cut at {cut}"
        );
        match d.finish() {
            Ending::Cut { offset, pending } => {
                assert_eq!(offset as usize + pending, cut, "cut at {cut}")
            }
            Ending::Complete => panic!("cut at {cut} reported complete"),
        }
    }
}

#[test]
fn foreign_input_and_other_versions_are_refused() {
    let mut d = Decoder::new();
    d.push(b"SIGKILL: test_sender(6993) -> test_receiver(6985)\n");
    assert!(d.next_frame().unwrap_err().0.contains("no magic"));
    let mut s = sample();
    s[8] = 9;
    let mut d = Decoder::new();
    d.push(&s);
    assert!(d.next_frame().unwrap_err().0.contains("version 9"));
    assert!(is_stream(&sample()) && !is_stream(b"# tracer: nop"));
}

#[test]
fn a_huge_length_is_refused_before_it_is_buffered() {
    let mut s = Vec::new();
    encode::header(&mut s);
    s.push(crate::frame::kind::PAGE);
    s.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut d = Decoder::new();
    d.push(&s);
    assert!(d.next_frame().unwrap_err().0.contains("at most"));
}

#[test]
fn unknown_kinds_are_skipped_and_short_payloads_are_errors() {
    let mut s = Vec::new();
    encode::header(&mut s);
    let at = encode::begin(&mut s, 200);
    s.extend_from_slice(b"future");
    encode::end(&mut s, at);
    let at = encode::begin(&mut s, crate::frame::kind::PROC);
    s.push(1);
    encode::end(&mut s, at);
    let mut d = Decoder::new();
    d.push(&s);
    assert_eq!(d.next_frame().unwrap(), Some(Frame::Unknown { kind: 200 }));
    assert!(d.next_frame().is_err());
    // A list count larger than its frame cannot allocate.
    let mut s = Vec::new();
    encode::header(&mut s);
    let at = encode::begin(&mut s, crate::frame::kind::ROUND);
    encode::u32(&mut s, u32::MAX);
    encode::end(&mut s, at);
    let mut d = Decoder::new();
    d.push(&s);
    assert!(d.next_frame().unwrap_err().0.contains("does not fit"));
}

#[test]
fn the_ebpf_agents_frames_round_trip() {
    let f = crate::frame::Facts {
        tgid: 812,
        tid: 813,
        uid: 1000,
        gid: 100,
        cgroup_id: 0x1_0000_0007,
        target_tgid: 650,
        exited: true,
        comm: "kill".into(),
        nspid: vec![812, 3],
    };
    let rep = crate::frame::Repeat {
        sender: 812,
        target: 650,
        sig: 10,
        code: 0,
        result: -1,
        count: 99_998,
        first: 5,
        last: u64::MAX,
    };
    let mut s = Vec::new();
    encode::header(&mut s);
    encode::ready(
        &mut s,
        &Ready {
            ebpf: true,
            ..ready()
        },
    );
    encode::event(&mut s, 3, 77, Some(&f), &[1, 2, 3, 4]);
    encode::event(&mut s, 1, 78, None, &[9; 12]);
    encode::repeat(&mut s, &rep);
    let mut d = Decoder::new();
    d.push(&s);
    assert!(matches!(d.next_frame().unwrap(), Some(Frame::Ready(r)) if r.ebpf && r.lineage));
    assert_eq!(
        d.next_frame().unwrap(),
        Some(Frame::Event {
            cpu: 3,
            ts: 77,
            facts: Some(f),
            record: &[1, 2, 3, 4]
        })
    );
    assert_eq!(
        d.next_frame().unwrap(),
        Some(Frame::Event {
            cpu: 1,
            ts: 78,
            facts: None,
            record: &[9; 12]
        })
    );
    assert_eq!(d.next_frame().unwrap(), Some(Frame::Repeat(rep)));
    assert_eq!(d.next_frame().unwrap(), None);
}
