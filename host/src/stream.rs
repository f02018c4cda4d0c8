//! The agent's capture stream on the host: bytes in (from SSH, the
//! local agent's pipe, or a saved file), records out through
//! [`Report`]. All decoding is whosent-analysis's; this module only
//! moves bytes, keeps the `--save` copy, and says when the stream was
//! cut.
//!
//! For now each record goes to `Report::line` as its JSON line (the
//! Report takes lines today); a typed Report will take them directly.

use crate::error::HostError;
use crate::fold::Fold;
use crate::report::Report;
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use whosent_analysis::pipeline::{Lineage, Sink};
use whosent_analysis::session::{Records, Session};
use whosent_proto::query::Query;
use whosent_proto::record::{End, EndReason, ErrorRec, Lost, Ready, SignalEvent};
use whosent_stream::decode::{is_stream, Decoder, Ending};

/// Encodes each record and hands its line to the report.
struct Lines<'r, W: Write> {
    report: &'r mut Report<W>,
    buf: String,
    /// stdout is gone: nothing more is written.
    broken: bool,
    /// Human mode without `--every`: storms are folded.
    fold: Option<Fold>,
}

impl<W: Write> Lines<'_, W> {
    /// Closes a folded run before any other line.
    fn close_run(&mut self) {
        if let Some(line) = self.fold.as_mut().and_then(Fold::close) {
            if !self.broken && self.report.note(&line).is_err() {
                self.broken = true;
            }
        }
    }

    fn send(&mut self) {
        if !self.broken && self.report.line(self.buf.as_bytes()).is_err() {
            self.broken = true;
        }
        self.buf.clear();
    }
}

impl<W: Write> Sink for Lines<'_, W> {
    fn signal(&mut self, e: &SignalEvent, lineage: Option<&Lineage>) {
        if let Some(f) = &mut self.fold {
            let (print, closed) = f.signal(e);
            if let Some(line) = closed {
                if !self.broken && self.report.note(&line).is_err() {
                    self.broken = true;
                }
            }
            if !print {
                return;
            }
        }
        e.encode_with(&mut self.buf, lineage.map(|l| l.json.as_str()));
        self.send();
    }
    fn lost(&mut self, l: &Lost) {
        self.close_run();
        l.encode(&mut self.buf);
        self.send();
    }
}

impl<W: Write> Records for Lines<'_, W> {
    fn ready(&mut self, r: &Ready) {
        r.encode(&mut self.buf);
        self.send();
    }
    fn end(&mut self, e: &End) {
        self.close_run();
        e.encode(&mut self.buf);
        self.send();
    }
    fn error(&mut self, e: &ErrorRec) {
        self.close_run();
        e.encode(&mut self.buf);
        self.send();
    }
}

/// One capture stream being read.
pub struct Feed<'r, W: Write> {
    out: Lines<'r, W>,
    session: Session,
    decoder: Decoder,
    /// The agent answered with JSON lines (an error before the stream
    /// started, or an agent without `--stream`): pass them through.
    lines: Option<Vec<u8>>,
    save: Option<Save>,
    failed: bool,
}

/// The `--save` file: written as the bytes arrive, removed if the
/// capture never started (nothing left behind on a failed run).
struct Save {
    path: PathBuf,
    file: File,
}

/// Creates the `--save` file up front, so a bad path fails before
/// anything runs on the board.
pub fn create_save(path: &Path) -> Result<(PathBuf, File), HostError> {
    let file = File::create(path)
        .map_err(|e| HostError::Io(format!("cannot create --save file {}", path.display()), e))?;
    Ok((path.to_path_buf(), file))
}

impl<'r, W: Write> Feed<'r, W> {
    /// `fold`: fold storms (human mode without `--every`).
    pub fn new(
        report: &'r mut Report<W>,
        query: Query,
        count: Option<u64>,
        save: Option<(PathBuf, File)>,
        fold: bool,
    ) -> Self {
        Feed {
            out: Lines {
                report,
                buf: String::new(),
                broken: false,
                fold: fold.then(Fold::default),
            },
            session: Session::new(query, count),
            decoder: Decoder::new(),
            lines: None,
            save: save.map(|(path, file)| Save { path, file }),
            failed: false,
        }
    }

