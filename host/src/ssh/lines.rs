//! Stdout arrives in chunks; line-oriented sources (the stap module,
//! an agent's JSON Lines) want lines. One splitter for every transport.

use super::Flow;

#[derive(Default)]
pub struct Lines {
    pending: Vec<u8>,
    stopped: bool,
}

impl Lines {
    /// Hands `on_line` every complete line in `data` (without its
    /// `\n`); once it says stop, nothing more is handed over.
    pub fn feed(&mut self, data: &[u8], on_line: &mut dyn FnMut(&[u8]) -> Flow) -> Flow {
        if self.stopped {
            return Flow::Stop;
        }
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let line = &self.pending[start..start + nl];
            start += nl + 1;
            if on_line(line) == Flow::Stop {
                self.stopped = true;
                self.pending.clear();
                return Flow::Stop;
            }
        }
        self.pending.drain(..start);
        Flow::Continue
    }

    /// The output ended: a last line without its `\n` is still a line.
    pub fn finish(self, on_line: &mut dyn FnMut(&[u8]) -> Flow) {
        if !self.stopped && !self.pending.is_empty() {
            on_line(&self.pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_and_the_last_without_newline() {
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut on = |l: &[u8]| {
            got.push(l.to_vec());
            Flow::Continue
        };
        let mut s = Lines::default();
        s.feed(b"ab", &mut on);
        s.feed(b"c\nd\n\ne", &mut on);
        s.finish(&mut on);
        assert_eq!(
            got,
            vec![b"abc".to_vec(), b"d".to_vec(), b"".to_vec(), b"e".to_vec()]
        );
    }

    #[test]
    fn nothing_after_stop() {
        let mut n = 0;
        let mut on = |_: &[u8]| {
            n += 1;
            Flow::Stop
        };
        let mut s = Lines::default();
        assert_eq!(s.feed(b"a\nb\n", &mut on), Flow::Stop);
        assert_eq!(s.feed(b"c\n", &mut on), Flow::Stop);
        s.finish(&mut on);
        assert_eq!(n, 1);
    }
}
