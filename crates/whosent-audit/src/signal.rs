//! One audit event of a signal call into whosent signal records: one
//! per target the kernel named (OBJ_PID), or one naming the call's own
//! argument when it failed before finding a target.
//!
//! What audit records and what it does not: the SYSCALL record is the
//! caller (`audit_log_task_info`: ppid, pid, the ids, tty, ses, comm,
//! exe, subj) and the call's arguments and result; each OBJ_PID is a
//! task `audit_signal_info_syscall` saw the signal checked against
//! (opid, oauid, ouid, oses, obj, ocomm), *before* the permission
//! check, so a refused kill still names its target. audit writes
//! process ids (tgids) only, no thread ids, no si_code and no CPU.

use crate::errno;
use crate::event::Event;
use crate::fields::Fields;
use crate::record::Stamp;
use crate::syscalls::{Arch, Call};
use crate::AuditError;
use whosent_proto::cause::Cause;
use whosent_proto::json::Obj;
use whosent_proto::record::{Context, SignalEvent, Task};

/// A signal record from audit: the event, and what only audit knows.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSignal {
    pub event: SignalEvent,
    pub audit: Facts,
}

/// The `audit` object of a signal record (docs/json-schema.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub serial: u64,
    /// `x86_64`, `i386`, `aarch64`, `arm`, `riscv64`.
    pub arch: &'static str,
    pub syscall: Call,
    pub syscall_nr: u32,
    /// a0..a3 as the kernel wrote them (hex), the call's registers.
    pub args: [u64; 4],
    /// `None` when the record did not say.
    pub success: Option<bool>,
    /// The call's return value: 0, or minus an errno.
    pub exit: Option<i64>,
    pub sender: Sender,
    pub target: Target,
    /// The rule's key (`-k`).
    pub key: Option<String>,
}

/// The caller, beyond the task fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sender {
    pub ppid: Option<i32>,
    /// The login uid (`auid`): who logged in, whatever uid they became.
    pub auid: Option<u32>,
    pub euid: Option<u32>,
    pub gid: Option<u32>,
    pub ses: Option<u32>,
    pub tty: Option<String>,
    pub exe: Option<String>,
    /// The LSM (SELinux, AppArmor) context.
    pub subj: Option<String>,
    /// The names of uid and auid, where the log gives them (ENRICHED,
    /// ausearch -i): the recording machine's names.
    pub user: Option<String>,
    pub login_user: Option<String>,
}

/// The target, beyond the task fields (from its OBJ_PID record).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target {
    pub uid: Option<u32>,
    pub auid: Option<u32>,
    pub ses: Option<u32>,
    /// The LSM context (`obj`).
    pub obj: Option<String>,
    pub user: Option<String>,
}

/// Whether a SYSCALL record is of a signal call.
pub fn call_of(f: &Fields, interpreted: bool) -> Option<(&'static Arch, Call, u32)> {
    let arch = Arch::from_field(f.get("arch")?)?;
    let sc = f.get("syscall")?;
    let (call, nr) = match sc.parse::<u32>() {
        Ok(nr) => (arch.call(nr)?, nr),
        Err(_) if interpreted => {
            let c = Call::from_name(sc)?;
            (c, arch.nr(c))
        }
        Err(_) => return None,
    };
    Some((arch, call, nr))
}

