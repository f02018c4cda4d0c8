//! One board's stdout among several: whole lines only, each written in
//! one piece while no other board writes, with the board's name in
//! front in human output (JSON records carry `host` already, and stay
//! JSON).

use std::io::{self, Write};
use std::sync::Mutex;

/// Held while a board writes its lines: one board's lines at a time.
static STDOUT: Mutex<()> = Mutex::new(());

/// A board's stdout: lines into `inner` (fd 1, unbuffered), each
/// prefixed with `prefix`. A line without its newline waits for it.
pub struct Lines<W: Write> {
    inner: W,
    prefix: Vec<u8>,
    pending: Vec<u8>,
}

impl<W: Write> Lines<W> {
    /// `prefix`: `name: ` in human output, nothing in JSON.
    pub fn new(inner: W, prefix: &str) -> Self {
        Lines {
            inner,
            prefix: prefix.as_bytes().to_vec(),
            pending: Vec::new(),
        }
    }

    /// Writes an unfinished last line, ended (the board's run is over).
    pub fn finish(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending.push(b'\n');
        let rest = std::mem::take(&mut self.pending);
        self.write_all(&rest)
    }
}

impl<W: Write> Write for Lines<W> {
    /// Takes `buf` as far as its last whole line goes (the rest waits),
    /// and returns how much of it was written out: what a report counts
    /// as reported ([`crate::report::Report`]) was, prefix and all.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(last) = buf.iter().rposition(|&b| b == b'\n') else {
            self.pending.extend_from_slice(buf);
            return Ok(buf.len());
        };
        let _one = STDOUT.lock().unwrap_or_else(|p| p.into_inner());
        let mut done = 0;
        for line in buf[..=last].split_inclusive(|&b| b == b'\n') {
            let mut whole = Vec::with_capacity(self.prefix.len() + self.pending.len() + line.len());
            whole.extend_from_slice(&self.prefix);
            whole.extend_from_slice(&self.pending);
            whole.extend_from_slice(line);
            match self.inner.write_all(&whole) {
                Ok(()) => {
                    self.pending.clear();
                    done += line.len();
                }
                // What went before was written: say so, and the next
                // write gets the error.
                Err(_) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            }
        }
        self.pending.extend_from_slice(&buf[last + 1..]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_lines_get_the_prefix_and_a_split_one_waits() {
        let mut l = Lines::new(Vec::new(), "b1: ");
        assert_eq!(l.write(b"one\ntw").unwrap(), 6);
        assert_eq!(l.inner, b"b1: one\n");
        l.write_all(b"o\nthree\nfo").unwrap();
        l.finish().unwrap();
        assert_eq!(
            String::from_utf8(l.inner).unwrap(),
            "b1: one\nb1: two\nb1: three\nb1: fo\n"
        );
    }

    /// Two boards writing at once through a stdout that takes a byte
    /// per write (and lets the other thread run between two): every
    /// line still comes out whole, with its board's name.
    #[test]
    fn two_boards_lines_never_mix_within_a_line() {
        use std::sync::{Arc, Mutex as M};
        #[derive(Clone)]
        struct Slow(Arc<M<Vec<u8>>>);
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().push(b[0]);
                std::thread::yield_now();
                Ok(1)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let shared = Slow(Arc::default());
        std::thread::scope(|sc| {
            for name in ["a", "b"] {
                let w = shared.clone();
                sc.spawn(move || {
                    let mut l = Lines::new(w, &format!("{name}: "));
                    for i in 0..200 {
                        // Two lines per write, as a report's batch does.
                        write!(l, "line {i}\nline {i}b\n").unwrap();
                    }
                });
            }
        });
        let text = String::from_utf8(shared.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 800);
        for l in text.lines() {
            let (board, rest) = l.split_once(": ").unwrap();
            assert!(matches!(board, "a" | "b"), "{l}");
            let n = rest.strip_prefix("line ").unwrap().trim_end_matches('b');
            assert!(n.parse::<u32>().is_ok(), "a mixed line: {l}");
        }
    }

    /// A stdout that takes 9 bytes: the first line (prefix and all)
    /// counts as written, the second does not.
    #[test]
    fn a_failing_stdout_counts_only_whole_lines() {
        struct Room(usize, Vec<u8>);
        impl Write for Room {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let n = b.len().min(self.0);
                if n == 0 {
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
                self.0 -= n;
                self.1.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut l = Lines::new(Room(9, Vec::new()), "b1: ");
        assert_eq!(l.write(b"one\ntwo\n").unwrap(), 4);
        assert!(l.write(b"two\n").is_err());
    }
}
