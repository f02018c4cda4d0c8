//! known_hosts lines, parsed and matched as OpenSSH does, without I/O.
//!
//! The format is sshd(8)'s SSH_KNOWN_HOSTS FILE FORMAT: an optional
//! marker (`@cert-authority` or `@revoked`), a comma-separated list of
//! host patterns, the key type, the base64 key and an optional comment.
//! The matching follows OpenSSH's `hostfile.c` (`match_maybe_hashed`)
//! and `match.c` (`match_hostname`):
//! - the patterns are [`super::pattern`]'s (`*`, `?`, `!`); the `[` of
//!   `[host]:port` is literal;
//! - host names and patterns compare case-insensitively (ASCII);
//! - a hashed host field `|1|SALT|HASH` (`HashKnownHosts`) stands for one
//!   name: HASH is HMAC-SHA1 keyed with SALT over that name, both in
//!   base64; it holds no list and no wildcards.

use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::base64;
use super::pattern::{match_list, ListMatch};

/// The marker in front of a line (`hostfile.c` `check_markers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A plain host key.
    None,
    /// `@revoked`: this key must never be accepted for the hosts named.
    Revoked,
    /// `@cert-authority`: this key signs the hosts' certificates.
    CertAuthority,
}

/// One meaningful known_hosts line, borrowed from the file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub marker: Marker,
    /// The host field as written: patterns, or one `|1|` hash.
    pub hosts: &'a str,
    pub key_type: &'a str,
    /// The key blob (base64-decoded).
    pub key: Vec<u8>,
}

/// Parses one line; `None` for blank lines, comments, unknown markers
/// and lines too short or with a key that is not base64 (OpenSSH skips
/// those too).
pub fn parse_line(raw: &str) -> Option<Line<'_>> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let key = base64::decode(fields.next()?)?;
    Some(Line {
        marker,
        hosts: first,
        key_type,
        key,
    })
}

impl Line<'_> {
    /// Whether this line applies to `name`, the known_hosts name of the
    /// host (`host`, or `[host]:port` off port 22).
    pub fn names(&self, name: &str) -> bool {
        if self.hosts.starts_with('|') {
            hashed_matches(self.hosts, &name.to_ascii_lowercase())
        } else {
            // `match.c` `match_hostname`: the name lowercased.
            match_list(&name.to_ascii_lowercase(), self.hosts) == ListMatch::Positive
        }
    }
}

/// One line of a file that applies to the host looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    pub marker: Marker,
    pub key_type: String,
    pub key: Vec<u8>,
}

/// The lines of a known_hosts file's `text` that apply to `name`, in
/// file order.
pub fn entries(text: &str, name: &str) -> Vec<Entry> {
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let l = parse_line(raw)?;
            l.names(name).then(|| Entry {
                line: i + 1,
                marker: l.marker,
                key_type: l.key_type.to_string(),
                key: l.key,
            })
        })
        .collect()
}

/// What a file says about the key a host presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A plain line for the host holds this key.
    Known,
    /// A `@revoked` line for the host holds this key: refused whatever
    /// else the file says (`hostfile.c` `check_key_not_revoked` runs
    /// after the search and overrides its result).
    Revoked { line: usize },
    /// Plain lines for the host hold other keys: those of the presented
    /// key's type, or all of them when none has its type.
    Changed { lines: Vec<usize> },
    /// No plain line, but a `@cert-authority` line names the host.
    CertificateOnly { line: usize },
    /// Nothing in the file is about this host.
    Unknown,
}

/// Judges the key `blob` of type `key_type` that `name` presented.
pub fn judge(entries: &[Entry], key_type: &str, blob: &[u8]) -> Verdict {
    if let Some(r) = entries
        .iter()
        .find(|e| e.marker == Marker::Revoked && e.key == blob)
    {
        return Verdict::Revoked { line: r.line };
    }
    let plain: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.marker == Marker::None)
        .collect();
    if plain.iter().any(|e| e.key == blob) {
        return Verdict::Known;
    }
    if !plain.is_empty() {
        // Same type and another key, or (since the known types are
        // offered first) a host that no longer has the recorded type.
        let same: Vec<usize> = plain
            .iter()
            .filter(|e| e.key_type == key_type)
            .map(|e| e.line)
            .collect();
        let lines = if same.is_empty() {
            plain.iter().map(|e| e.line).collect()
        } else {
            same
        };
        return Verdict::Changed { lines };
    }
    match entries.iter().find(|e| e.marker == Marker::CertAuthority) {
        Some(ca) => Verdict::CertificateOnly { line: ca.line },
        None => Verdict::Unknown,
    }
}

