//! The one-line human rendering of records, shared by the agent's
//! `--human` and the host tool.

use crate::code;
use crate::record::{Context, SignalEvent, Task};
use crate::signal;

fn who(t: &Task) -> String {
    match t.pid {
        Some(p) if p == t.tid => format!("{}({})", t.comm, p),
        Some(p) => format!("{}({}/{})", t.comm, p, t.tid),
        None => format!("{}(tid {})", t.comm, t.tid),
    }
}

/// `SIGKILL: test_sender(6993) -> test_receiver(6985)  code=SI_USER  delivered`
///
/// In interrupt context the running task is named as interrupted, not
/// as the sender.
pub fn signal_line(e: &SignalEvent) -> String {
    let from = match e.context {
        Context::Task => who(&e.running),
        ctx => format!(
            "kernel [{} on cpu {}, interrupted {}]",
            ctx.as_str(),
            e.cpu,
            who(&e.running)
        ),
    };
    let code = match code::name(e.sig, e.code) {
        Some(n) => n.to_string(),
        None => e.code.to_string(),
    };
    let mut line = format!(
        "{}: {} -> {}  code={}",
        signal::name(e.sig),
        from,
        who(&e.target),
        code
    );
    if let Some(r) = e.result {
        line.push_str("  ");
        match r.name() {
            Some(n) => line.push_str(n),
            None => line.push_str(&format!("result={}", r.as_raw())),
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Outcome;

    #[test]
    fn the_article_shape() {
        let e = SignalEvent {
            ts_ns: 0,
            cpu: 3,
            sig: 9,
            code: 0,
            errno: 0,
            group: Some(true),
            result: Some(Outcome::Delivered),
            context: Context::Task,
            running: Task {
                pid: Some(6993),
                tid: 6993,
                comm: "test_sender".into(),
                ..Default::default()
            },
            target: Task {
                pid: Some(6985),
                tid: 6985,
                comm: "test_receiver".into(),
                ..Default::default()
            },
        };
        assert_eq!(
            signal_line(&e),
            "SIGKILL: test_sender(6993) -> test_receiver(6985)  code=SI_USER  delivered"
        );
        let mut irq = e.clone();
        irq.context = Context::Hardirq;
        irq.sig = 14;
        irq.code = 0x80;
        irq.result = Some(Outcome::Other(5));
        irq.target.tid = 6990;
        assert_eq!(
            signal_line(&irq),
            "SIGALRM: kernel [hardirq on cpu 3, interrupted test_sender(6993)] -> test_receiver(6985/6990)  code=SI_KERNEL  result=5"
        );
    }
}
