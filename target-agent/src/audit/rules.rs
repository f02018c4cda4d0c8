//! whosent's own audit rules: one exit rule per ABI on the six
//! signal-sending calls, with a key naming this run, so that exactly
//! these are deleted again (the kernel deletes the rule whose every
//! field, mask and key compare equal: `audit_compare_rule` in
//! kernel/auditfilter.c).

use whosent_audit::syscalls::{Arch, Call, ARCHES};

const AUDIT_FILTER_EXIT: u32 = 0x04;
const AUDIT_ALWAYS: u32 = 2;
const AUDIT_ARCH: u32 = 11;
const AUDIT_FILTERKEY: u32 = 210;
const AUDIT_EQUAL: u32 = 0x4000_0000;
const AUDIT_BITMASK_SIZE: usize = 64;
const AUDIT_MAX_FIELDS: usize = 64;

/// The ABIs a task on this build's architecture can call in: its own,
/// and the 32-bit one where the kernel has compat tasks.
pub fn arches() -> Vec<&'static Arch> {
    let names: &[&str] = if cfg!(target_arch = "x86_64") {
        &["x86_64", "i386"]
    } else if cfg!(target_arch = "aarch64") {
        &["aarch64", "arm"]
    } else if cfg!(target_arch = "arm") {
        &["arm"]
    } else if cfg!(target_arch = "riscv64") {
        &["riscv64"]
    } else {
        &[]
    };
    ARCHES.iter().filter(|a| names.contains(&a.name)).collect()
}

const AUDIT_PID: u32 = 0;
/// AUDIT_ARG0 + n: the system call's argument n.
const AUDIT_ARG0: u32 = 200;

/// What the kernel filters, so that a busy machine's other signals (a
/// storm elsewhere) cost no audit records: every audited call is a
/// record, and a full backlog makes the senders wait
/// (`audit_log_start`, backlog_wait_time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    pub sig: Option<u32>,
    pub sender_pid: Option<u32>,
}

/// The rules for `arch`: one on the six calls, or with a signal filter
/// two, since the signal is argument 1 of kill, tkill, rt_sigqueueinfo
/// and pidfd_send_signal but argument 2 of tgkill and rt_tgsigqueueinfo.
pub fn rules(arch: &Arch, key: &str, f: Filter) -> Vec<Vec<u8>> {
    match f.sig {
        None => vec![rule(arch, key, Call::all(), &sender(f))],
        Some(sig) => [1usize, 2]
            .iter()
            .map(|&pos| {
                let mut fields = sender(f);
                fields.push((AUDIT_ARG0 + pos as u32, sig));
                rule(
                    arch,
                    key,
                    Call::all().filter(|c| c.sig_arg() == pos),
                    &fields,
                )
            })
            .collect(),
    }
}

fn sender(f: Filter) -> Vec<(u32, u32)> {
    f.sender_pid.map(|p| (AUDIT_PID, p)).into_iter().collect()
}

/// `struct audit_rule_data` for `calls` of `arch`, with `key` and the
/// numeric `extra` fields (each compared for equality).
pub fn rule(
    arch: &Arch,
    key: &str,
    calls: impl Iterator<Item = Call>,
    extra: &[(u32, u32)],
) -> Vec<u8> {
    let mut mask = [0u32; AUDIT_BITMASK_SIZE];
    for c in calls {
        let nr = arch.nr(c) as usize;
        mask[nr / 32] |= 1 << (nr % 32);
    }
    let mut fields = [0u32; AUDIT_MAX_FIELDS];
    let mut values = [0u32; AUDIT_MAX_FIELDS];
    let mut flags = [0u32; AUDIT_MAX_FIELDS];
    (fields[0], values[0], flags[0]) = (AUDIT_ARCH, arch.audit, AUDIT_EQUAL);
    for (i, &(f, v)) in extra.iter().enumerate() {
        (fields[1 + i], values[1 + i], flags[1 + i]) = (f, v, AUDIT_EQUAL);
    }
    let k = 1 + extra.len();
    (fields[k], values[k], flags[k]) = (AUDIT_FILTERKEY, key.len() as u32, AUDIT_EQUAL);
    let mut out = Vec::new();
    for w in [AUDIT_FILTER_EXIT, AUDIT_ALWAYS, k as u32 + 1] {
        out.extend_from_slice(&w.to_ne_bytes());
    }
    for a in [&mask[..], &fields[..], &values[..], &flags[..]] {
        for w in a {
            out.extend_from_slice(&w.to_ne_bytes());
        }
    }
    out.extend_from_slice(&(key.len() as u32).to_ne_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

/// The key of a rule as the kernel lists it, if it has one.
pub fn key_of(rule: &[u8]) -> Option<&[u8]> {
    let w = |i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(
            rule.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    let count = w(2)? as usize;
    let fields = 3 + AUDIT_BITMASK_SIZE;
    let values = fields + AUDIT_MAX_FIELDS;
    let buflen_at = 3 + AUDIT_BITMASK_SIZE + 3 * AUDIT_MAX_FIELDS;
    let buf = rule.get((buflen_at + 1) * 4..)?;
    // String fields follow one another in buf, in field order.
    let mut off = 0usize;
    for i in 0..count.min(AUDIT_MAX_FIELDS) {
        let (f, len) = (w(fields + i)?, w(values + i)? as usize);
        // The string fields (include/uapi/linux/audit.h): the LSM
        // subject and object ones, watch, dir, exe, filterkey.
        if matches!(f, 13..=17 | 19..=23 | 105 | 107 | 112 | 210) {
            if f == AUDIT_FILTERKEY {
                return buf.get(off..off + len);
            }
            off += len;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_carries_its_calls_arch_and_key() {
        let a = ARCHES.iter().find(|a| a.name == "aarch64").unwrap();
        let r = rule(a, "whosent-1-2", Call::all(), &[]);
        assert_eq!(r.len(), (3 + 64 + 3 * 64 + 1) * 4 + 11);
        // kill is 129 on aarch64: word 4, bit 1.
        let mask4 = u32::from_ne_bytes(r[(3 + 4) * 4..(3 + 5) * 4].try_into().unwrap());
        assert_eq!((mask4 >> 1) & 0b111, 0b111, "kill, tkill, tgkill (129-131)");
        assert_eq!(key_of(&r), Some(&b"whosent-1-2"[..]));
    }

    #[test]
    fn a_signal_filter_splits_the_calls_by_where_the_signal_is() {
        let a = ARCHES.iter().find(|a| a.name == "x86_64").unwrap();
        let f = Filter {
            sig: Some(41),
            sender_pid: Some(7),
        };
        let rs = rules(a, "k", f);
        assert_eq!(rs.len(), 2);
        let word = |r: &[u8], i: usize| u32::from_ne_bytes(r[i * 4..i * 4 + 4].try_into().unwrap());
        // field_count: arch, pid, argN, key.
        assert_eq!(word(&rs[0], 2), 4);
        // tgkill (234) only in the second rule, with AUDIT_ARG2.
        let bit = |r: &[u8], nr: usize| word(r, 3 + nr / 32) >> (nr % 32) & 1;
        assert_eq!((bit(&rs[0], 62), bit(&rs[0], 234)), (1, 0));
        assert_eq!((bit(&rs[1], 62), bit(&rs[1], 234)), (0, 1));
        assert_eq!(word(&rs[1], 3 + 64 + 2), 202);
        assert_eq!(word(&rs[1], 3 + 64 + 64 + 2), 41);
        for r in &rs {
            assert_eq!(key_of(r), Some(&b"k"[..]));
        }
    }
}
