//! Text from the board made safe to print on a terminal.
//!
//! Process names are chosen by whoever runs the process
//! (`prctl(PR_SET_NAME)`, `argv[0]`), so a name like
//! `"\r\x1b[2KSIGKILL: i"` would otherwise redraw the line and forge a
//! record; OSC sequences retitle the window, `\x1b[2J` clears the screen.
//! Every human-readable path prints such text through [`escape`] (or
//! [`escape_bytes`]), in the manner of `ls -b` / GNU `ls`'s escape
//! quoting:
//! - `\` becomes `\\`, so that every escape seen was made here;
//! - tab, newline and carriage return become `\t`, `\n`, `\r`;
//! - other C0 controls and DEL become `\xHH` (ESC is `\x1b`);
//! - C1 controls (U+0080..U+009F; U+009B is a one-character CSI on
//!   some terminals) and every other character Rust's Unicode tables
//!   hold unprintable (format characters such as U+202E, which reverses
//!   the text after it, separators, unassigned code points) become
//!   `\u{HHHH}`;
//! - bytes that are not UTF-8 (in [`escape_bytes`]) become `\xHH`.
//!
//! JSON output is not escaped this way: its encoder escapes for JSON, and
//! a reader gets the name back exactly.

use std::borrow::Cow;
use std::fmt::Write;

/// The terminal-safe form of `s`; borrowed when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if s.chars().all(is_plain) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    push_escaped(&mut out, s);
    Cow::Owned(out)
}

/// [`escape`] for bytes that may not be UTF-8: invalid bytes become
/// `\xHH`.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 8);
    for chunk in b.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// [`escape_bytes`] for text passed on line by line (a board's stderr):
/// newlines stay, everything else is escaped. A UTF-8 character split
/// across two chunks shows as `\xHH` escapes.
pub fn escape_lines(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 8);
    for (i, line) in b.split(|&c| c == b'\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&escape_bytes(line));
    }
    out
}

/// Whether `c` is printed as itself.
fn is_plain(c: char) -> bool {
    match c {
        '\\' => false,
        ' '..='~' => true,
        c if c.is_control() => false,
        // `char::escape_debug` leaves exactly the printable characters
        // alone (quotes aside, which are ASCII and handled above).
        c => {
            let mut e = c.escape_debug();
            e.next() == Some(c) && e.next().is_none()
        }
    }
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            c if is_plain(c) => out.push(c),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No byte a terminal acts on: C0 (newline too), DEL, nor the UTF-8
    /// of C1.
    fn terminal_safe(s: &str) -> bool {
        s.chars().all(|c| !c.is_control()) && !s.contains('\u{202e}')
    }

    #[test]
    fn plain_names_pass_unchanged() {
        for name in [
            "test_sender",
            "kworker/0:1H",
            "sh",
            "a b-c.d",
            "systemd-journal",
            "naïve",
            "名前",
            "x\"y'z",
        ] {
            assert!(
                matches!(escape(name), Cow::Borrowed(n) if n == name),
                "{name}"
            );
        }
    }

    #[test]
    fn controls_are_escaped_as_ls_does() {
        assert_eq!(escape("\r\x1b[2KSIGKILL: i"), "\\r\\x1b[2KSIGKILL: i");
        assert_eq!(escape("\x1b]0;pwn\x07"), "\\x1b]0;pwn\\x07");
        assert_eq!(escape("a\tb\nc\0d"), "a\\tb\\nc\\x00d");
        assert_eq!(escape("del\x7f"), "del\\x7f");
        assert_eq!(escape("csi\u{9b}2J"), "csi\\u{009b}2J");
        assert_eq!(escape("nel\u{85}"), "nel\\u{0085}");
        assert_eq!(escape("rlo\u{202e}txt"), "rlo\\u{202e}txt");
        assert_eq!(escape("zw\u{200b}j"), "zw\\u{200b}j");
    }

    #[test]
    fn a_backslash_is_escaped_so_the_output_is_unambiguous() {
        // A name that spells an escape differs from the name it spells.
        assert_eq!(escape("\\x1b"), "\\\\x1b");
        assert_ne!(escape("\\x1b"), escape("\x1b"));
        assert_eq!(escape("a\\b"), "a\\\\b");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_escaped() {
        assert_eq!(escape_bytes(b"ok\xff\xc3"), "ok\\xff\\xc3");
        assert_eq!(escape_bytes("é\x1b".as_bytes()), "é\\x1b");
        // A C1 control in its UTF-8 form is a character, escaped as one.
        assert_eq!(escape_bytes(b"\xc2\x9b"), "\\u{009b}");
    }

    #[test]
    fn passed_on_text_keeps_its_newlines_only() {
        assert_eq!(
            escape_lines(b"error: \x1b[31mred\r\nnext\n"),
            "error: \\x1b[31mred\\r\nnext\n"
        );
    }

    #[test]
    fn every_byte_and_c1_character_comes_out_terminal_safe() {
        let all: Vec<u8> = (0..=255u8).collect();
        let e = escape_bytes(&all);
        assert!(terminal_safe(&e), "{e}");
        let c1: String = (0x80..=0x9fu32).filter_map(char::from_u32).collect();
        assert!(terminal_safe(&escape(&c1)));
    }
}
