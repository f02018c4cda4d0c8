//! The offsets the BPF program reads at, from the events' `format`
//! files: the program is built once and assumes no kernel's layout.
//! I/O-free; [`crate::load`] reads the files.

use whosent_ftrace::format::{EventFormat, FormatError};

/// signal:signal_generate's fields, as the program's `*_OFF` globals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalOffsets {
    pub sig: u32,
    pub errno: u32,
    pub code: u32,
    pub comm: u32,
    pub pid: u32,
    /// 0 where the kernel has no such field (before 3.4).
    pub group: u32,
    pub result: u32,
}

/// task:task_newtask, sched:sched_process_exit and signal:signal_deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskOffsets {
    pub newtask_pid: u32,
    pub newtask_flags: u32,
    pub exit_pid: u32,
    /// 0 where the kernel has no signal_deliver (then it is not attached).
    pub deliver_sig: u32,
    pub deliver_handler: u32,
}

/// Whether the program's copy of `capacity` bytes holds every fixed
/// field of `f` (a `__data_loc` string after them may be cut).
pub fn fits(f: &EventFormat, capacity: usize) -> Result<(), FormatError> {
    match f.fields.iter().find(|x| x.offset + x.size > capacity) {
        Some(x) => Err(FormatError(format!(
            "{}: field '{}' ends at byte {}, past the {capacity} the eBPF program copies",
            f.name,
            x.name,
            x.offset + x.size
        ))),
        None => Ok(()),
    }
}

/// A field the program reads as `size` bytes at its offset.
fn at(f: &EventFormat, name: &str, size: usize) -> Result<u32, FormatError> {
    let field = f.require(name)?;
    if field.size != size || field.data_loc {
        return Err(FormatError(format!(
            "{}: field '{name}' is {} bytes{}, the eBPF program reads {size}",
            f.name,
            field.size,
            if field.data_loc { " (__data_loc)" } else { "" }
        )));
    }
    // The first 8 bytes hold a pt_regs pointer for BPF, not the common
    // fields (include/trace/perf.h): no event field can be there.
    if field.offset < 8 {
        return Err(FormatError(format!(
            "{}: field '{name}' at offset {}, inside the common header",
            f.name, field.offset
        )));
    }
    Ok(field.offset as u32)
}

fn optional(f: &EventFormat, name: &str) -> Result<u32, FormatError> {
    match f.field(name) {
        Some(_) => at(f, name, 4),
        None => Ok(0),
    }
}

impl SignalOffsets {
    pub fn new(f: &EventFormat) -> Result<Self, FormatError> {
        Ok(SignalOffsets {
            sig: at(f, "sig", 4)?,
            errno: at(f, "errno", 4)?,
            code: at(f, "code", 4)?,
            comm: at(f, "comm", 16)?,
            pid: at(f, "pid", 4)?,
            group: optional(f, "group")?,
            result: optional(f, "result")?,
        })
    }
}

impl TaskOffsets {
    pub fn new(newtask: &EventFormat, exit: &EventFormat) -> Result<Self, FormatError> {
        Ok(TaskOffsets {
            newtask_pid: at(newtask, "pid", 4)?,
            // unsigned long before 6.x on 32-bit (4 bytes), u64 after;
            // the program reads the low 4 bytes (little-endian), where
            // CLONE_THREAD is.
            newtask_flags: at(newtask, "clone_flags", 8)
                .or_else(|_| at(newtask, "clone_flags", 4))?,
            exit_pid: at(exit, "pid", 4)?,
            deliver_sig: 0,
            deliver_handler: 0,
        })
    }

    /// signal_deliver's `sig`, and `sa_handler`, whose low 4 bytes the
    /// program reads (unsigned long: 8 bytes or 4, little-endian).
    pub fn with_deliver(mut self, deliver: &EventFormat) -> Result<Self, FormatError> {
        self.deliver_sig = at(deliver, "sig", 4)?;
        self.deliver_handler =
            at(deliver, "sa_handler", 8).or_else(|_| at(deliver, "sa_handler", 4))?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(path: &str) -> EventFormat {
        let p = format!("{}/../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        EventFormat::parse(std::fs::read(&p).unwrap().as_slice()).unwrap()
    }

    #[test]
    fn offsets_come_from_the_recorded_formats() {
        for board in ["arm64-6.1", "armhf-6.1"] {
            let s = SignalOffsets::new(&fmt(&format!(
                "{board}/events/signal/signal_generate/format"
            )))
            .unwrap();
            assert_eq!(
                (s.sig, s.errno, s.code, s.comm, s.pid, s.group, s.result),
                (8, 12, 16, 20, 36, 40, 44),
                "{board}"
            );
            let t = TaskOffsets::new(
                &fmt(&format!("{board}/events/task/task_newtask/format")),
                &fmt(&format!("{board}/events/sched/sched_process_exit/format")),
            )
            .unwrap();
            let flags = if board == "armhf-6.1" { 28 } else { 32 };
            assert_eq!(
                (t.newtask_pid, t.newtask_flags, t.exit_pid),
                (8, flags, 24),
                "{board}"
            );
            let t = t
                .with_deliver(&fmt(&format!(
                    "{board}/events/signal/signal_deliver/format"
                )))
                .unwrap();
            let handler = if board == "armhf-6.1" { 20 } else { 24 };
            assert_eq!((t.deliver_sig, t.deliver_handler), (8, handler), "{board}");
        }
    }

    #[test]
    fn a_kernel_before_3_4_has_no_group_or_result() {
        let text = "name: signal_generate\nID: 5\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
            \tfield:int sig;\toffset:8;\tsize:4;\tsigned:1;\n\
            \tfield:int errno;\toffset:12;\tsize:4;\tsigned:1;\n\
            \tfield:int code;\toffset:16;\tsize:4;\tsigned:1;\n\
            \tfield:char comm[16];\toffset:20;\tsize:16;\tsigned:1;\n\
            \tfield:pid_t pid;\toffset:36;\tsize:4;\tsigned:1;\n";
        let f = EventFormat::parse(text.as_bytes()).unwrap();
        let s = SignalOffsets::new(&f).unwrap();
        assert_eq!((s.pid, s.group, s.result), (36, 0, 0));
        let short = text.replace("size:16", "size:8");
        let e = SignalOffsets::new(&EventFormat::parse(short.as_bytes()).unwrap()).unwrap_err();
        assert!(e.0.contains("'comm' is 8 bytes"), "{e}");
    }

    #[test]
    fn every_recorded_event_fits_the_programs_copy() {
        use crate::event::{REC_EXEC, REC_SIGNAL, REC_TASK};
        for board in ["arm64-6.1", "armhf-6.1"] {
            for (ev, cap) in [
                ("signal/signal_generate", REC_SIGNAL),
                ("signal/signal_deliver", REC_TASK),
                ("task/task_newtask", REC_TASK),
                ("task/task_rename", REC_TASK),
                ("sched/sched_process_exit", REC_TASK),
                ("sched/sched_process_exec", REC_EXEC),
            ] {
                fits(&fmt(&format!("{board}/events/{ev}/format")), cap)
                    .unwrap_or_else(|e| panic!("{board}: {e}"));
            }
        }
        let f = fmt("arm64-6.1/events/task/task_rename/format");
        assert!(fits(&f, 40).unwrap_err().0.contains("past the 40"));
    }
}