/// The records of one event; `Err` for a damaged one.
pub fn from_event(stamp: Stamp, e: Event) -> Result<Vec<AuditSignal>, AuditError> {
    let Some(sc) = e.syscall else {
        return Err(AuditError::Orphan {
            serial: stamp.serial,
            n: e.targets.len(),
        });
    };
    let f = &sc.fields;
    let Some((arch, call, nr)) = call_of(f, sc.interpreted) else {
        return Err(AuditError::UnknownArch {
            serial: stamp.serial,
            arch: f.get("arch").unwrap_or("?").into(),
            nr: f.get("syscall").unwrap_or("?").into(),
        });
    };
    let missing = |field| AuditError::MissingField {
        serial: stamp.serial,
        call: call.name(),
        field,
    };
    let mut args = [0u64; 4];
    for (i, a) in args.iter_mut().enumerate() {
        let k = ["a0", "a1", "a2", "a3"][i];
        *a = match f.get(k) {
            Some(v) => {
                arg(v, sc.interpreted).ok_or_else(|| missing(["a0", "a1", "a2", "a3"][i]))?
            }
            None if i <= call.sig_arg() => return Err(missing(["a0", "a1", "a2", "a3"][i])),
            None => 0,
        };
    }
    let pid = f.num("pid").ok_or_else(|| missing("pid"))? as i32;
    // pid_t and int arguments: the low 32 bits, whatever the ABI
    // (a 64-bit task passing -6223 may show ffffe7b1 or ffffffffffffe7b1).
    let int = |i: usize| args[i] as u32 as i32;
    let sig = int(call.sig_arg());
    let sender_task = Task {
        pid: Some(pid),
        // audit writes the caller's tgid only.
        tid: pid,
        comm: f.text("comm").unwrap_or_else(|| "<...>".into()),
        uid: f.id("uid"),
        cmdline: e
            .proctitle
            .as_ref()
            .and_then(|p| p.fields.text("proctitle")),
        nspid: None,
        lineage: None,
        cgroup_id: None,
    };
    let names = &sc.names;
    let name = |k: &str| names.text(k).filter(|n| n.parse::<u64>().is_err());
    let facts = Facts {
        serial: stamp.serial,
        arch: arch.name,
        syscall: call,
        syscall_nr: nr,
        args,
        success: f.get("success").map(|s| s == "yes"),
        exit: f.get("exit").and_then(errno::parse_exit),
        sender: Sender {
            ppid: f.num("ppid").map(|p| p as i32),
            auid: f.id("auid"),
            euid: f.id("euid"),
            gid: f.id("gid"),
            ses: f.id("ses"),
            tty: f.text("tty").filter(|t| t != "(none)"),
            exe: f.text("exe"),
            subj: f.text("subj"),
            user: name(if sc.interpreted { "uid" } else { "UID" }),
            login_user: name(if sc.interpreted { "auid" } else { "AUID" }).filter(|n| n != "unset"),
        },
        target: Target::default(),
        key: f.text("key"),
    };
    let base = SignalEvent {
        ts_ns: stamp.ms.saturating_mul(1_000_000),
        cpu: 0,
        sig,
        code: call.code(args[2]),
        errno: 0,
        group: Some(call.group()),
        result: None,
        context: Context::Task,
        running: sender_task,
        target: Task::default(),
        cause: Some(Cause::Kill),
        oom: None,
    };
    let tid_arg = call.tid_arg().map(int);
    let mut out = Vec::new();
    for t in &e.targets {
        let tf = &t.fields;
        let opid = tf.num("opid").map(|p| p as i32);
        let tn = if t.interpreted { &t.fields } else { &t.names };
        let target = Task {
            pid: opid,
            // A thread-directed call names its thread; audit, the process.
            tid: tid_arg.or(opid).unwrap_or(0),
            comm: tf.text("ocomm").unwrap_or_else(|| "<...>".into()),
            ..Task::default()
        };
        let mut a = facts.clone();
        a.target = Target {
            uid: tf.id("ouid"),
            auid: tf.id("oauid"),
            ses: tf.id("oses"),
            obj: tf.text("obj"),
            user: tn
                .text(if t.interpreted { "ouid" } else { "OUID" })
                .filter(|n| n.parse::<u64>().is_err()),
        };
        out.push(AuditSignal {
            event: SignalEvent {
                target,
                ..base.clone()
            },
            audit: a,
        });
    }
    if out.is_empty() {
        // Failed before any target was found (ESRCH, EINVAL, EBADF): the
        // target is what the call was given.
        let target = match call {
            Call::PidfdSendSignal => Task {
                pid: None,
                tid: 0,
                ..Task::default()
            },
            Call::Tkill => Task {
                pid: None,
                tid: int(0),
                ..Task::default()
            },
            _ => Task {
                pid: Some(int(0)),
                tid: tid_arg.unwrap_or(int(0)),
                ..Task::default()
            },
        };
        out.push(AuditSignal {
            event: SignalEvent {
                target: Task {
                    comm: "<...>".into(),
                    ..target
                },
                ..base
            },
            audit: facts,
        });
    }
    Ok(out)
}

