//! `signal:signal_generate` as ftrace prints it in text: the `trace` and
//! `trace_pipe` files, `trace-cmd show` and `trace-cmd report`.
//!
//! A line is `HEADER signal_generate: BODY`. The body is the event's
//! print fmt, `sig=%d errno=%d code=%d comm=%s pid=%d grp=%d res=%d`
//! (no `grp`/`res` before kernel 3.4). The header depends on the tool
//! and its options; all of these were recorded on real machines
//! (`tests/fixtures/host-6.18/README.md`):
//!
//! ```text
//!    my-sender app-1456    [001] d..1.   666.126292: signal_generate: ...  trace, trace_pipe
//!    my-sender app-1516    (   1516) [000] d..1.   667.347096: ...           option record-tgid
//!          crash-1-1485    [001]    666.663175: ...                          option noirq-info
//! my-sende-1456      1dN.2. 662431us : ...                                  option latency-format
//! fixture-text-tc:    my-sender app-8895  [000]   678.292521: signal_generate:      ...  trace-cmd report
//! ```
//!
//! Comms contain spaces, dashes and `: `, so the header is read from the
//! right: timestamp, flags, CPU, TGID, and what is left is `comm-pid`,
//! split at its last `-`.

use std::fmt;
use std::io::BufRead;

use whosent_proto::record::{Context, Outcome, SignalEvent, Task};

const EVENT: &str = "signal_generate:";

/// One signal_generate line as ftrace printed it.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSignal {
    /// `None` when the header shows `<...>`: the kernel's saved_cmdlines
    /// table no longer held the task when the line was printed.
    pub running_comm: Option<String>,
    /// The header's pid: the task that was running (the sender in task
    /// context).
    pub running_tid: i32,
    /// From the TGID column (option `record-tgid`); `None` without the
    /// column or when it shows `(-------)`.
    pub running_tgid: Option<i32>,
    pub cpu: u32,
    /// From the flags column: hardirq `h`/`H`, softirq `s`, NMI `z`/`Z`.
    /// `Task` when `.` or when there is no flags column.
    pub context: Context,
    /// Nanoseconds of the trace clock. Latency-format lines count from
    /// the start of the buffer, in microseconds; counter clocks print
    /// raw counts, which are kept as they are.
    pub ts_ns: u64,
    pub sig: i32,
    pub errno: i32,
    pub code: i32,
    pub target_comm: String,
    pub target_tid: i32,
    /// Absent on kernels before 3.4.
    pub group: Option<i32>,
    /// Absent on kernels before 3.4.
    pub result: Option<i32>,
}

/// What a line of ftrace text gave.
#[derive(Debug, Clone, PartialEq)]
pub enum TextItem {
    Signal(TextSignal),
    /// The kernel's `CPU:3 [LOST 123 EVENTS]` or `CPU:3 [LOST EVENTS]`,
    /// trace-cmd's `CPU:3 [123 EVENTS DROPPED]` or `CPU:3 [EVENTS DROPPED]`.
    Lost {
        cpu: Option<u32>,
        count: Option<u64>,
    },
}

/// A signal_generate line that could not be read, or a read error.
#[derive(Debug, Clone, PartialEq)]
pub struct TextError {
    /// 1-based.
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for TextError {}

/// Iterates over the signals and losses in ftrace text. Comments, blank
/// lines, other events and tool noise are skipped. A parse error does
/// not end the iteration; a read error does.
pub struct Parser<R> {
    reader: R,
    line: usize,
    buf: Vec<u8>,
    failed: bool,
}

pub fn parse<R: BufRead>(r: R) -> Parser<R> {
    Parser {
        reader: r,
        line: 0,
        buf: Vec::new(),
        failed: false,
    }
}

impl<R: BufRead> Iterator for Parser<R> {
    type Item = Result<TextItem, TextError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => self.line += 1,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(TextError {
                        line: self.line + 1,
                        msg: format!("read error: {e}"),
                    }));
                }
            }
            // A comm is any 15 bytes, not necessarily UTF-8.
            let text = String::from_utf8_lossy(&self.buf);
            match parse_line(&text) {
                Ok(Some(item)) => return Some(Ok(item)),
                Ok(None) => {}
                Err(msg) => {
                    return Some(Err(TextError {
                        line: self.line,
                        msg,
                    }))
                }
            }
        }
        None
    }
}

