//! The trace.dat reader checked against trace-cmd itself: for each file
//! that `trace-cmd record` wrote (tests/fixtures/host-6.18/tracedat,
//! README there), every signal_generate event and every loss decoded
//! here must be what `trace-cmd report` printed for the same file, in
//! the same order: signal, errno, code, target comm and pid, group,
//! result, the running task's pid and comm, CPU and timestamp; and the
//! context must match the flags column of `trace-cmd report -l`.

use whosent_ftrace::text::{self, TextItem, TextSignal};
use whosent_ftrace::tracedat::signals::DatItem;
use whosent_ftrace::tracedat::{Codec, TraceDat};
use whosent_proto::record::SignalEvent;

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../../tests/fixtures/host-6.18/tracedat/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

enum Seen {
    Signal(TextSignal),
    Lost(u32, Option<u64>),
}

fn report(name: &str) -> Vec<Seen> {
    text::parse(fixture(name).as_slice())
        .map(|i| match i.unwrap_or_else(|e| panic!("{name}: {e}")) {
            TextItem::Signal(s) => Seen::Signal(s),
            TextItem::Lost { cpu, count } => {
                Seen::Lost(cpu.expect("trace-cmd names the CPU"), count)
            }
        })
        .collect()
}

fn decoded(dat: &TraceDat<'_>) -> Vec<DatItem> {
    dat.signals().unwrap().map(Result::unwrap).collect()
}

/// Compares one file's decoding with both reports; returns the number
/// of signals and losses.
fn check(name: &str) -> (usize, usize) {
    let bytes = fixture(&format!("{name}.dat"));
    let dat = TraceDat::parse(&bytes).unwrap();
    assert!(dat.warnings.is_empty(), "{name}: {:?}", dat.warnings);
    let ours = decoded(&dat);
    let theirs = report(&format!("{name}.report.txt"));
    let theirs_l = report(&format!("{name}.report-l.txt"));
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{name}: how many signals and losses"
    );
    assert_eq!(ours.len(), theirs_l.len(), "{name}: -l");
    let (mut signals, mut losses) = (0, 0);
    for (i, ((o, t), l)) in ours.iter().zip(&theirs).zip(&theirs_l).enumerate() {
        match (o, t, l) {
            (DatItem::Signal(o), Seen::Signal(t), Seen::Signal(l)) => {
                same(name, i, o, t);
                assert_eq!(o.context, l.context, "{name} #{i}: context vs report -l");
                signals += 1;
            }
            (DatItem::Lost { cpu, count }, Seen::Lost(tc, tn), Seen::Lost(..)) => {
                assert_eq!((cpu, count), (tc, tn), "{name} #{i}: loss");
                losses += 1;
            }
            _ => panic!("{name} #{i}: a signal on one side, a loss on the other"),
        }
    }
    (signals, losses)
}

fn same(name: &str, i: usize, o: &SignalEvent, t: &TextSignal) {
    let at = format!("{name} #{i} ({t:?})");
    // trace-cmd prints microseconds, rounded to nearest like the kernel.
    assert_eq!((o.ts_ns + 500) / 1000, t.ts_ns / 1000, "{at}: timestamp");
    assert_eq!(o.cpu, t.cpu, "{at}: cpu");
    assert_eq!((o.sig, o.errno, o.code), (t.sig, t.errno, t.code), "{at}");
    assert_eq!(
        (o.target.tid, o.target.comm.as_str()),
        (t.target_tid, t.target_comm.as_str()),
        "{at}: target"
    );
    assert_eq!(o.group.map(i32::from), t.group, "{at}: group");
    assert_eq!(o.result.map(|r| r.as_raw()), t.result, "{at}: result");
    assert_eq!(o.running.tid, t.running_tid, "{at}: running pid");
    let comm = t.running_comm.as_deref().unwrap_or("<...>");
    assert_eq!(o.running.comm, comm, "{at}: running comm");
}

#[test]
fn v6_matches_trace_cmd_report() {
    let (signals, losses) = check("v6");
    assert!(signals > 500, "{signals}");
    assert_eq!(losses, 0);
}

#[test]
fn v7_matches_trace_cmd_report() {
    let (signals, losses) = check("v7");
    assert!(signals > 500, "{signals}");
    assert_eq!(losses, 0);
}

#[test]
fn v7_zstd_matches_trace_cmd_report() {
    let bytes = fixture("v7-zstd.dat");
    let dat = TraceDat::parse(&bytes).unwrap();
    assert_eq!(dat.header.codec(), Some(Codec::Zstd));
    let (signals, _) = check("v7-zstd");
    assert!(signals > 500, "{signals}");
}

#[test]
fn lost_events_match_trace_cmd_report() {
    let (signals, losses) = check("v7-zstd-dropped");
    assert!(signals > 1000, "{signals}");
    assert!(losses >= 1, "{losses}");
}

/// The workload's own steps (record/workload.sh), as the user would
/// look for them: who sent what to test_receiver, and the timer's
/// SIGALRM from interrupt context.
#[test]
fn the_workload_signals_are_there_in_every_version() {
    use whosent_proto::record::{Context, Outcome};
    for name in ["v6", "v7", "v7-zstd"] {
        let bytes = fixture(&format!("{name}.dat"));
        let dat = TraceDat::parse(&bytes).unwrap();
        let to_rx: Vec<SignalEvent> = decoded(&dat)
            .into_iter()
            .filter_map(|i| match i {
                DatItem::Signal(s) if s.target.comm == "test_receiver" => Some(s),
                _ => None,
            })
            .collect();
        let got: Vec<_> = to_rx
            .iter()
            // In interrupt context the running task is whoever was on
            // the CPU: no sender.
            .map(|s| {
                let sender = match s.context {
                    Context::Task => s.running.comm.as_str(),
                    _ => "-",
                };
                (s.sig, s.code, s.group, sender, s.context)
            })
            .collect();
        assert_eq!(
            got,
            [
                (10, 0, Some(true), "test_sender", Context::Task), // kill USR1
                (35, -1, Some(true), "test_sender", Context::Task), // sigqueue: SI_QUEUE
                (15, -6, Some(false), "test_sender", Context::Task), // tgkill: SI_TKILL
                (14, 128, Some(true), "-", Context::Hardirq),      // alarm: SI_KERNEL
            ],
            "{name}"
        );
        assert!(
            to_rx.iter().all(|s| s.result == Some(Outcome::Delivered)),
            "{name}"
        );
        // The storm: 500 SIGUSR2 from signal_storm to its child.
        let storm = decoded(&dat)
            .into_iter()
            .filter(|i| matches!(i, DatItem::Signal(s) if s.sig == 12 && s.running.comm == "signal_storm"))
            .count();
        assert_eq!(storm, 500, "{name}");
    }
}
