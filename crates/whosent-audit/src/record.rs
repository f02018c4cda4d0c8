//! One line of audit text into one record: its type, its event's time
//! stamp and serial, and its fields.
//!
//! The forms read (all end up the same):
//! - auditd's log, RAW: `type=SYSCALL msg=audit(1796124501.248:6): arch=c000003e ...`,
//!   with `node=NAME ` first when auditd's name_format adds it, and
//!   `type=UNKNOWN[1334]` for types auditd has no name for;
//! - ENRICHED: the same, then `\x1d` and the interpreted fields
//!   (`ARCH=x86_64 SYSCALL=kill AUID="user" UID="root"`);
//! - ausearch: the raw lines between `----` and `time->...` lines;
//!   with `-i`, interpreted: `msg=audit(12/01/26 11:28:21.248:6) : arch=x86_64 ...`;
//! - the kernel's netlink text as `whosent-audit-reader` writes it:
//!   `type=1300 msg=audit(...): ...` (the type as a number).

use crate::error::AuditError;
use crate::fields::Fields;

/// The record types whosent reads (include/uapi/linux/audit.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// AUDIT_SYSCALL (1300): the system call and its caller.
    Syscall,
    /// AUDIT_OBJ_PID (1318): one target of a signal (or of ptrace).
    ObjPid,
    /// AUDIT_PROCTITLE (1327): the caller's command line.
    Proctitle,
    /// AUDIT_EOE (1320): the end of a multi-record event (netlink only:
    /// auditd does not log it).
    Eoe,
    Other,
}

impl Kind {
    fn from_type(t: &str) -> Kind {
        let num = t
            .strip_prefix("UNKNOWN[")
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(t);
        match (t, num.parse::<u32>().ok()) {
            ("SYSCALL", _) | (_, Some(1300)) => Kind::Syscall,
            ("OBJ_PID", _) | (_, Some(1318)) => Kind::ObjPid,
            ("PROCTITLE", _) | (_, Some(1327)) => Kind::Proctitle,
            ("EOE", _) | (_, Some(1320)) => Kind::Eoe,
            _ => Kind::Other,
        }
    }
}

/// Which event a record belongs to: the kernel's `audit(SECS.MS:SERIAL)`
/// (`audit_log_start` in kernel/audit.c). Serials restart at boot, so
/// the time is part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Milliseconds since the epoch (UTC). ausearch `-i` prints local
    /// time without a zone; it is read as UTC.
    pub ms: u64,
    pub serial: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: Kind,
    pub stamp: Stamp,
    pub fields: Fields,
    /// The ENRICHED part (upper-case keys), or the fields themselves for
    /// ausearch `-i` output, where every value is interpreted.
    pub names: Fields,
    /// ausearch `-i`: values are names, not numbers.
    pub interpreted: bool,
}

/// Reads one line. `Ok(None)` for what is not a record: blank lines,
/// ausearch's `----` and `time->` lines, other text.
pub fn parse_line(line: &str, line_no: usize) -> Result<Option<Record>, AuditError> {
    let line = line.trim_end_matches(['\n', '\r']);
    let mut rest = line;
    if let Some(r) = rest.strip_prefix("node=") {
        rest = r.split_once(' ').map_or("", |(_, r)| r);
    }
    let Some(r) = rest.strip_prefix("type=") else {
        return Ok(None);
    };
    let bad = |why: &str| AuditError::BadRecord {
        line: line_no,
        why: why.into(),
    };
    let (ty, r) = r
        .split_once(' ')
        .ok_or_else(|| bad("no msg=audit(...) after the type"))?;
    let r = r
        .strip_prefix("msg=audit(")
        .ok_or_else(|| bad("no msg=audit(...) after the type"))?;
    let (stamp, body) = r
        .split_once(')')
        .ok_or_else(|| bad("msg=audit( is not closed"))?;
    let (body, interpreted) = match body.strip_prefix(" : ") {
        Some(b) => (b, true),
        None => (body.strip_prefix(':').unwrap_or(body).trim_start(), false),
    };
    let stamp = parse_stamp(stamp).ok_or_else(|| bad(&format!("bad time stamp {stamp:?}")))?;
    let kind = Kind::from_type(ty);
    let (raw, enriched) = body.split_once('\x1d').unwrap_or((body, ""));
    let mut fields = Fields::parse(raw, interpreted);
    if kind == Kind::Proctitle && interpreted {
        // The command line is the whole rest, `=` signs and all.
        if let Some(i) = raw.find("proctitle=") {
            let v = raw[i + "proctitle=".len()..].trim_end();
            fields = Fields(vec![("proctitle".into(), v.into())]);
        }
    }
    let names = if interpreted {
        fields.clone()
    } else {
        Fields::parse(enriched, true)
    };
    Ok(Some(Record {
        kind,
        stamp,
        fields,
        names,
        interpreted,
    }))
}