impl TextSignal {
    pub fn into_event(self) -> SignalEvent {
        SignalEvent {
            ts_ns: self.ts_ns,
            cpu: self.cpu,
            sig: self.sig,
            code: self.code,
            errno: self.errno,
            group: self.group.map(|g| g != 0),
            result: self.result.map(Outcome::from_raw),
            context: self.context,
            running: Task {
                pid: self.running_tgid,
                tid: self.running_tid,
                comm: self.running_comm.unwrap_or_else(|| "<...>".into()),
                ..Default::default()
            },
            target: Task {
                pid: None,
                tid: self.target_tid,
                comm: self.target_comm,
                ..Default::default()
            },
            cause: None,
            oom: None,
        }
    }
}

fn parse_line(line: &str) -> Result<Option<TextItem>, String> {
    let line = line.trim_end_matches(['\n', '\r']);
    // Comments start at column 0; a header never does, since "%16s"
    // pads the (at most 15-byte) comm.
    if line.starts_with('#') || line.trim().is_empty() {
        return Ok(None);
    }
    if let Some(lost) = lost(line) {
        return Ok(Some(lost));
    }
    match split_event(line) {
        Some((header, body)) => signal(header, body).map(|s| Some(TextItem::Signal(s))),
        None => Ok(None),
    }
}

/// The loss markers, optionally after trace-cmd's `instance: ` prefix.
/// Kernel: `print_trace_line()` in kernel/trace/trace.c; trace-cmd:
/// `trace_show_data()` in tracecmd/trace-read.c.
fn lost(line: &str) -> Option<TextItem> {
    let t = line.trim();
    let inner = t.strip_suffix(']')?;
    let open = inner.rfind('[')?;
    let words: Vec<&str> = inner[open + 1..].split_whitespace().collect();
    let count = match words[..] {
        ["LOST", "EVENTS"] | ["EVENTS", "DROPPED"] => None,
        ["LOST", n, "EVENTS"] | [n, "EVENTS", "DROPPED"] => Some(n.parse().ok()?),
        _ => return None,
    };
    let before = inner[..open].trim_end();
    if before.is_empty() {
        return Some(TextItem::Lost { cpu: None, count });
    }
    let at = before.rfind("CPU:")?;
    let cpu = before[at + 4..].parse().ok()?;
    let prefix = before[..at].trim_end();
    (prefix.is_empty() || prefix.ends_with(':')).then_some(TextItem::Lost {
        cpu: Some(cpu),
        count,
    })
}

/// Splits a signal_generate line into header and body. The event name
/// counts only where it follows the timestamp, so another event that
/// mentions it (a `trace_marker` write, say) is not taken for one.
fn split_event(line: &str) -> Option<(&str, &str)> {
    line.match_indices(EVENT).find_map(|(i, _)| {
        let header = &line[..i];
        let body = &line[i + EVENT.len()..];
        let bare = header.trim().is_empty();
        let after_ts = header.ends_with(char::is_whitespace) && timestamp(header).is_some();
        (bare || after_ts).then_some((header, body))
    })
}

/// The last whitespace-separated token of `s` and what precedes it.
fn split_last(s: &str) -> (&str, &str) {
    let s = s.trim_end();
    s.rsplit_once(char::is_whitespace).unwrap_or(("", s))
}