/// `|1|SALT|HASH` names `name` when HMAC-SHA1(SALT, name) is HASH
/// (`hostfile.c` `host_hash`). A malformed hash names nothing.
fn hashed_matches(field: &str, name: &str) -> bool {
    let Some(rest) = field.strip_prefix("|1|") else {
        return false;
    };
    let Some((salt, hash)) = rest.split_once('|') else {
        return false;
    };
    let (Some(salt), Some(hash)) = (base64::decode(salt), base64::decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIGwQeS6eVUdkOUeNPINZBwlhY4El4feXUHrS/lKvDc3D";

    fn names(hosts: &str, name: &str) -> bool {
        parse_line(&format!("{hosts} ssh-ed25519 {KEY}"))
            .unwrap()
            .names(name)
    }

    #[test]
    fn patterns_and_negations_decide_which_hosts_a_line_names() {
        assert!(names("*", "anything"));
        assert!(names("192.168.1.?", "192.168.1.7"));
        assert!(!names("192.168.1.?", "192.168.1.17"));
        assert!(names("[10.0.0.*]:2222", "[10.0.0.5]:2222"));
        assert!(!names("[10.0.0.*]:2222", "10.0.0.5"));
        assert!(!names("*.lan,!evil.lan", "evil.lan"));
        assert!(names("*.lan,!evil.lan", "good.lan"));
        assert!(!names("!evil.lan", "good.lan"));
    }

    #[test]
    fn names_compare_case_insensitively_and_lists_split_on_commas() {
        assert!(names("Board.LAN", "board.lan"));
        assert!(names("board.lan", "BOARD.lan"));
        assert!(names("a,board,c", "board"));
        assert!(!names("a,boardx,c", "board"));
    }

    #[test]
    fn hashed_entries_match_their_one_name() {
        // The bracketed name, with a salt of our own.
        let salt = [7u8; 20];
        let mut mac = Hmac::<Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let hash = mac.finalize().into_bytes();
        let field = format!("|1|{}|{}", base64::encode(&salt), base64::encode(&hash));
        assert!(names(&field, "[127.0.0.1]:2222"));
        assert!(!names(&field, "[127.0.0.1]:2223"));
        assert!(!names(&field, "127.0.0.1"));
        assert!(!names("|1|bad|hash", "127.0.0.1"));
        assert!(!names("|2|x|y", "127.0.0.1"));
    }

    #[test]
    fn a_hashed_entry_from_ssh_keygen_matches() {
        // Made with OpenSSH 9.2: `echo "board.lan ssh-ed25519 KEY" > kh;
        // ssh-keygen -H -f kh`.
        let line = format!(
            "|1|2S1IOIGAlUtLTIU7gT5uXT/5qkI=|tt3pQ0vtCOzuFHkRiqdvEnFqm4Q= ssh-ed25519 {KEY}"
        );
        let l = parse_line(&line).unwrap();
        assert_eq!(l.marker, Marker::None);
        assert!(l.names("board.lan"));
        assert!(
            l.names("BOARD.lan"),
            "ssh lowercases the name before hashing"
        );
        assert!(!l.names("board.lan2"));
    }

    /// A key blob whose base64 is `KEY` with its last letters changed.
    fn other_key() -> Vec<u8> {
        let mut k = base64::decode(KEY).unwrap();
        *k.last_mut().unwrap() ^= 1;
        k
    }

    fn verdict(text: &str, name: &str, blob: &[u8]) -> Verdict {
        judge(&entries(text, name), "ssh-ed25519", blob)
    }

    #[test]
    fn a_revoked_key_is_refused_even_when_also_recorded() {
        let key = base64::decode(KEY).unwrap();
        let text = format!("board ssh-ed25519 {KEY}\n# note\n@revoked * ssh-ed25519 {KEY}\n");
        assert_eq!(verdict(&text, "board", &key), Verdict::Revoked { line: 3 });
        // Only for the hosts its patterns name, as in OpenSSH.
        let text = format!("board ssh-ed25519 {KEY}\n@revoked *,!board ssh-ed25519 {KEY}\n");
        assert_eq!(verdict(&text, "board", &key), Verdict::Known);
        assert_eq!(verdict(&text, "other", &key), Verdict::Revoked { line: 2 });
        // Another host's revoked key says nothing about this one.
        let text = format!("@revoked * ssh-ed25519 {KEY}\n");
        assert_eq!(verdict(&text, "board", &other_key()), Verdict::Unknown);
    }

    #[test]
    fn a_cert_authority_alone_is_told_apart_from_an_unknown_host() {
        let key = base64::decode(KEY).unwrap();
        let ca = format!("@cert-authority *.lan ssh-ed25519 {KEY}\n");
        assert_eq!(
            verdict(&ca, "board.lan", &other_key()),
            Verdict::CertificateOnly { line: 1 }
        );
        assert_eq!(verdict(&ca, "board.local", &other_key()), Verdict::Unknown);
        // A plain key for the host decides, whatever the CA line says.
        let both = format!("{ca}board.lan ssh-ed25519 {KEY}\n");
        assert_eq!(verdict(&both, "board.lan", &key), Verdict::Known);
        assert_eq!(
            verdict(&both, "board.lan", &other_key()),
            Verdict::Changed { lines: vec![2] }
        );
    }

    #[test]
    fn a_changed_key_names_the_lines_of_its_type() {
        let text =
            format!("board ssh-rsa {KEY}\nboard ssh-ed25519 {KEY}\nelse ssh-ed25519 {KEY}\n");
        assert_eq!(
            verdict(&text, "board", &other_key()),
            Verdict::Changed { lines: vec![2] }
        );
        let text = format!("board ssh-rsa {KEY}\n");
        assert_eq!(
            verdict(&text, "board", &other_key()),
            Verdict::Changed { lines: vec![1] }
        );
    }

    #[test]
    fn markers_are_read_and_unknown_ones_skip_the_line() {
        let text = format!("@revoked * ssh-ed25519 {KEY} old key");
        let r = parse_line(&text).unwrap();
        assert_eq!(
            (r.marker, r.hosts, r.key_type),
            (Marker::Revoked, "*", "ssh-ed25519")
        );
        assert_eq!(base64::encode(&r.key), KEY);
        let text = format!("@cert-authority *.lan ssh-ed25519 {KEY}");
        let ca = parse_line(&text).unwrap();
        assert_eq!(ca.marker, Marker::CertAuthority);
        assert!(parse_line(&format!("@bogus * ssh-ed25519 {KEY}")).is_none());
        assert!(parse_line("# comment").is_none());
        assert!(parse_line("   ").is_none());
        assert!(parse_line("host ssh-ed25519").is_none());
        assert!(parse_line("host ssh-ed25519 not*base64").is_none());
        assert!(parse_line("@revoked ssh-ed25519").is_none());
    }
}
