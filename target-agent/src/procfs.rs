//! The few /proc facts the agent needs about a task. A task that has
//! exited yields `None`: short-lived senders are common, and the caller
//! falls back to what the trace itself recorded.

use std::fs;
use std::path::Path;
use whosent_stream::frame::ProcFacts;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskInfo {
    pub tgid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub comm: String,
    /// The tgid in each pid namespace, ours first (`NStgid:`, 4.1+;
    /// empty before).
    pub nstgid: Vec<i32>,
}

/// `ROOT/PID/FILE`: one function for every such path, since each
/// `format!` is its own code in the agent (docs/agent-size.md).
pub fn path(root: &str, pid: i32, file: &str) -> String {
    format!("{root}/{pid}/{file}")
}

/// A text file, `None` if it cannot be read or is not UTF-8, as
/// `fs::read_to_string(..).ok()` would; through `fs::read`, which the
/// agent has anyway, so that std's `read_to_string` is not linked
/// (docs/agent-size.md).
pub fn read_text(path: &Path) -> Option<String> {
    String::from_utf8(fs::read(path).ok()?).ok()
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

/// The name exactly as the kernel holds it. `/proc/<tid>/comm` is the
/// raw bytes and a newline; status's `Name:` escapes `\n` and `\\`
/// (fs/proc/array.c `proc_task_name`) and, trimmed, loses a leading
/// `\r` or blank, so a hostile name would reach the JSON altered.
fn comm(root: &str, tid: i32) -> Option<String> {
    let raw = fs::read(path(root, tid, "comm")).ok()?;
    let raw = raw.strip_suffix(b"\n").unwrap_or(&raw);
    Some(String::from_utf8_lossy(raw).into_owned())
}

/// `/proc/<tid>/status` works for any thread id, not only group leaders.
pub fn task(root: &str, tid: i32) -> Option<TaskInfo> {
    let status = read_text(Path::new(&path(root, tid, "status")))?;
    // Loops rather than iterator chains in this file: each chain is its
    // own code in the agent (docs/agent-size.md).
    let mut nstgid = Vec::new();
    for n in status_field(&status, "NStgid:")
        .unwrap_or_default()
        .split('\t')
    {
        if let Ok(n) = n.parse() {
            nstgid.push(n);
        }
    }
    Some(TaskInfo {
        tgid: status_field(&status, "Tgid:")?.parse().ok()?,
        ppid: status_field(&status, "PPid:")?.parse().ok()?,
        // "Uid:\treal\teffective\tsaved\tfs": the real uid sent it.
        // The kernel separates values by one tab (fs/proc/array.c); a
        // split on it is smaller in the agent than split_whitespace.
        uid: status_field(&status, "Uid:")?
            .split('\t')
            .next()?
            .parse()
            .ok()?,
        comm: comm(root, tid).or_else(|| Some(status_field(&status, "Name:")?.to_string()))?,
        nstgid,
    })
}

/// Everything the process table takes from /proc about `tid`.
pub fn facts(root: &str, tid: i32) -> Option<ProcFacts> {
    let t = task(root, tid)?;
    Some(ProcFacts {
        tid,
        tgid: t.tgid,
        ppid: t.ppid,
        uid: t.uid,
        exe: exe(root, t.tgid),
        cmdline: cmdline(root, t.tgid),
        comm: t.comm,
        nstgid: t.nstgid,
        ..Default::default()
    })
}

/// /proc as the process table's source of facts, read when it asks.
pub struct Live;

impl whosent_analysis::facts::FactSource for Live {
    fn facts(&mut self, tid: i32, _exec_ts: Option<u64>) -> Option<ProcFacts> {
        facts("/proc", tid)
    }
}

/// The program file (`/proc/<pid>/exe`); `None` for kernel threads and
/// once the process is gone.
pub fn exe(root: &str, pid: i32) -> Option<String> {
    let p = fs::read_link(path(root, pid, "exe")).ok()?;
    Some(p.to_string_lossy().into_owned())
}

/// The process's pid namespace, e.g. `pid:[4026531836]`.
pub fn pid_ns(root: &str, pid: i32) -> Option<std::path::PathBuf> {
    fs::read_link(path(root, pid, "ns/pid")).ok()
}

/// The entries of `dir` named by a number, in its order; `None` if it
/// cannot be read.
fn numbered(dir: &str) -> Option<Vec<i32>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).ok()?.flatten() {
        if let Some(n) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
            v.push(n);
        }
    }
    Some(v)
}