/// The header's timestamp token (without `:` and mark) and the rest:
/// `666.126292:` (seconds), `613.778456654:` (trace-cmd -t),
/// `4158362:` (counter clocks), `650085us#:` and `662431us :` (latency
/// format, whose mark is one of `!#$*+@` or a space). trace-cmd
/// `--ts-diff` follows it with `(+1956)`.
fn timestamp(header: &str) -> Option<(&str, &str)> {
    let (mut rest, mut tok) = split_last(header);
    if tok.starts_with("(+") && tok.ends_with(')') {
        (rest, tok) = split_last(rest);
    }
    let ts = if tok == ":" {
        let (r, t) = split_last(rest);
        rest = r;
        t.strip_suffix("us").map(|_| t)?
    } else {
        let t = tok.strip_suffix(':')?;
        match t.strip_suffix(['!', '#', '$', '*', '+', '@']) {
            Some(u) if u.ends_with("us") => u,
            _ => t,
        }
    };
    let digits = ts.strip_suffix("us").unwrap_or(ts);
    let (secs, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (all_digits(secs) && all_digits(frac)).then_some((rest, ts))
}

fn ts_ns(ts: &str) -> Result<u64, String> {
    let bad = || format!("bad timestamp {ts:?}");
    if let Some(us) = ts.strip_suffix("us") {
        let us: u64 = us.parse().map_err(|_| bad())?;
        return us.checked_mul(1000).ok_or_else(bad);
    }
    let Some((secs, frac)) = ts.split_once('.') else {
        return ts.parse().map_err(|_| bad());
    };
    if frac.len() > 9 {
        return Err(bad());
    }
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    let ns = frac.parse::<u64>().map_err(|_| bad())? * 10u64.pow(9 - frac.len() as u32);
    secs.checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(ns))
        .ok_or_else(bad)
}

fn signal(header: &str, body: &str) -> Result<TextSignal, String> {
    let Some((rest, ts)) = timestamp(header) else {
        return Err("no task, CPU and timestamp before signal_generate: \
                    (is the context-info option off?)"
            .into());
    };
    let ts_ns = ts_ns(ts)?;
    let (rest, cpu, flags) = cpu_and_flags(rest)?;
    let (rest, running_tgid) = tgid(rest)?;
    let (running_comm, running_tid) = comm_pid(rest)?;
    let context = match flags {
        Some(f) => context(f)?,
        None => Context::Task,
    };
    let b = Body::parse(body)?;
    Ok(TextSignal {
        running_comm,
        running_tid,
        running_tgid,
        cpu,
        context,
        ts_ns,
        sig: b.sig,
        errno: b.errno,
        code: b.code,
        target_comm: b.comm,
        target_tid: b.pid,
        group: b.group,
        result: b.result,
    })
}

fn bracket_cpu(tok: &str) -> Option<Result<u32, String>> {
    let n = tok.strip_prefix('[')?.strip_suffix(']')?;
    Some(n.parse().map_err(|_| format!("bad CPU {tok:?}")))
}

/// `[001] d..1.` (flags after the CPU), `[001]` (option noirq-info, or
/// kernels before the irq-info option), or the latency format's
/// `  1dN.2.` (CPU and flags run together).
fn cpu_and_flags(s: &str) -> Result<(&str, u32, Option<&str>), String> {
    let (before, tok) = split_last(s);
    if let Some(cpu) = bracket_cpu(tok) {
        return Ok((before, cpu?, None));
    }
    let (before_cpu, cpu_tok) = split_last(before);
    if let Some(cpu) = bracket_cpu(cpu_tok) {
        return Ok((before_cpu, cpu?, Some(tok)));
    }
    let digits = tok.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && digits < tok.len() {
        let cpu = tok[..digits]
            .parse()
            .map_err(|_| format!("bad CPU in {tok:?}"))?;
        return Ok((before, cpu, Some(&tok[digits..])));
    }
    Err(format!("no CPU column in {:?}", s.trim()))
}

/// The record-tgid column: `(   1234)`, or `(-------)` when the kernel
/// had no tgid saved for the task.
fn tgid(s: &str) -> Result<(&str, Option<i32>), String> {
    let t = s.trim_end();
    let Some(inner) = t.strip_suffix(')') else {
        return Ok((s, None));
    };
    let open = inner
        .rfind('(')
        .ok_or_else(|| format!("unbalanced TGID column in {:?}", t.trim()))?;
    let v = inner[open + 1..].trim();
    if !v.is_empty() && v.bytes().all(|b| b == b'-') {
        return Ok((&t[..open], None));
    }
    let tgid = v.parse().map_err(|_| format!("bad TGID {v:?}"))?;
    Ok((&t[..open], Some(tgid)))
}

