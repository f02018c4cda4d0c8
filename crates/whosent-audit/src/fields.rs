//! The `key=value` fields of one audit record, and the encodings the
//! kernel gives their values.
//!
//! The kernel writes a string it does not trust with
//! `audit_log_untrustedstring` (kernel/audit.c): in double quotes when
//! it is plain, as upper-case hex when it holds a space, a quote, a
//! control byte or a byte above 0x7e (`audit_string_contains_control`);
//! `(null)` when there is none. So in a raw record no value holds a
//! space. ausearch `-i` and the ENRICHED part after `\x1d` print
//! interpreted values, which may: there a word without `=` continues
//! the value before it (`comm=nobody kill exe=...`).

/// One record's fields in their order, values as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// Splits `text` into fields. `interpreted`: values may hold spaces.
    pub fn parse(text: &str, interpreted: bool) -> Fields {
        let mut out: Vec<(String, String)> = Vec::new();
        for word in text.split(' ').filter(|w| !w.is_empty()) {
            match word.split_once('=') {
                Some((k, v)) if !k.is_empty() && is_key(k) => out.push((k.into(), v.into())),
                _ if interpreted => {
                    if let Some((_, v)) = out.last_mut() {
                        v.push(' ');
                        v.push_str(word);
                    }
                }
                _ => {}
            }
        }
        Fields(out)
    }

    /// The first value of `key`, as written.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A number field: decimal, or hex with `0x` (ausearch -i writes
    /// the syscall arguments so). `None` when absent or interpreted
    /// into a name (`uid=root`).
    pub fn num(&self, key: &str) -> Option<i64> {
        let v = self.get(key)?;
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok().map(|n| n as i64),
            None => v.parse().ok(),
        }
    }

    /// An id (uid, auid, ses) that the kernel writes as an unsigned
    /// 32-bit number; `(u32)-1` (and `-1`, `unset`) mean "not set".
    pub fn id(&self, key: &str) -> Option<u32> {
        let n = self.num(key)?;
        let id = u32::try_from(n)
            .ok()
            .or_else(|| (n == -1).then_some(u32::MAX))?;
        (id != u32::MAX).then_some(id)
    }

    /// A string the kernel may have hex-encoded (comm, exe, proctitle,
    /// ocomm): decoded; NULs (proctitle's argument separators) become
    /// spaces, as in `cmdline` elsewhere in whosent. `None` for `(null)`.
    pub fn text(&self, key: &str) -> Option<String> {
        decode_text(self.get(key)?)
    }
}

/// Keys are lower-case words in raw records and upper-case in the
/// ENRICHED part; anything else with an `=` is part of a value.
fn is_key(k: &str) -> bool {
    k.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// See [`Fields::text`].
pub fn decode_text(v: &str) -> Option<String> {
    if v == "(null)" || v == "?" {
        return None;
    }
    if let Some(q) = v.strip_prefix('"') {
        return Some(q.strip_suffix('"').unwrap_or(q).to_string());
    }
    match hex(v) {
        Some(bytes) => {
            let bytes: Vec<u8> = bytes
                .into_iter()
                .map(|b| if b == 0 { b' ' } else { b })
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            Some(s.trim_end().to_string())
        }
        // Interpreted output (ausearch -i) is already text.
        None => Some(v.to_string()),
    }
}

/// Upper-case hex, as `audit_log_n_hex` writes it; `None` if `v` is not.
fn hex(v: &str) -> Option<Vec<u8>> {
    let b = v.as_bytes();
    if b.is_empty() || b.len() & 1 == 1 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'))
    {
        return None;
    }
    let nib = |c: u8| if c <= b'9' { c - b'0' } else { c - b'A' + 10 };
    Some(b.chunks(2).map(|p| nib(p[0]) << 4 | nib(p[1])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_quoted_and_null_values() {
        let f = Fields::parse(
            r#"comm=6E6F626F6479206B696C6C exe="/bin/kill" key=(null) proctitle=2F62696E2F6B696C6C002D73005445524D0038363430"#,
            false,
        );
        assert_eq!(f.text("comm").as_deref(), Some("nobody kill"));
        assert_eq!(f.text("exe").as_deref(), Some("/bin/kill"));
        assert_eq!(f.text("key"), None);
        assert_eq!(
            f.text("proctitle").as_deref(),
            Some("/bin/kill -s TERM 8640")
        );
    }

    #[test]
    fn a_plain_comm_that_looks_like_hex_is_quoted_by_the_kernel() {
        // "CAFE" as a comm is written "CAFE" with quotes, so only an
        // unquoted value is hex.
        let f = Fields::parse(r#"comm="CAFE" ocomm=43414645"#, false);
        assert_eq!(f.text("comm").as_deref(), Some("CAFE"));
        assert_eq!(f.text("ocomm").as_deref(), Some("CAFE"));
    }

    #[test]
    fn interpreted_values_keep_their_spaces() {
        let f = Fields::parse(
            "exit=EPERM(Operation not permitted) a0=0x184c comm=nobody kill exe=/x",
            true,
        );
        assert_eq!(f.get("exit"), Some("EPERM(Operation not permitted)"));
        assert_eq!(f.num("a0"), Some(0x184c));
        assert_eq!(f.text("comm").as_deref(), Some("nobody kill"));
    }

    #[test]
    fn unset_ids() {
        let f = Fields::parse("auid=4294967295 ses=-1 uid=0 ouid=root", false);
        assert_eq!(f.id("auid"), None);
        assert_eq!(f.id("ses"), None);
        assert_eq!(f.id("uid"), Some(0));
        assert_eq!(f.id("ouid"), None);
    }
}
