//! Writing the stream: plain appends to a `Vec<u8>`, no formatting
//! machinery, because the agent carries this and has a size budget
//! (docs/agent-size.md).

use crate::frame::{kind, Facts, ProcFacts, Ready, Repeat};
use crate::{FLAG_BIG_ENDIAN, MAGIC, VERSION};

/// The stream header, once at the start.
pub fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    let flags = if cfg!(target_endian = "big") {
        FLAG_BIG_ENDIAN
    } else {
        0
    };
    out.extend_from_slice(&flags.to_le_bytes());
}

/// Starts a frame; returns where its length goes, for [`end`].
pub fn begin(out: &mut Vec<u8>, kind: u8) -> usize {
    out.push(kind);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Ends the frame started at `at` by writing its payload length.
pub fn end(out: &mut [u8], at: usize) {
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

pub fn u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

pub fn opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => bytes(out, s.as_bytes()),
        None => u32(out, u32::MAX),
    }
}

fn ints(out: &mut Vec<u8>, v: &[i32]) {
    u32(out, v.len() as u32);
    for &i in v {
        u32(out, i as u32);
    }
}

pub fn format(out: &mut Vec<u8>, role: u8, text: &[u8]) {
    let at = begin(out, kind::FORMAT);
    out.push(role);
    out.extend_from_slice(text);
    end(out, at);
}

pub fn page(out: &mut Vec<u8>, cpu: u32, data: &[u8]) {
    let at = begin(out, kind::PAGE);
    u32(out, cpu);
    out.extend_from_slice(data);
    end(out, at);
}

/// Ends a drain round; `cut` are the cpus read only up to the round's
/// page limit.
pub fn round(out: &mut Vec<u8>, cut: &[u32]) {
    let at = begin(out, kind::ROUND);
    u32(out, cut.len() as u32);
    for &c in cut {
        u32(out, c);
    }
    end(out, at);
}

pub fn ready(out: &mut Vec<u8>, r: &Ready) {
    let at = begin(out, kind::READY);
    for s in [&r.agent, &r.kernel, &r.arch, &r.instance, &r.filter] {
        bytes(out, s.as_bytes());
    }
    u32(out, r.cpus.len() as u32);
    for &c in &r.cpus {
        u32(out, c);
    }
    ints(out, &r.pids);
    ints(out, &r.sender_pids);
    out.push(r.lineage as u8 | (r.uid_events as u8) << 1 | (r.ebpf as u8) << 2);
    end(out, at);
}

pub fn proc(out: &mut Vec<u8>, p: &ProcFacts) {
    let at = begin(out, kind::PROC);
    out.push(p.why);
    u64(out, p.ts);
    for v in [p.tid, p.tgid, p.ppid] {
        u32(out, v as u32);
    }
    u32(out, p.uid);
    bytes(out, p.comm.as_bytes());
    opt(out, p.exe.as_deref());
    opt(out, p.cmdline.as_deref());
    ints(out, &p.nstgid);
    end(out, at);
}

pub fn stats(out: &mut Vec<u8>, lost: &[(u32, u64)]) {
    let at = begin(out, kind::STATS);
    u32(out, lost.len() as u32);
    for &(cpu, n) in lost {
        u32(out, cpu);
        u64(out, n);
    }
    end(out, at);
}

pub fn end_frame(out: &mut Vec<u8>, reason: u8) {
    let at = begin(out, kind::END);
    out.push(reason);
    end(out, at);
}

pub fn error(out: &mut Vec<u8>, kind_: &str, message: &str, help: &str) {
    let at = begin(out, kind::ERROR);
    for s in [kind_, message, help] {
        bytes(out, s.as_bytes());
    }
    end(out, at);
}

/// One record of the eBPF agent's program (its common fields already
/// written as a page holds them), with the running task's facts at a
/// signal.
pub fn event(out: &mut Vec<u8>, cpu: u32, ts: u64, facts: Option<&Facts>, record: &[u8]) {
    let at = begin(out, kind::EVENT);
    u32(out, cpu);
    u64(out, ts);
    match facts {
        None => out.push(0),
        Some(f) => {
            out.push(1);
            for v in [f.tgid as u32, f.tid as u32, f.uid, f.gid] {
                u32(out, v);
            }
            u64(out, f.cgroup_id);
            u32(out, f.target_tgid as u32);
            out.push(f.exited as u8);
            bytes(out, f.comm.as_bytes());
            ints(out, &f.nspid);
        }
    }
    out.extend_from_slice(record);
    end(out, at);
}

pub fn repeat(out: &mut Vec<u8>, r: &Repeat) {
    let at = begin(out, kind::REPEAT);
    for v in [r.sender, r.target, r.sig, r.code, r.result] {
        u32(out, v as u32);
    }
    for v in [r.count, r.first, r.last] {
        u64(out, v);
    }
    end(out, at);
}
