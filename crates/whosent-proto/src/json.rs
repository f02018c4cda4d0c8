//! A minimal JSON object writer.
//!
//! The agent writes every record through this instead of serde_json:
//! it keeps the static agent inside its size budget, and the format is
//! small and flat enough that a writer is all it needs. The host reads
//! the same lines back with serde (feature `decode`), which keeps the
//! two sides honest against each other.

use std::fmt::Write;

/// Builds one JSON object into a caller-owned `String`.
pub struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, k);
        self.out.push(':');
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        string(self.out, v);
        self
    }

    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }

    pub fn int(&mut self, k: &str, v: i64) -> &mut Self {
        self.key(k);
        let _ = write!(self.out, "{v}");
        self
    }

    pub fn opt_int(&mut self, k: &str, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int(k, v),
            None => self.null(k),
        }
    }

    /// An array of integers, or null.
    pub fn opt_ints(&mut self, k: &str, v: Option<&[i32]>) -> &mut Self {
        let Some(v) = v else { return self.null(k) };
        self.key(k);
        self.out.push('[');
        for (i, n) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{n}");
        }
        self.out.push(']');
        self
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    pub fn null(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.out.push_str("null");
        self
    }

    /// Seconds with microseconds, as ftrace prints timestamps.
    pub fn secs(&mut self, k: &str, ns: u64) -> &mut Self {
        // Rounded as ftrace prints timestamps (`ns2usecs()`), so that
        // records and the kernel's own text agree.
        self.key(k);
        let us = ns.saturating_add(500) / 1000;
        let _ = write!(self.out, "{}.{:06}", us / 1_000_000, us % 1_000_000);
        self
    }

    /// A nested object, written by `f`.
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj)) -> &mut Self {
        self.key(k);
        let mut inner = Obj::new(self.out);
        f(&mut inner);
        inner.close();
        self
    }

    /// An array of objects, one per item.
    pub fn arr<T>(&mut self, k: &str, items: &[T], f: impl FnMut(&mut Obj, &T)) -> &mut Self {
        self.key(k);
        array(self.out, items, f);
        self
    }

    /// A value that is JSON text already.
    pub fn raw(&mut self, k: &str, json: &str) -> &mut Self {
        self.key(k);
        self.out.push_str(json);
        self
    }

    pub fn close(self) {
        self.out.push('}');
    }
}

/// Writes an array of objects, one per item.
pub fn array<T>(out: &mut String, items: &[T], mut f: impl FnMut(&mut Obj, &T)) {
    out.push('[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut inner = Obj::new(out);
        f(&mut inner, it);
        inner.close();
    }
    out.push(']');
}

/// Writes `s` as a JSON string literal. Runs of plain text are copied
/// whole: this is the agent's hottest function in a signal storm. The
/// bytes to escape are ASCII, or the two-byte UTF-8 of a C1 control
/// (0xC2 0x80..0x9F), so they never split a UTF-8 sequence.
///
/// JSON requires escaping only below U+0020; DEL and the C1 controls
/// (U+009B is a one-character CSI on some terminals) are escaped too, so
/// that `--json` printed on a terminal cannot drive it either.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    let mut rest = s;
    while let Some(i) = rest
        .bytes()
        .position(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f || b == 0xc2)
    {
        out.push_str(&rest[..i]);
        let bytes = rest.as_bytes();
        let mut len = 1;
        match bytes[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0xc2 => match bytes.get(i + 1) {
                Some(&c1 @ 0x80..=0x9f) => {
                    let _ = write!(out, "\\u{c1:04x}");
                    len = 2;
                }
                // Another character starting with 0xC2 (U+00A0..U+00BF).
                _ => {
                    out.push_str(&rest[i..i + 2]);
                    len = 2;
                }
            },
            b => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        rest = &rest[i + len..];
    }
    out.push_str(rest);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_between_runs_of_plain_text() {
        let mut s = String::new();
        string(&mut s, "é\"ü\u{7f}x\t\u{1f}\\z—");
        assert_eq!(s, r#""é\"ü\u007fx\t\u001f\\z—""#);
        s.clear();
        string(&mut s, "");
        assert_eq!(s, r#""""#);
    }

    #[test]
    fn c1_controls_are_escaped_and_their_neighbours_are_not() {
        let mut s = String::new();
        string(&mut s, "a\u{9b}2J\u{80}\u{9f}\u{a0}\u{bf}é");
        assert_eq!(s, "\"a\\u009b2J\\u0080\\u009f\u{a0}\u{bf}é\"");
    }

    #[test]
    fn escapes_what_json_requires() {
        let mut s = String::new();
        let mut o = Obj::new(&mut s);
        o.str("comm", "a\"b\\c\n\u{1}é")
            .int("n", -6)
            .null("x")
            .bool("b", true)
            .opt_ints("ns", Some(&[4, -1]))
            .opt_ints("none", None);
        o.secs("ts", 12_345_678_901_234);
        o.close();
        assert_eq!(
            s,
            r#"{"comm":"a\"b\\c\n\u0001é","n":-6,"x":null,"b":true,"ns":[4,-1],"none":null,"ts":12345.678901}"#
        );
    }
}
