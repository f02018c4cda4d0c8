//! Event `format` files: the event id and each field's name, offset and
//! size, so nothing about a kernel's layout is assumed.
//!
//! The syntax is the kernel's `f_show()` in `kernel/trace/trace_events.c`:
//! `\tfield:TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;` per line, with
//! `signed:` missing on very old kernels. `header_page` uses the same
//! syntax, so [`parse_fields`] serves both.

use std::io::BufRead;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The C type as printed, without the name, e.g. `char[16]`.
    pub ty: String,
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
    /// `__data_loc`: the field holds offset (low 16 bits) and length
    /// (high 16 bits) of data stored later in the record.
    pub data_loc: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormat {
    pub name: String,
    pub id: u16,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unreadable ftrace format: {}", self.0)
    }
}

impl std::error::Error for FormatError {}

impl EventFormat {
    pub fn parse(r: impl BufRead) -> Result<Self, FormatError> {
        let mut name = None;
        let mut id = None;
        let mut lines = Vec::new();
        for line in r.lines() {
            let line = line.map_err(|e| FormatError(e.to_string()))?;
            if let Some(v) = line.strip_prefix("name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("ID:") {
                id = Some(
                    v.trim()
                        .parse::<u16>()
                        .map_err(|_| FormatError(format!("bad ID line '{line}'")))?,
                );
            } else {
                lines.push(line);
            }
        }
        let fields = parse_fields(lines.iter().map(String::as_str))?;
        Ok(EventFormat {
            name: name.ok_or_else(|| FormatError("no name: line".into()))?,
            id: id.ok_or_else(|| FormatError("no ID: line".into()))?,
            fields,
        })
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Like [`field`](Self::field), for fields the caller cannot do without.
    pub fn require(&self, name: &str) -> Result<&Field, FormatError> {
        self.field(name)
            .ok_or_else(|| FormatError(format!("event {} has no field '{name}'", self.name)))
    }
}

/// The largest offset or size a field can have.
const MAX_FIELD_END: usize = 1 << 20;

/// Parses every `field:` line; other lines are ignored.
pub fn parse_fields<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Vec<Field>, FormatError> {
    let mut out = Vec::new();
    for line in lines {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let decl = parts.next().unwrap_or_default();
        let (mut offset, mut size, mut signed) = (None, None, false);
        for p in parts {
            let num = |v: &str| v.trim().parse::<usize>().ok();
            if let Some(v) = p.strip_prefix("offset:") {
                offset = num(v);
            } else if let Some(v) = p.strip_prefix("size:") {
                size = num(v);
            } else if let Some(v) = p.strip_prefix("signed:") {
                signed = num(v) == Some(1);
            }
        }
        let bad = || FormatError(format!("bad field line '{line}'"));
        let (ty, name) = split_decl(decl).ok_or_else(bad)?;
        // Offsets and sizes sit inside a ring-buffer page (at most 1 MiB
        // with `buffer_subbuf_size_kb`, kernel/trace/ring_buffer.c); a
        // larger one comes from a damaged file (a trace.dat carries the
        // format text), and would overflow `offset + size` below.
        if offset.max(size).is_some_and(|v| v > MAX_FIELD_END) {
            return Err(bad());
        }
        out.push(Field {
            data_loc: ty.starts_with("__data_loc") || ty.starts_with("__rel_loc"),
            name,
            ty,
            offset: offset.ok_or_else(bad)?,
            size: size.ok_or_else(bad)?,
            signed,
        });
    }
    Ok(out)
}

/// `char comm[16]` → (`char[16]`, `comm`); `__data_loc char[] name` →
/// (`__data_loc char[]`, `name`); `u64 timestamp` → (`u64`, `timestamp`);
/// `u64 args[]` (a probe event's fixed array, sized by `size:`) →
/// (`u64[]`, `args`).
fn split_decl(decl: &str) -> Option<(String, String)> {
    let decl = decl.trim();
    let (head, array) = match decl.strip_suffix(']') {
        Some(d) => {
            let open = d.rfind('[')?;
            (&d[..open], &d[open..])
        }
        None => (decl, ""),
    };
    let split = head.rfind(|c: char| c.is_whitespace() || c == '*')?;
    let name = head[split + 1..].trim();
    if name.is_empty() {
        return None;
    }
    let mut ty = head[..=split].trim().to_string();
    if !array.is_empty() {
        ty.push_str(array);
        ty.push(']');
    }
    Some((ty, name.to_string()))
}

/// Where a field sits in a record: all that a decoder keeps of a
/// [`Field`]. `Copy` and free of strings, so that the layouts built from
/// the format files neither clone nor drop names and types (that glue was
/// ~1.9 KB of the agent, docs/agent-size.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub offset: usize,
    pub size: usize,
    pub signed: bool,
    /// `__data_loc` (see [`Field::data_loc`]).
    pub data_loc: bool,
    /// `__rel_loc`: a `__data_loc` whose offset counts from the end of
    /// the field itself.
    pub rel_loc: bool,
}

