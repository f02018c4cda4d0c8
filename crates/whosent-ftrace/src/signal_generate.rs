//! Decoding `signal:signal_generate` records with the layout read from
//! the kernel's own `format` file.
//!
//! The event (`include/trace/events/signal.h`) records the *target* in
//! `comm`/`pid`; the sender is the task that was running, found in the
//! common header (`common_pid`, `common_flags`).

use crate::format::{EventFormat, Field, FormatError, Slot};
use whosent_proto::record::Context;

/// `enum trace_flag_type` in `kernel/trace/trace.h`; these three bits
/// have kept their values since 2.6.
const FLAG_HARDIRQ: i64 = 0x08;
const FLAG_SOFTIRQ: i64 = 0x10;
const FLAG_NMI: i64 = 0x40;

/// Where the interesting fields sit in this kernel's records.
#[derive(Debug, Clone)]
pub struct SignalLayout {
    pub id: u16,
    common_flags: Slot,
    common_pid: Slot,
    sig: Slot,
    errno: Slot,
    code: Slot,
    comm: Slot,
    pid: Slot,
    /// Absent before Linux 3.4.
    group: Option<Slot>,
    result: Option<Slot>,
}

/// One record, decoded but not yet enriched with /proc facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSignal {
    pub context: Context,
    /// The running task (tid): the sender in task context.
    pub running_tid: i32,
    pub sig: i32,
    pub errno: i32,
    pub code: i32,
    pub target_comm: String,
    pub target_tid: i32,
    pub group: Option<bool>,
    pub result: Option<i32>,
}

impl SignalLayout {
    pub fn new(f: &EventFormat) -> Result<Self, FormatError> {
        if f.name != "signal_generate" {
            return Err(FormatError(format!(
                "expected signal_generate, got {}",
                f.name
            )));
        }
        Ok(SignalLayout {
            id: f.id,
            common_flags: f.require("common_flags")?.slot(),
            common_pid: f.require("common_pid")?.slot(),
            sig: f.require("sig")?.slot(),
            errno: f.require("errno")?.slot(),
            code: f.require("code")?.slot(),
            comm: f.require("comm")?.slot(),
            pid: f.require("pid")?.slot(),
            group: f.field("group").map(Field::slot),
            result: f.field("result").map(Field::slot),
        })
    }

    /// Whether the kernel can report the outcome (3.4+).
    pub fn has_result(&self) -> bool {
        self.result.is_some()
    }

    /// The running task and the target's tid, without decoding the rest:
    /// the recorder only needs to know whom to read /proc for.
    pub fn tids(&self, rec: &[u8]) -> Option<(i32, i32)> {
        Some((self.common_pid.int(rec)? as i32, self.pid.int(rec)? as i32))
    }

    /// Decodes one record; `None` if it is too short for this layout.
    pub fn decode(&self, rec: &[u8]) -> Option<RawSignal> {
        let int = |f: &Slot| f.int(rec).map(|v| v as i32);
        Some(RawSignal {
            context: context(self.common_flags.int(rec)?),
            running_tid: int(&self.common_pid)?,
            sig: int(&self.sig)?,
            errno: int(&self.errno)?,
            code: int(&self.code)?,
            target_comm: self.comm.string(rec)?,
            target_tid: int(&self.pid)?,
            group: match &self.group {
                Some(f) => Some(int(f)? != 0),
                None => None,
            },
            result: match &self.result {
                Some(f) => Some(int(f)?),
                None => None,
            },
        })
    }
}

/// The execution context from `common_flags`.
pub fn context(flags: i64) -> Context {
    if flags & FLAG_NMI != 0 {
        Context::Nmi
    } else if flags & FLAG_HARDIRQ != 0 {
        Context::Hardirq
    } else if flags & FLAG_SOFTIRQ != 0 {
        Context::Softirq
    } else {
        Context::Task
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> SignalLayout {
        let txt = include_str!("../../../tests/fixtures/format/host-6.18-signal_generate");
        SignalLayout::new(&EventFormat::parse(txt.as_bytes()).unwrap()).unwrap()
    }

    fn record(
        flags: u8,
        common_pid: i32,
        sig: i32,
        code: i32,
        comm: &str,
        pid: i32,
        result: i32,
    ) -> Vec<u8> {
        let mut r = vec![0u8; 48];
        r[0..2].copy_from_slice(&261u16.to_ne_bytes());
        r[2] = flags;
        r[4..8].copy_from_slice(&common_pid.to_ne_bytes());
        r[8..12].copy_from_slice(&sig.to_ne_bytes());
        r[16..20].copy_from_slice(&code.to_ne_bytes());
        r[20..20 + comm.len()].copy_from_slice(comm.as_bytes());
        r[36..40].copy_from_slice(&pid.to_ne_bytes());
        r[40..44].copy_from_slice(&1i32.to_ne_bytes());
        r[44..48].copy_from_slice(&result.to_ne_bytes());
        r
    }

    #[test]
    fn sender_from_header_target_from_fields() {
        let l = layout();
        assert_eq!(l.id, 261);
        let r = l
            .decode(&record(0x01, 6993, 9, 0, "test_receiver", 6985, 0))
            .unwrap();
        assert_eq!(
            r,
            RawSignal {
                context: Context::Task,
                running_tid: 6993,
                sig: 9,
                errno: 0,
                code: 0,
                target_comm: "test_receiver".into(),
                target_tid: 6985,
                group: Some(true),
                result: Some(0),
            }
        );
        let irq = l.decode(&record(0x09, 0, 14, 0x80, "sleep", 5, 2)).unwrap();
        assert_eq!((irq.context, irq.result), (Context::Hardirq, Some(2)));
        assert_eq!(
            l.decode(&record(0x10, 1, 1, 1, "x", 1, 1)).unwrap().context,
            Context::Softirq
        );
        assert_eq!(
            l.decode(&record(0x48, 1, 1, 1, "x", 1, 1)).unwrap().context,
            Context::Nmi
        );
        assert!(l.decode(&[0u8; 20]).is_none());
    }

    #[test]
    fn kernels_before_3_4_have_no_group_or_result() {
        let txt = include_str!("../../../tests/fixtures/format/host-6.18-signal_generate")
            .lines()
            .filter(|l| !l.contains("group") && !l.contains("result"))
            .collect::<Vec<_>>()
            .join("\n");
        let l = SignalLayout::new(&EventFormat::parse(txt.as_bytes()).unwrap()).unwrap();
        assert!(!l.has_result());
        let r = l.decode(&record(0, 1, 15, 0, "a", 2, 0)[..40]).unwrap();
        assert_eq!((r.group, r.result, r.sig), (None, None, 15));
    }
}
