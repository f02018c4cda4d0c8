//! Reading signals out of the Linux audit subsystem's records: an
//! audit.log (RAW or ENRICHED), ausearch's output (with or without
//! `-i`), or the kernel's netlink text, into the same signal records as
//! whosent's other backends, with cause `kill`. Free of I/O: it takes
//! lines.
//!
//! Audit sees only signals sent by system calls (`audit_signal_info` in
//! kernel/audit.c runs for signals from user space), so the kernel's
//! own (the OOM killer, faults, timers, tty hangups, SIGPIPE) never
//! appear, and only processes that got an audit context at fork, which
//! happens only while audit is enabled (`audit_alloc` in
//! kernel/auditsc.c).
//!
//! - [`record`]: one line into one record;
//! - [`event`]: records joined into events by their stamp;
//! - [`syscalls`]: the signal calls per ABI;
//! - [`signal`]: an event into signal records, JSON and human lines.

pub mod errno;
mod error;
pub mod event;
pub mod fields;
pub mod record;
pub mod signal;
pub mod syscalls;

pub use error::AuditError;
pub use signal::AuditSignal;

use event::Assembler;
use record::Kind;

/// Whether `prefix` (the first bytes of an input) is audit text: a
/// record (`type=`, `node=`) or ausearch's `----` separator.
pub fn is_audit(prefix: &[u8]) -> bool {
    [&b"type="[..], b"node=", b"----\n", b"----\r"]
        .iter()
        .any(|m| prefix.starts_with(m))
        || prefix == b"----"
}

/// Reads audit text line by line. Records of an event may come in any
/// order; an event is complete at its EOE record (netlink), else at
/// [`Parser::finish`], which returns the rest in time order.
#[derive(Debug, Default)]
pub struct Parser {
    asm: Assembler,
    line: usize,
}

/// What a line or the end gave: signal records, or a problem to warn
/// about (the reading goes on).
pub type Item = Result<AuditSignal, AuditError>;

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// One line of text (bytes that are not UTF-8 are replaced; the
    /// kernel hex-encodes them in values anyway).
    pub fn line(&mut self, raw: &[u8], out: &mut Vec<Item>) {
        self.line += 1;
        let text = String::from_utf8_lossy(raw);
        let rec = match record::parse_line(&text, self.line) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => return out.push(Err(e)),
        };
        let keep = |r: &record::Record| {
            r.kind != Kind::Syscall || signal::call_of(&r.fields, r.interpreted).is_some()
                // An ABI whose numbers are unknown: kept, to be warned
                // about if it named a target.
                || r.fields.get("arch").and_then(syscalls::Arch::from_field).is_none()
        };
        if let Some((stamp, e)) = self.asm.push(rec, keep) {
            emit(stamp, e, out);
        }
    }

    /// The events still open, in time order.
    pub fn finish(self, out: &mut Vec<Item>) {
        for (stamp, e) in self.asm.finish() {
            emit(stamp, e, out);
        }
    }
}

fn emit(stamp: record::Stamp, e: event::Event, out: &mut Vec<Item>) {
    // An unknown ABI's call without targets was not a signal.
    let unknown_quiet = e.targets.is_empty()
        && e.syscall
            .as_ref()
            .is_some_and(|s| signal::call_of(&s.fields, s.interpreted).is_none());
    if unknown_quiet {
        return;
    }
    // A PROCTITLE alone belongs to an event whose SYSCALL was dropped.
    if e.syscall.is_none() && e.targets.is_empty() {
        return;
    }
    match signal::from_event(stamp, e) {
        Ok(v) => out.extend(v.into_iter().map(Ok)),
        Err(err) => out.push(Err(err)),
    }
}