impl Field {
    pub fn slot(&self) -> Slot {
        Slot {
            offset: self.offset,
            size: self.size,
            signed: self.signed,
            data_loc: self.data_loc,
            rel_loc: self.ty.starts_with("__rel_loc"),
        }
    }

    /// [`Slot::int`] of this field.
    pub fn int(&self, rec: &[u8]) -> Option<i64> {
        self.slot().int(rec)
    }

    /// [`Slot::string`] of this field.
    pub fn string(&self, rec: &[u8]) -> Option<String> {
        self.slot().string(rec)
    }
}

impl Slot {
    /// Reads an integer field from a record, in the kernel's byte order
    /// (the agent runs on the traced machine, so that is native).
    pub fn int(&self, rec: &[u8]) -> Option<i64> {
        let b = rec.get(self.offset..self.offset + self.size)?;
        Some(match (self.size, self.signed) {
            (1, true) => b[0] as i8 as i64,
            (1, false) => b[0] as i64,
            (2, true) => i16::from_ne_bytes([b[0], b[1]]) as i64,
            (2, false) => u16::from_ne_bytes([b[0], b[1]]) as i64,
            (4, true) => i32::from_ne_bytes(b.try_into().ok()?) as i64,
            (4, false) => u32::from_ne_bytes(b.try_into().ok()?) as i64,
            (8, _) => i64::from_ne_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }

    /// Reads a string field: a fixed `char[N]` up to its NUL, or a
    /// `__data_loc` string. Bytes that are not UTF-8 are replaced.
    pub fn string(&self, rec: &[u8]) -> Option<String> {
        let bytes = if self.data_loc {
            let loc = self.int(rec)? as u32;
            let (off, len) = ((loc & 0xffff) as usize, (loc >> 16) as usize);
            let base = if self.rel_loc {
                self.offset + self.size
            } else {
                0
            };
            rec.get(base + off..base + off + len)?
        } else {
            rec.get(self.offset..self.offset + self.size)?
        };
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_6_18: &str =
        include_str!("../../../tests/fixtures/format/host-6.18-signal_generate");

    #[test]
    fn parses_a_real_format_file() {
        let f = EventFormat::parse(HOST_6_18.as_bytes()).unwrap();
        assert_eq!(f.name, "signal_generate");
        assert_eq!(f.id, 261);
        let comm = f.field("comm").unwrap();
        assert_eq!(
            (comm.offset, comm.size, comm.ty.as_str()),
            (20, 16, "char[16]")
        );
        let pid = f.field("pid").unwrap();
        assert_eq!(
            (pid.offset, pid.size, pid.signed, pid.ty.as_str()),
            (36, 4, true, "pid_t")
        );
        assert_eq!(f.field("common_pid").unwrap().offset, 4);
        assert_eq!(f.field("result").unwrap().offset, 44);
        assert!(f.field("nope").is_none());
    }

    #[test]
    fn data_loc_and_old_kernels_without_signed() {
        let txt = "name: sched_process_exec\nID: 7\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\n\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n";
        let f = EventFormat::parse(txt.as_bytes()).unwrap();
        let fname = f.field("filename").unwrap();
        assert!(fname.data_loc);
        assert!(!f.field("common_type").unwrap().signed);
        let mut rec = vec![0u8; 12];
        rec[8..12].copy_from_slice(&((3u32 << 16) | 12).to_ne_bytes());
        rec.extend_from_slice(b"/sh\0");
        assert_eq!(fname.string(&rec).as_deref(), Some("/sh"));
        let probe =
            "name: p\nID: 8\nformat:\n\tfield:u64 args0[];\toffset:20;\tsize:512;\tsigned:0;\n";
        let f = EventFormat::parse(probe.as_bytes()).unwrap();
        let a = f.field("args0").unwrap();
        assert_eq!((a.ty.as_str(), a.size, a.data_loc), ("u64[]", 512, false));
    }

    #[test]
    fn offsets_and_sizes_beyond_a_page_are_refused() {
        let f = |off: &str| format!("name: x\nID: 1\n\tfield:int a;\toffset:{off};\tsize:4;\n");
        assert!(EventFormat::parse(f("1048576").as_bytes()).is_ok());
        for off in ["1048577", "18446744073709551615"] {
            assert!(EventFormat::parse(f(off).as_bytes()).is_err(), "{off}");
        }
    }

    #[test]
    fn refuses_garbage() {
        assert!(EventFormat::parse("name: x\nformat:\n".as_bytes()).is_err());
        assert!(EventFormat::parse(
            "name: x\nID: 1\n\tfield:int;\toffset:0;\tsize:4;\n".as_bytes()
        )
        .is_err());
    }
}