/// `comm-pid`, split at the last `-`: comms have dashes (`crash-1-1485`).
fn comm_pid(s: &str) -> Result<(Option<String>, i32), String> {
    let s = s.trim_end();
    let dash = s
        .rfind('-')
        .ok_or_else(|| format!("no comm-pid in {:?}", s.trim()))?;
    let pid = &s[dash + 1..];
    let tid = pid.parse().map_err(|_| format!("bad pid {pid:?}"))?;
    let comm = without_instance(&s[..dash]).trim_start();
    Ok(((comm != "<...>").then(|| comm.to_string()), tid))
}

/// trace-cmd report prefixes each line with `"%*s: "`, the instance
/// (`-B`) or file name, when it reads more than one buffer or file
/// (`print_handle_file()` in tracecmd/trace-read.c). The comm field
/// after it is `"%16s"`, or `"%8.8s"` in latency format (`-l`); a
/// comm is at most 15 bytes, so a comm that itself holds `: ` cannot
/// fill either width after it (except a latency-sized tail of exactly
/// 8 bytes, which is accepted as a prefix).
fn without_instance(field: &str) -> &str {
    let t = field.trim_start();
    match t.split_once(": ") {
        Some((name, after))
            if !name.is_empty()
                && !name.contains(char::is_whitespace)
                && (after.len() == 8 || after.len() >= 16) =>
        {
            after
        }
        _ => field,
    }
}

/// The third flags character is hardirq/softirq/NMI in every layout:
/// the kernel's `trace_print_lat_fmt()` (kernel/trace/trace_output.c),
/// 4 characters on older kernels and 5 on newer ones, which add
/// migrate-disable, and
/// libtraceevent's latency format in trace-cmd report -l.
fn context(flags: &str) -> Result<Context, String> {
    match flags.as_bytes().get(2) {
        Some(b'.') => Ok(Context::Task),
        Some(b'h' | b'H') => Ok(Context::Hardirq), // 'H': a hardirq inside a softirq
        Some(b's') => Ok(Context::Softirq),
        Some(b'z' | b'Z') => Ok(Context::Nmi),
        _ => Err(format!("unknown flags {flags:?}")),
    }
}

struct Body {
    sig: i32,
    errno: i32,
    code: i32,
    comm: String,
    pid: i32,
    group: Option<i32>,
    result: Option<i32>,
}

impl Body {
    /// `sig=15 errno=0 code=0 comm=my app pid=1464 grp=1 res=0`; trace-cmd
    /// report -R names the last two `group=` and `result=`, and the
    /// kernel's `fields` option prints each number as `0x5b0 (1456)`.
    /// The target comm runs from `comm=` to the last ` pid=`.
    fn parse(body: &str) -> Result<Body, String> {
        let b = body.trim();
        let at = b
            .find(" comm=")
            .ok_or_else(|| format!("no comm= in {b:?}"))?;
        let after = &b[at + " comm=".len()..];
        let pid_at = after
            .rfind(" pid=")
            .ok_or_else(|| format!("no pid= after comm= in {b:?}"))?;
        let mut nums = pairs(&b[..at])?;
        nums.extend(pairs(&after[pid_at + 1..])?);
        let get = |k: &str| nums.iter().rev().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let need = |k: &str| get(k).ok_or_else(|| format!("no {k}= in {b:?}"));
        Ok(Body {
            sig: need("sig")?,
            errno: need("errno")?,
            code: need("code")?,
            comm: after[..pid_at].to_string(),
            pid: need("pid")?,
            group: get("grp").or_else(|| get("group")),
            result: get("res").or_else(|| get("result")),
        })
    }
}