/// An argument: hex as the kernel writes it, `0x`-hex from ausearch -i,
/// or a name it interpreted (the signal: `SIGTERM`).
fn arg(v: &str, interpreted: bool) -> Option<u64> {
    if interpreted {
        if let Some(h) = v.strip_prefix("0x") {
            return u64::from_str_radix(h, 16).ok();
        }
        if let Ok(s) = whosent_proto::signal::parse(v) {
            return Some(s as u64);
        }
    }
    u64::from_str_radix(v, 16).ok()
}

fn id(v: Option<u32>) -> Option<i64> {
    v.map(i64::from)
}

impl AuditSignal {
    /// The JSON record: the signal record every backend writes, with
    /// the `audit` object added.
    pub fn encode(&self, out: &mut String) {
        let start = out.len();
        self.event.encode(out);
        // `encode` ends the object with "}\n".
        out.truncate(out.trim_end().len() - 1);
        debug_assert!(out.len() > start);
        out.push(',');
        out.push_str("\"audit\":");
        self.audit.encode(out);
        out.push_str("}\n");
    }

    /// The human line: the usual one, then what the call did and the
    /// ids audit adds.
    pub fn human_line(&self) -> String {
        let a = &self.audit;
        let mut s = whosent_proto::render::signal_line(&self.event);
        s.push_str("  ");
        s.push_str(a.syscall.name());
        match (a.success, a.exit) {
            (Some(false), Some(e)) if e < 0 => match e.checked_neg().and_then(errno::name) {
                Some(n) => s.push_str(&format!("() failed: {n}")),
                None => s.push_str(&format!("() failed: {e}")),
            },
            (Some(false), _) => s.push_str("() failed"),
            _ => s.push_str("() ok"),
        }
        // Numbers where the log has them; ausearch -i gives names only.
        let who = |uid: Option<u32>, name: Option<&str>| match (uid, name) {
            (Some(u), _) => Some(u.to_string()),
            (None, Some(n)) => Some(n.to_string()),
            (None, None) => None,
        };
        let uid = who(self.event.running.uid, a.sender.user.as_deref());
        s.push_str(&format!("  uid={}", uid.as_deref().unwrap_or("?")));
        if let Some(auid) = who(a.sender.auid, a.sender.login_user.as_deref()) {
            s.push_str(&format!(" auid={auid}"));
        }
        if let Some(t) = who(a.target.uid, a.target.user.as_deref()) {
            s.push_str(&format!(" -> uid={t}"));
        }
        s
    }
}

impl Facts {
    fn encode(&self, out: &mut String) {
        let mut o = Obj::new(out);
        o.int("serial", self.serial as i64)
            .str("arch", self.arch)
            .str("syscall", self.syscall.name())
            .int("syscall_nr", i64::from(self.syscall_nr));
        o.raw("args", &{
            let hex: Vec<String> = self.args.iter().map(|a| format!("\"0x{a:x}\"")).collect();
            format!("[{}]", hex.join(","))
        });
        match self.success {
            Some(b) => o.bool("success", b),
            None => o.null("success"),
        };
        o.opt_int("exit", self.exit)
            .opt_str(
                "error",
                self.exit
                    .filter(|e| *e < 0)
                    .and_then(|e| e.checked_neg())
                    .and_then(errno::name),
            )
            .opt_str("key", self.key.as_deref());
        let s = &self.sender;
        o.obj("sender", |o| {
            o.opt_int("ppid", s.ppid.map(i64::from))
                .opt_int("auid", id(s.auid))
                .opt_int("euid", id(s.euid))
                .opt_int("gid", id(s.gid))
                .opt_int("ses", id(s.ses))
                .opt_str("tty", s.tty.as_deref())
                .opt_str("exe", s.exe.as_deref())
                .opt_str("subj", s.subj.as_deref())
                .opt_str("user", s.user.as_deref())
                .opt_str("login_user", s.login_user.as_deref());
        });
        let t = &self.target;
        o.obj("target", |o| {
            o.opt_int("uid", id(t.uid))
                .opt_int("auid", id(t.auid))
                .opt_int("ses", id(t.ses))
                .opt_str("obj", t.obj.as_deref())
                .opt_str("user", t.user.as_deref());
        });
        o.close();
    }
}
