use super::*;
use crate::facts::NoFacts;

#[test]
fn names_a_child_that_exited_before_it_was_looked_up() {
    // No facts: everything known comes from the events.
    let mut t = ProcTable::new();
    t.apply(
        &mut NoFacts,
        0,
        &TaskEvent::NewTask {
            parent_tid: 10,
            tid: 11,
            comm: "sh".into(),
            thread: false,
        },
    );
    t.apply(
        &mut NoFacts,
        0,
        &TaskEvent::Exec {
            tid: 11,
            old_tid: 11,
            filename: "/bin/kill".into(),
        },
    );
    t.apply(
        &mut NoFacts,
        0,
        &TaskEvent::Rename {
            tid: 11,
            comm: "kill".into(),
        },
    );
    t.apply(
        &mut NoFacts,
        0,
        &TaskEvent::NewTask {
            parent_tid: 11,
            tid: 12,
            comm: "kill".into(),
            thread: true,
        },
    );
    t.apply(
        &mut NoFacts,
        0,
        &TaskEvent::Exit {
            tid: 11,
            comm: "kill".into(),
            group_dead: None,
        },
    );
    let p = t.lookup(&mut NoFacts, 11).unwrap().clone();
    assert_eq!(
        (p.tgid, p.comm.as_str(), p.exe.as_deref(), p.exited),
        (Some(11), "kill", Some("/bin/kill"), true)
    );
    assert_eq!(t.lookup(&mut NoFacts, 12).unwrap().tgid, Some(11));
    assert!(t.lookup(&mut NoFacts, 99).is_none());
}

#[test]
fn lineage_of_a_chain_that_has_exited() {
    let mut t = ProcTable::new();
    let spawn = |t: &mut ProcTable, parent, tid, file: &str, argv: &str| {
        t.apply(
            &mut NoFacts,
            0,
            &TaskEvent::NewTask {
                parent_tid: parent,
                tid,
                comm: "x".into(),
                thread: false,
            },
        );
        t.apply(
            &mut NoFacts,
            0,
            &TaskEvent::Exec {
                tid,
                old_tid: tid,
                filename: file.into(),
            },
        );
        t.apply(
            &mut NoFacts,
            0,
            &TaskEvent::Rename {
                tid,
                comm: file.rsplit('/').next().unwrap().into(),
            },
        );
        t.apply(
            &mut NoFacts,
            0,
            &TaskEvent::Argv {
                tid,
                cmdline: argv.into(),
            },
        );
    };
    spawn(
        &mut t,
        1,
        800,
        "/usr/bin/watchdog.sh",
        "/bin/sh /usr/bin/watchdog.sh",
    );
    spawn(&mut t, 800, 810, "/bin/sh", "sh -c kill -9 650");
    spawn(&mut t, 810, 812, "/bin/kill", "kill -9 650");
    for tid in [812, 810, 800] {
        t.apply(
            &mut NoFacts,
            0,
            &TaskEvent::Exit {
                tid,
                comm: String::new(),
                group_dead: None,
            },
        );
    }
    let l = t.lineage(&mut NoFacts, 812);
    let got: Vec<_> = l
        .iter()
        .map(|a| (a.pid, a.comm.as_str(), a.cmdline.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (812, "kill", Some("kill -9 650")),
            (810, "sh", Some("sh -c kill -9 650")),
            (800, "watchdog.sh", Some("/bin/sh /usr/bin/watchdog.sh")),
            // Not in the table and not in this /proc: named as unknown.
            (1, "<...>", None),
        ]
    );
    assert_eq!(l[1].exe.as_deref(), Some("/bin/sh"));
}

#[test]
fn a_parent_loop_is_cut() {
    let mut t = ProcTable::new();
    for (parent, tid) in [(9, 5), (5, 6), (6, 5)] {
        t.apply(
            &mut NoFacts,
            0,
            &TaskEvent::NewTask {
                parent_tid: parent,
                tid,
                comm: "x".into(),
                thread: false,
            },
        );
    }
    assert_eq!(t.lineage(&mut NoFacts, 6).len(), 2);
    let mut chain = ProcTable::new();
    for tid in 2..40 {
        chain.apply(
            &mut NoFacts,
            0,
            &TaskEvent::NewTask {
                parent_tid: tid - 1,
                tid,
                comm: "x".into(),
                thread: false,
            },
        );
    }
    assert_eq!(chain.lineage(&mut NoFacts, 39).len(), MAX_LINEAGE);
}

fn facts(tid: i32, uid: u32) -> ProcFacts {
    ProcFacts {
        tid,
        tgid: tid,
        ppid: 1,
        uid,
        comm: "sh".into(),
        ..Default::default()
    }
}

fn fork(t: &mut ProcTable, parent: i32, tid: i32) {
    t.apply(
        &mut NoFacts,
        0,
        &TaskEvent::NewTask {
            parent_tid: parent,
            tid,
            comm: "sh".into(),
            thread: false,
        },
    );
}

fn uid(t: &mut ProcTable, tid: i32) -> Option<u32> {
    t.lookup(&mut NoFacts, tid).unwrap().uid
}

#[test]
fn a_uid_dropped_after_fork_is_followed() {
    // As `setpriv --reuid 65534 sh -c 'kill ...'` under a root shell.
    let mut t = ProcTable::new();
    t.uid_events = true;
    t.learn(facts(100, 0));
    fork(&mut t, 100, 101);
    assert_eq!(uid(&mut t, 101), Some(0), "fork copies the credentials");
    let call = |t: &mut ProcTable, call, ret| {
        t.apply_uid(&UidEvent::Enter { tid: 101, call });
        t.apply_uid(&UidEvent::Exit { tid: 101, ret });
    };
    call(&mut t, UidCall::SetRealUid(Some(65534)), -1);
    assert_eq!(uid(&mut t, 101), Some(0), "a failed call changes nothing");
    call(&mut t, UidCall::SetRealUid(Some(65534)), 0);
    assert_eq!(uid(&mut t, 101), Some(65534));
    call(&mut t, UidCall::SetRealUid(None), 0);
    assert_eq!(uid(&mut t, 101), Some(65534), "-1 keeps the real uid");
    // setuid() may have changed only the effective uid: unknown.
    call(&mut t, UidCall::SetUid(1000), 0);
    assert_eq!(uid(&mut t, 101), None);
    assert_eq!(uid(&mut t, 100), Some(0), "the parent keeps its own");
    // The next fork of the unknown stays unknown.
    fork(&mut t, 101, 102);
    assert_eq!(uid(&mut t, 102), None);
}

#[test]
fn without_uid_events_an_inherited_uid_is_unknown() {
    let mut t = ProcTable::new();
    t.learn(facts(100, 0));
    fork(&mut t, 100, 101);
    assert_eq!(uid(&mut t, 101), None);
    // /proc read at exec vouches for the uid it showed.
    struct At(u32);
    impl crate::facts::FactSource for At {
        fn facts(&mut self, tid: i32, _: Option<u64>) -> Option<ProcFacts> {
            Some(facts(tid, self.0))
        }
    }
    t.apply(
        &mut At(65534),
        5,
        &TaskEvent::Exec {
            tid: 101,
            old_tid: 101,
            filename: "/bin/sh".into(),
        },
    );
    assert_eq!(uid(&mut t, 101), Some(65534));
}