/// Every process id (not thread) in `root`.
pub fn pids(root: &str) -> Vec<i32> {
    numbered(root).unwrap_or_default()
}

/// The facts of every process in /proc: lineage's snapshot.
pub fn snapshot() -> Vec<ProcFacts> {
    let mut v = Vec::new();
    for p in pids("/proc") {
        v.extend(facts("/proc", p));
    }
    v
}

/// The command line with NULs as spaces; `None` once it is gone, and
/// for kernel threads, which have none.
pub fn cmdline(root: &str, pid: i32) -> Option<String> {
    let mut raw = fs::read(path(root, pid, "cmdline")).ok()?;
    if raw.last() == Some(&0) {
        raw.pop();
    }
    if raw.is_empty() {
        return None;
    }
    for b in &mut raw {
        if *b == 0 {
            *b = b' ';
        }
    }
    Some(String::from_utf8_lossy(&raw).into_owned())
}

/// The thread ids of a process, or `None` if it does not exist.
pub fn threads(root: &str, pid: i32) -> Option<Vec<i32>> {
    let mut tids: Vec<i32> = Vec::new();
    for tid in numbered(&path(root, pid, "task"))? {
        // Sorted by inserting in place rather than by a std sort (~2.3 KB
        // of the agent, docs/agent-size.md); /proc lists tids in
        // ascending order, so each insert is at the end.
        let at = tids.partition_point(|&t| t < tid);
        tids.insert(at, tid);
    }
    Some(tids)
}

/// Field 22 of /proc/<pid>/stat (start time in clock ticks): with the
/// pid it names a process uniquely, across pid reuse.
pub fn start_time(root: &str, pid: i32) -> Option<u64> {
    let stat = read_text(Path::new(&path(root, pid, "stat")))?;
    // The comm in parentheses may itself contain spaces and ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // Fields are separated by one space (fs/proc/array.c).
    rest.split(' ').nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        let t = task("/proc", me).unwrap();
        assert_eq!(t.tgid, me);
        assert_eq!(t.uid, unsafe { libc::getuid() });
        assert_eq!(t.nstgid.first(), Some(&me));
        assert!(exe("/proc", me).unwrap().contains("whosent_agent"));
        assert!(pid_ns("/proc", me).is_some());
        assert!(pids("/proc").contains(&me));
        assert!(cmdline("/proc", me).unwrap().contains("whosent_agent"));
        assert!(threads("/proc", me).unwrap().contains(&me));
        assert!(start_time("/proc", me).unwrap() > 0);
        assert!(task("/proc", -5).is_none());
        assert!(threads("/proc", i32::MAX).is_none());
    }

    #[test]
    fn a_name_with_blanks_backslashes_and_newlines_is_read_exactly() {
        std::thread::spawn(|| {
            let name = "\r a\\b\n\x1b ";
            let c = std::ffi::CString::new(name).unwrap();
            // SAFETY: PR_SET_NAME reads the NUL-terminated `c`; gettid
            // has no preconditions.
            let tid = unsafe {
                assert_eq!(libc::prctl(libc::PR_SET_NAME, c.as_ptr()), 0);
                libc::syscall(libc::SYS_gettid) as i32
            };
            assert_eq!(task("/proc", tid).unwrap().comm, name);
        })
        .join()
        .unwrap();
    }
}