    /// Takes bytes as they arrive. Returns false once the capture should
    /// stop: stdout is gone, `--count` was reached, or the stream is bad.
    pub fn bytes(&mut self, chunk: &[u8]) -> bool {
        if let Some(s) = &mut self.save {
            if let Err(e) = s.file.write_all(chunk) {
                eprintln!(
                    "whosent-deploy: warning: cannot write {}: {e}; no longer saving",
                    s.path.display()
                );
                self.save = None;
            }
        }
        if self.lines.is_none() && self.decoder.offset() == 0 && chunk.first() == Some(&b'{') {
            self.lines = Some(Vec::new());
        }
        if let Some(pending) = &mut self.lines {
            pending.extend_from_slice(chunk);
            while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                if !self.out.broken && self.out.report.line(&line).is_err() {
                    self.out.broken = true;
                }
            }
            return !self.out.broken;
        }
        if self.failed {
            return false;
        }
        self.decoder.push(chunk);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => {
                    if let Err(e) = self.session.frame(f, &mut self.out) {
                        self.fail(&e.to_string());
                        return false;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.fail(&e.to_string());
                    return false;
                }
            }
        }
        !self.out.broken && !self.session.done()
    }

    /// stdout is gone (`| head`): stop the capture, quietly.
    pub fn output_gone(&self) -> bool {
        self.out.broken
    }

    fn fail(&mut self, message: &str) {
        self.failed = true;
        eprintln!("whosent-deploy: error: {message}");
        self.out.error(&ErrorRec {
            kind: "bad_stream".into(),
            message: message.into(),
            help: "report this with the saved stream (--save FILE) and both versions".into(),
        });
    }

    /// The input has ended: the rest of the records and the `end`.
    /// `cut` is the end reason if the stream stopped before its END
    /// (`hangup` for a dropped link, `eof` for a file).
    pub fn finish(mut self, cut: EndReason) {
        if let Some(rest) = self.lines.take() {
            if !rest.is_empty() && !self.out.broken {
                let _ = self.out.report.line(&rest);
            }
            self.discard_save();
            return;
        }
        let ending = self.decoder.finish();
        if let Ending::Cut { offset, pending } = ending {
            if !self.failed && !self.out.broken && !self.session.done() {
                eprintln!(
                    "whosent-deploy: warning: the capture stream was cut after {offset} bytes{}; what came before is reported, what followed is lost",
                    if pending > 0 { format!(" ({pending} bytes of an unfinished frame dropped)") } else { String::new() }
                );
            }
        }
        let started = self.out.report.ready;
        self.session.finish(&ending, cut, &mut self.out);
        if !started {
            self.discard_save();
        }
    }

    fn discard_save(&mut self) {
        if let Some(s) = self.save.take() {
            drop(s.file);
            let _ = std::fs::remove_file(&s.path);
        }
    }
}

/// Whether a file (or stdin) holds a capture stream, by its magic.
pub fn detect(r: &mut impl BufRead) -> Result<bool, HostError> {
    let head = r
        .fill_buf()
        .map_err(|e| HostError::Io("cannot read the input".into(), e))?;
    Ok(is_stream(head))
}

/// `whosent-deploy parse FILE` for a saved stream; `fold` as for [`Feed::new`].
pub fn parse<R: BufRead, W: Write>(
    mut input: R,
    q: &Query,
    report: &mut Report<W>,
    fold: bool,
) -> Result<(), HostError> {
    let mut feed = Feed::new(report, q.clone(), None, None, fold);
    loop {
        let n = {
            let chunk = input
                .fill_buf()
                .map_err(|e| HostError::Io("cannot read the input".into(), e))?;
            if chunk.is_empty() {
                break;
            }
            if !feed.bytes(chunk) {
                break;
            }
            chunk.len()
        };
        input.consume(n);
    }
    feed.finish(EndReason::Eof);
    Ok(())
}