/// `1796124501.248:6`, or ausearch -i's `12/01/26 11:28:21.248:6`.
fn parse_stamp(s: &str) -> Option<Stamp> {
    let (time, serial) = s.rsplit_once(':')?;
    let serial = serial.parse().ok()?;
    let ms = match time.split_once(' ') {
        None => {
            let (secs, frac) = time.split_once('.')?;
            secs.parse::<u64>()
                .ok()?
                .checked_mul(1000)?
                .checked_add(millis(frac)?)?
        }
        Some((date, clock)) => local_date(date, clock)?,
    };
    Some(Stamp { ms, serial })
}

fn millis(frac: &str) -> Option<u64> {
    let f: u64 = frac.parse().ok()?;
    Some(match frac.len() {
        1 => f * 100,
        2 => f * 10,
        3 => f,
        _ => return None,
    })
}

/// `MM/DD/YY` and `HH:MM:SS.mmm` (ausearch's `%x %T` in the C locale).
fn local_date(date: &str, clock: &str) -> Option<u64> {
    let mut d = date.split('/').map(|p| p.parse::<i64>().ok());
    let (m, day, y) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = clock.split_once('.')?;
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    let y = if y < 100 { 2000 + y } else { y };
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&min)
        || !(0..=60).contains(&sec)
    {
        return None;
    }
    let days = days_from_civil(y, m, day);
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    Some(u64::try_from(secs).ok()? * 1000 + millis(frac)?)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the well-known
/// era algorithm: 400-year eras of 146,097 days, March-based years).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_enriched_interpreted_and_netlink_forms() {
        let raw = parse_line(r#"type=OBJ_PID msg=audit(1796124501.248:6): opid=6220 oauid=1000 ouid=0 oses=1 ocomm="victim""#, 1).unwrap().unwrap();
        assert_eq!(raw.kind, Kind::ObjPid);
        assert_eq!(
            raw.stamp,
            Stamp {
                ms: 1_796_124_501_248,
                serial: 6
            }
        );
        assert_eq!(raw.fields.num("opid"), Some(6220));

        let en = parse_line("type=OBJ_PID msg=audit(1796124522.344:72): opid=8735 ouid=65534 ocomm=\"nobody-victim\"\x1dOAUID=\"cloudsdk\" OUID=\"nobody\"", 1).unwrap().unwrap();
        assert_eq!(en.fields.get("ocomm"), Some("\"nobody-victim\""));
        assert_eq!(en.names.text("OUID").as_deref(), Some("nobody"));

        let i = parse_line("type=OBJ_PID msg=audit(12/01/26 11:28:21.248:6) : opid=6220 oauid=cloudsdk ouid=root oses=1 ocomm=victim ", 1).unwrap().unwrap();
        assert!(i.interpreted);
        assert_eq!(
            i.stamp,
            Stamp {
                ms: 1_796_124_501_248,
                serial: 6
            }
        );
        assert_eq!(i.fields.id("ouid"), None);

        let nl = parse_line("node=board type=1318 msg=audit(1.5:9): opid=3", 1)
            .unwrap()
            .unwrap();
        assert_eq!(
            (nl.kind, nl.stamp.ms, nl.stamp.serial),
            (Kind::ObjPid, 1500, 9)
        );
        let unk = parse_line("type=UNKNOWN[1327] msg=audit(1.000:9): proctitle=6C73", 1)
            .unwrap()
            .unwrap();
        assert_eq!(unk.kind, Kind::Proctitle);
    }

    #[test]
    fn separators_are_not_records_and_damage_is_an_error() {
        for l in ["----", "time->Tue Dec  1 11:28:21 2026", "", "<no matches>"] {
            assert_eq!(parse_line(l, 1).unwrap(), None, "{l}");
        }
        let e = parse_line("type=SYSCALL msg=audit(17961245", 7).unwrap_err();
        assert!(e.to_string().starts_with("line 7: "), "{e}");
        assert!(parse_line("type=SYSCALL msg=audit(x.1:2): a", 1).is_err());
        assert!(parse_line("type=SYSCALL", 1).is_err());
    }

    #[test]
    fn fuzz_a_time_stamp_past_u64_ms_is_an_error_not_an_overflow() {
        // Found by the fuzzer: seconds * 1000 overflowed.
        assert!(parse_line(
            "type=OBJ_PID msg=audit(99999999999999999999.1:1): opid=1",
            1
        )
        .is_err());
        assert!(parse_line("type=OBJ_PID msg=audit(18446744073709551.999:1): opid=1", 1).is_err());
        assert!(parse_line(
            "type=OBJ_PID msg=audit(12/01/99999999999999 11:28:21.248:6) : opid=1",
            1
        )
        .is_err());
        assert!(parse_line(
            "type=OBJ_PID msg=audit(12/01/26 -1:28:21.248:6) : opid=1",
            1
        )
        .is_err());
    }
}
