//! What can be wrong in audit text. None of these ends the reading:
//! each is a warning, and the other events are still read.

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// A line that starts like a record (`type=`) but is not one.
    #[error("line {line}: not an audit record: {why}")]
    BadRecord { line: usize, why: String },
    /// A signal system call's SYSCALL record without a field whosent
    /// needs.
    #[error("audit event {serial}: the {call} SYSCALL record has no {field}")]
    MissingField {
        serial: u64,
        call: &'static str,
        field: &'static str,
    },
    /// A SYSCALL record of an ABI whose numbers whosent does not know;
    /// it had OBJ_PID records, so it may have been a signal.
    #[error("audit event {serial}: arch {arch} is not one whosent knows, so its syscall {nr} is not decoded")]
    UnknownArch {
        serial: u64,
        arch: String,
        nr: String,
    },
    /// OBJ_PID records whose SYSCALL record is not in the input.
    #[error("audit event {serial}: {n} OBJ_PID record(s) but no SYSCALL record")]
    Orphan { serial: u64, n: usize },
}

impl AuditError {
    /// What to do about it.
    pub fn help(&self) -> &'static str {
        match self {
            AuditError::BadRecord { .. } => {
                "the line was cut or edited; the other records are still read"
            }
            AuditError::MissingField { .. } => {
                "give the log as auditd wrote it (or ausearch's output of it)"
            }
            AuditError::UnknownArch { .. } => {
                "whosent knows x86_64, i386, aarch64, arm and riscv64; run `ausearch -i` on \
                 the machine that recorded it to see the call's name"
            }
            AuditError::Orphan { .. } => {
                "the input starts or ends inside this event: give the whole log (ausearch \
                 prints whole events)"
            }
        }
    }
}