/// `k=v` tokens, each value optionally followed by `(decimal)`.
fn pairs(s: &str) -> Result<Vec<(&str, i32)>, String> {
    let mut out: Vec<(&str, i32)> = Vec::new();
    for tok in s.split_whitespace() {
        if let Some((k, v)) = tok.split_once('=') {
            out.push((k, number(v)?));
        } else if let (Some(inner), Some(last)) = (
            tok.strip_prefix('(').and_then(|t| t.strip_suffix(')')),
            out.last_mut(),
        ) {
            last.1 = inner.parse().map_err(|_| format!("bad number {tok:?}"))?;
        } else {
            return Err(format!("unexpected {tok:?} in signal_generate fields"));
        }
    }
    Ok(out)
}

fn number(v: &str) -> Result<i32, String> {
    let bad = || format!("bad number {v:?}");
    match v.strip_prefix("0x") {
        // Hex is the raw 32-bit field: 0xfffffffa is -6.
        Some(h) => u32::from_str_radix(h, 16)
            .map(|u| u as i32)
            .map_err(|_| bad()),
        None => v.parse().map_err(|_| bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> TextSignal {
        match parse_line(line) {
            Ok(Some(TextItem::Signal(s))) => s,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn nothing(line: &str) {
        assert_eq!(parse_line(line), Ok(None), "{line:?}");
    }

    #[test]
    fn trace_pipe_line() {
        let s = one("   my-sender app-1456    [001] d..1.   666.126292: signal_generate: sig=15 errno=0 code=0 comm=sleep pid=1459 grp=1 res=0\n");
        assert_eq!(
            s,
            TextSignal {
                running_comm: Some("my-sender app".into()),
                running_tid: 1456,
                running_tgid: None,
                cpu: 1,
                context: Context::Task,
                ts_ns: 666_126_292_000,
                sig: 15,
                errno: 0,
                code: 0,
                target_comm: "sleep".into(),
                target_tid: 1459,
                group: Some(1),
                result: Some(0),
            }
        );
    }

    #[test]
    fn comm_with_dash_and_digits_splits_at_last_dash() {
        let s = one("         crash-1-1485    [001] d..1.   666.662721: signal_generate: sig=11 errno=0 code=1 comm=crash-1 pid=1485 grp=0 res=0");
        assert_eq!(
            (s.running_comm.as_deref(), s.running_tid),
            (Some("crash-1"), 1485)
        );
        assert_eq!((s.target_comm.as_str(), s.target_tid), ("crash-1", 1485));
    }

    #[test]
    fn target_comm_ends_at_the_last_pid() {
        let s = one("  x-1 [000] d..1. 1.000001: signal_generate: sig=1 errno=0 code=0 comm=a pid=3 b pid=12 grp=1 res=0");
        assert_eq!((s.target_comm.as_str(), s.target_tid), ("a pid=3 b", 12));
        let s = one("  x-1 [000] d..1. 1.000001: signal_generate: sig=1 errno=0 code=0 comm= pid=12 grp=1 res=0");
        assert_eq!(s.target_comm, "");
    }

    #[test]
    fn flags_give_the_context() {
        for (flags, ctx) in [
            ("d..1.", Context::Task),
            ("d..1", Context::Task),
            ("d.h1.", Context::Hardirq),
            ("d.H2.", Context::Hardirq),
            ("dNs4.", Context::Softirq),
            ("d.z1.", Context::Nmi),
            ("d.Z1.", Context::Nmi),
        ] {
            let s = one(&format!(
                "  bash-7 [000] {flags} 5.000000: signal_generate: sig=9 errno=0 code=0 comm=x pid=8 grp=1 res=0"
            ));
            assert_eq!(s.context, ctx, "{flags}");
        }
        let e = parse_line("  bash-7 [000] d.?1. 5.000000: signal_generate: sig=9 errno=0 code=0 comm=x pid=8 grp=1 res=0");
        assert!(e.unwrap_err().contains("flags"));
    }

    #[test]
    fn no_flags_column_is_task_context() {
        let s = one("         crash-1-1485    [001]    666.663175: signal_generate: sig=17 errno=0 code=2 comm=my-sender app pid=1456 grp=1 res=1");
        assert_eq!((s.cpu, s.context), (1, Context::Task));
    }

    #[test]
    fn tgid_column() {
        let s = one("       tx thread-1534    (   1516) [000] d..1.   667.638099: signal_generate: sig=10 errno=0 code=0 comm=my app pid=1522 grp=1 res=0");
        assert_eq!(
            (s.running_comm.as_deref(), s.running_tid, s.running_tgid),
            (Some("tx thread"), 1534, Some(1516))
        );
        let s = one("            tail-13897   (-------) [000] dN.2.   455.746290: signal_generate: sig=17 errno=0 code=1 comm=bash pid=13845 grp=1 res=2");
        assert_eq!((s.running_tid, s.running_tgid), (13897, None));
        // A comm in parentheses is not a TGID column.
        let s = one("        (sd-pam)-812     [000] d..1.    12.000000: signal_generate: sig=15 errno=0 code=0 comm=x pid=9 grp=1 res=0");
        assert_eq!(
            (s.running_comm.as_deref(), s.running_tgid),
            (Some("(sd-pam)"), None)
        );
    }

    #[test]
    fn unknown_comm() {
        let s = one("           <...>-1552    [001] d..1.   667.982664: signal_generate: sig=12 errno=0 code=0 comm=early-bird pid=1552 grp=1 res=1");
        assert_eq!((s.running_comm, s.running_tid), (None, 1552));
        let ev = one("           <...>-1552    [001] d..1.   667.982664: signal_generate: sig=12 errno=0 code=0 comm=early-bird pid=1552 grp=1 res=1").into_event();
        assert_eq!(ev.running.comm, "<...>");
    }

    #[test]
    fn latency_format() {
        let s = one("my-sende-1456      1dN.2. 662431us : signal_generate: sig=17 errno=0 code=1 comm=sh pid=1425 grp=1 res=0");
        assert_eq!(
            (s.running_comm.as_deref(), s.running_tid, s.cpu, s.ts_ns),
            (Some("my-sende"), 1456, 1, 662_431_000)
        );
        let s = one(" crash-1-1485      1dN.2. 650085us#: signal_generate: sig=17 errno=0 code=2 comm=my-sender app pid=1456 grp=1 res=1");
        assert_eq!(
            (s.running_comm.as_deref(), s.ts_ns),
            (Some("crash-1"), 650_085_000)
        );
        let s = one("aarch64--13810     1dN.2. 455533429us#: signal_generate: sig=17 errno=0 code=1 comm=sh pid=13809 grp=1 res=0");
        assert_eq!(
            (s.running_comm.as_deref(), s.running_tid),
            (Some("aarch64-"), 13810)
        );
    }

    #[test]
    fn trace_cmd_report_forms() {
        let s = one("fixture-text-tc:    my-sender app-8895  [000]   678.292521: signal_generate:      sig=15 errno=0 code=0 comm=sleep pid=8898 grp=1 res=0");
        assert_eq!(
            (s.running_comm.as_deref(), s.running_tid),
            (Some("my-sender app"), 8895)
        );
        let s = one("fixture-text-tc: my-sende-8895   0d..1.   678.292521: signal_generate:      sig=15 errno=0 code=0 comm=sleep pid=8898 grp=1 res=0");
        assert_eq!((s.running_comm.as_deref(), s.cpu), (Some("my-sende"), 0));
        let s = one("fixture-text-tc:  crash-1-28411   1d..1.   614.376333: signal_generate:      sig=11 errno=0 code=1 comm=crash-1 pid=28411 grp=0 res=0");
        assert_eq!(s.running_comm.as_deref(), Some("crash-1"));
        let s = one("fixture-text-tc:            sleep-28359 [001]   613.778456654: signal_generate:      sig=17 errno=0 code=1 comm=bash pid=25996 group=1 result=0");
        assert_eq!(
            (s.ts_ns, s.group, s.result),
            (613_778_456_654, Some(1), Some(0))
        );
        let s = one("fixture-text-tc:             grep-28366 [001]   613.780413: (+1956)  signal_generate:      sig=17 errno=0 code=1 comm=bash pid=25996 grp=1 res=0");
        assert_eq!(s.running_tid, 28366);
        // Old trace-cmd, no prefix.
        let s = one("     test_sender-6993  [001]  1234.567890: signal_generate:      sig=9 errno=0 code=0 comm=test_receiver pid=6985 grp=1 res=0");
        assert_eq!(
            (s.running_comm.as_deref(), s.ts_ns),
            (Some("test_sender"), 1_234_567_890_000)
        );
    }

    #[test]
    fn a_comm_holding_colon_space_is_not_an_instance() {
        let s = one("        ab: c-77     [000] d..1.     1.000000: signal_generate: sig=1 errno=0 code=0 comm=x pid=2 grp=1 res=0");
        assert_eq!(s.running_comm.as_deref(), Some("ab: c"));
    }

    #[test]
    fn fields_option() {
        let s = one("   my-sender app-1456    [000] d..1.   666.161359: signal_generate: sig=0xa (10) errno=0x0 (0) code=0xfffffffa (-6) comm=rx worker pid=0x5b9 (1465) group=0x0 (0) result=0x0 (0)");
        assert_eq!(
            (
                s.sig,
                s.code,
                s.target_comm.as_str(),
                s.target_tid,
                s.group,
                s.result
            ),
            (10, -6, "rx worker", 1465, Some(0), Some(0))
        );
    }

    #[test]
    fn before_3_4_has_no_group_or_result() {
        let s = one("            bash-2301  [000]   104.312233: signal_generate: sig=15 errno=0 code=0 comm=sleep pid=2317");
        assert_eq!((s.group, s.result, s.target_tid), (None, None, 2317));
        let ev = s.into_event();
        assert_eq!((ev.group, ev.result), (None, None));
    }

    #[test]
    fn into_event() {
        let ev = one("       tx thread-1534    (   1516) [000] d..1.   667.638099: signal_generate: sig=10 errno=0 code=0 comm=my app pid=1522 grp=1 res=5").into_event();
        assert_eq!(ev.result, Some(Outcome::Other(5)));
        assert_eq!(ev.group, Some(true));
        assert_eq!(
            ev.running,
            Task {
                pid: Some(1516),
                tid: 1534,
                comm: "tx thread".into(),
                ..Default::default()
            }
        );
        assert_eq!(
            ev.target,
            Task {
                pid: None,
                tid: 1522,
                comm: "my app".into(),
                ..Default::default()
            }
        );
        assert_eq!(ev.sender().map(|t| t.tid), Some(1534));
        for (raw, o) in [
            (0, Outcome::Delivered),
            (1, Outcome::Ignored),
            (2, Outcome::AlreadyPending),
            (3, Outcome::OverflowFail),
            (4, Outcome::LoseInfo),
        ] {
            let line = format!("  a-1 [000] d..1. 1.0: signal_generate: sig=1 errno=0 code=0 comm=b pid=2 grp=0 res={raw}");
            let ev = one(&line).into_event();
            assert_eq!((ev.result, ev.group), (Some(o), Some(false)));
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts_ns("666.126292"), Ok(666_126_292_000));
        assert_eq!(ts_ns("613.778456654"), Ok(613_778_456_654));
        assert_eq!(ts_ns("4158362"), Ok(4_158_362));
        assert_eq!(ts_ns("12us"), Ok(12_000));
        assert!(ts_ns("1.0123456789").is_err());
    }

    #[test]
    fn lost_lines() {
        let l = |cpu, count| Ok(Some(TextItem::Lost { cpu, count }));
        assert_eq!(
            parse_line("CPU:0 [LOST 4758 EVENTS]\n"),
            l(Some(0), Some(4758))
        );
        assert_eq!(parse_line("CPU:1 [LOST EVENTS]"), l(Some(1), None));
        assert_eq!(
            parse_line("fixture-text-tc: CPU:1 [78 EVENTS DROPPED]"),
            l(Some(1), Some(78))
        );
        assert_eq!(parse_line("CPU:7 [EVENTS DROPPED]"), l(Some(7), None));
        assert_eq!(parse_line("[LOST 12 EVENTS]"), l(None, Some(12)));
        nothing("CPU 1: 936 events lost");
        nothing("CPU:1 [SUBBUFFER START]");
        nothing("x CPU:1 [LOST 3 EVENTS]");
    }

    #[test]
    fn noise_is_skipped() {
        nothing("# tracer: nop");
        nothing("#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION");
        nothing("");
        nothing("   \r\n");
        nothing("cpus=2");
        nothing("version = 6");
        nothing("CPU 3 is empty");
        nothing("  bash-7 [000] d..1. 5.000000: sched_process_exit: comm=bash pid=7 prio=120");
        nothing("  bash-7 [000] ..... 5.000000: tracing_mark_write: signal_generate: sig=9");
        nothing(" => kill_pid_info");
    }

    #[test]
    fn broken_signal_lines_are_errors() {
        for (line, want) in [
            (
                "signal_generate: sig=9 errno=0 code=0 comm=x pid=1 grp=1 res=0",
                "context-info",
            ),
            (
                "  bash-7 [000] d..1. 5.000000: signal_generate: sig=9 errno=0 code=0",
                "comm=",
            ),
            (
                "  bash-7 [000] d..1. 5.000000: signal_generate: sig=9 code=0 comm=x pid=1",
                "errno=",
            ),
            (
                "  bash-7 [000] d..1. 5.000000: signal_generate: sig=x errno=0 code=0 comm=x pid=1",
                "bad number",
            ),
            (
                "  bash [000] d..1. 5.000000: signal_generate: sig=9 errno=0 code=0 comm=x pid=1",
                "comm-pid",
            ),
            (
                "  bash-x [000] d..1. 5.000000: signal_generate: sig=9 errno=0 code=0 comm=x pid=1",
                "bad pid",
            ),
            (
                "  bash-7 d..1. 5.000000: signal_generate: sig=9 errno=0 code=0 comm=x pid=1",
                "CPU",
            ),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.contains(want), "{line:?}: {e}");
        }
    }

    #[test]
    fn parser_numbers_lines_and_goes_on_after_errors() {
        let text = "# tracer: nop\n\
                    \n\
                    \x20 bash-7 [000] d..1. 5.000000: signal_generate: sig=9 errno=0 code=0 comm=x pid=8 grp=1 res=0\n\
                    \x20 bash-7 [000] d..1. 5.000001: signal_generate: sig=9\n\
                    CPU:0 [LOST 3 EVENTS]\n";
        let items: Vec<_> = parse(text.as_bytes()).collect();
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], Ok(TextItem::Signal(s)) if s.target_tid == 8));
        assert_eq!(items[1].as_ref().unwrap_err().line, 4);
        assert_eq!(
            items[2],
            Ok(TextItem::Lost {
                cpu: Some(0),
                count: Some(3)
            })
        );
        let e = items[1].clone().unwrap_err();
        assert!(e.to_string().starts_with("line 4: "), "{e}");
    }

    #[test]
    fn comm_bytes_need_not_be_utf8() {
        let line = b"  \xffab-7 [000] d..1. 5.000000: signal_generate: sig=9 errno=0 code=0 comm=\xfe pid=8 grp=1 res=0\n";
        let items: Vec<_> = parse(&line[..]).collect();
        let Ok(TextItem::Signal(s)) = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!(s.running_comm.as_deref(), Some("\u{fffd}ab"));
        assert_eq!(s.target_comm, "\u{fffd}");
    }

    #[test]
    fn read_errors_end_the_iteration() {
        struct Failing;
        impl std::io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("gone"))
            }
        }
        let items: Vec<_> = parse(std::io::BufReader::new(Failing)).collect();
        assert_eq!(items.len(), 1);
        assert!(items[0].as_ref().unwrap_err().msg.contains("gone"));
    }
}