/// All of `text`'s signals and problems, for tests and small inputs.
pub fn parse_all(text: &[u8]) -> Vec<Item> {
    let mut p = Parser::new();
    let mut out = Vec::new();
    for l in text.split(|b| *b == b'\n') {
        p.line(l, &mut out);
    }
    p.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &mut Parser, text: &str) -> Vec<Item> {
        let mut out = Vec::new();
        for l in text.lines() {
            p.line(l.as_bytes(), &mut out);
        }
        out
    }

    #[test]
    fn netlink_text_completes_at_eoe_on_arm_abis() {
        // The kernel's records as the board reader writes them: numeric
        // types, an aarch64 kill (129) then an armv7 compat tgkill (268).
        let mut p = Parser::new();
        let got = lines(
            &mut p,
            "type=1300 msg=audit(100.250:7): arch=c00000b7 syscall=129 success=yes exit=0 a0=2a a1=9 a2=0 a3=0 items=0 ppid=1 pid=40 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=ttyAMA0 ses=4294967295 comm=\"sh\" exe=\"/bin/busybox\" key=(null)\n\
             type=1318 msg=audit(100.250:7): opid=42 oauid=-1 ouid=0 oses=-1 ocomm=\"sleep\"\n",
        );
        assert!(got.is_empty(), "not complete before its EOE");
        let got = lines(&mut p, "type=1320 msg=audit(100.250:7): \n");
        let s = got[0].as_ref().unwrap();
        assert_eq!(
            s.human_line(),
            "SIGKILL: sh(40) -> sleep(42)  code=SI_USER  kill() ok  uid=0 -> uid=0"
        );
        assert_eq!(
            (
                s.audit.arch,
                s.audit.sender.auid,
                s.audit.sender.tty.as_deref()
            ),
            ("aarch64", None, Some("ttyAMA0"))
        );
        let got = lines(
            &mut p,
            "type=1300 msg=audit(100.300:8): arch=40000028 syscall=268 per=800000 success=yes exit=0 a0=2a a1=2b a2=f a3=0 items=0 ppid=1 pid=50 auid=0 uid=1000 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=2 comm=\"t\" exe=\"/t\" key=(null)\n\
             type=1318 msg=audit(100.300:8): opid=42 oauid=-1 ouid=0 oses=-1 ocomm=\"sleep\"\n\
             type=1320 msg=audit(100.300:8): \n",
        );
        let s = got[0].as_ref().unwrap();
        assert_eq!(
            (s.audit.arch, s.audit.syscall.name(), s.event.sig),
            ("arm", "tgkill", 15)
        );
        assert_eq!((s.event.target.pid, s.event.target.tid), (Some(42), 43));
        let mut rest = Vec::new();
        p.finish(&mut rest);
        assert!(rest.is_empty());
    }

    #[test]
    fn other_calls_are_dropped_and_damage_is_a_warning() {
        let got = parse_all(
            b"type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=101 success=yes exit=0 a0=10 a1=2a pid=5 comm=\"strace\"\n\
              type=OBJ_PID msg=audit(1.0:1): opid=42 ocomm=\"traced\"\n\
              type=OBJ_PID msg=audit(1.0:2): opid=42 ocomm=\"x\"\n\
              type=SYSCALL msg=audit(1.0:3): arch=c0000099 syscall=37 success=yes exit=0 a0=2a a1=9 pid=5 comm=\"k\"\n\
              type=OBJ_PID msg=audit(1.0:3): opid=42 ocomm=\"x\"\n\
              type=SYSCALL msg=audit(1.0:4): arch=c000003e syscall=62 success=yes exit=0 pid=5 comm=\"k\"\n\
              type=SYSCALL msg=audit(1.0\n",
        );
        // ptrace (101) has an OBJ_PID too: not a signal.
        let msgs: Vec<String> = got
            .iter()
            .map(|i| i.as_ref().unwrap_err().to_string())
            .collect();
        assert_eq!(
            msgs,
            [
                "line 7: not an audit record: msg=audit( is not closed",
                "audit event 2: 1 OBJ_PID record(s) but no SYSCALL record",
                "audit event 3: arch c0000099 is not one whosent knows, so its syscall 37 is not decoded",
                "audit event 4: the kill SYSCALL record has no a0",
            ]
        );
    }

    #[test]
    fn audit_text_is_told_by_its_first_bytes() {
        assert!(is_audit(b"type=DAEMO"));
        assert!(is_audit(b"node=host "));
        assert!(is_audit(b"----\ntime-"));
        assert!(!is_audit(b"# tracer: "));
        assert!(!is_audit(b"  <...>-12"));
        assert!(!is_audit(b"\x17\x08\x44tracing"));
    }
}
