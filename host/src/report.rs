//! Turning the agent's record stream into what the user sees, and the
//! exit status: 0 when a signal was reported, 1 when none was, 2 when
//! the agent reported an error.

use std::io::{self, Write};
use whosent_proto::decode::{parse_line, Record};
use whosent_proto::record::{End, ErrorRec};
use whosent_proto::render;

pub struct Report<W: Write> {
    out: W,
    json: bool,
    /// Added to each JSON record as `"host"` when the agent ran remotely.
    host: Option<String>,
    pub signals: u64,
    pub lost: u64,
    pub ready: bool,
    pub end: Option<End>,
    pub error: Option<ErrorRec>,
    /// Human progress goes to stderr, and only when someone reads it.
    pub quiet: bool,
}

impl<W: Write> Report<W> {
    pub fn new(out: W, json: bool, host: Option<String>) -> Self {
        Report {
            out,
            json,
            host,
            signals: 0,
            lost: 0,
            ready: false,
            end: None,
            error: None,
            quiet: false,
        }
    }

    /// Handles one line from the agent. An `Err` means stdout is gone
    /// (e.g. a closed pipe): the caller should stop quietly.
    pub fn line(&mut self, raw: &[u8]) -> io::Result<()> {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end();
        if text.is_empty() {
            return Ok(());
        }
        let rec = match parse_line(text) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("whosent-deploy: warning: {e}");
                return Ok(());
            }
        };
        match &rec {
            Record::Signal(_) => self.signals += 1,
            Record::Lost(l) => self.lost += l.count.unwrap_or(0),
            Record::Ready(_) => self.ready = true,
            Record::End(e) => self.end = Some(e.clone()),
            Record::Error(e) => self.error = Some(e.clone()),
            Record::Other(_) => {}
        }
        if self.json {
            match &self.host {
                Some(h) => {
                    let mut tagged = String::from("{\"host\":");
                    whosent_proto::json::string(&mut tagged, h);
                    tagged.push(',');
                    tagged.push_str(&text[1..]);
                    writeln!(self.out, "{tagged}")?;
                }
                None => writeln!(self.out, "{text}")?,
            }
            return self.out.flush();
        }
        match rec {
            Record::Signal(e) => {
                writeln!(self.out, "{}", render::signal_line(&e))?;
                self.out.flush()?;
            }
            Record::Ready(r) if !self.quiet => {
                let on = self
                    .host
                    .as_deref()
                    .map(|h| format!(" on {h}"))
                    .unwrap_or_default();
                let filter = if r.filter.is_empty() {
                    "none".to_string()
                } else {
                    r.filter
                };
                eprintln!(
                    "whosent: tracing{on}: Linux {} ({}), {} backend, kernel filter: {filter}; waiting for signals (Ctrl-C to stop)",
                    r.kernel, r.arch, r.backend
                );
            }
            Record::Lost(l) => match l.count {
                Some(n) => eprintln!(
                    "whosent: warning: the kernel dropped {n} events on cpu {}",
                    l.cpu
                ),
                None => eprintln!(
                    "whosent: warning: the kernel dropped events on cpu {}",
                    l.cpu
                ),
            },
            Record::End(e) if !self.quiet => {
                eprintln!(
                    "whosent: {} signal(s), {} lost; stopped: {}",
                    e.signals,
                    e.lost,
                    e.reason.as_str().replace('_', " ")
                );
            }
            // The agent's stderr already told the user.
            _ => {}
        }
        Ok(())
    }

    /// A line of its own in human output, such as the count that closes
    /// a folded storm (crate::fold); nothing in JSON mode.
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        if self.json {
            return Ok(());
        }
        writeln!(self.out, "{text}")?;
        self.out.flush()
    }

    /// The exit status for what was seen; `agent_status` is the agent's own.
    pub fn status(&self, agent_status: i32) -> i32 {
        if self.error.is_some() || agent_status == 2 || (!self.ready && agent_status != 0) {
            2
        } else if self.signals > 0 {
            0
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_counts() {
        let mut out = Vec::new();
        let mut r = Report::new(&mut out, false, None);
        r.quiet = true;
        r.line(br#"{"type":"ready","v":1,"agent":"0.1.0","backend":"ftrace","kernel":"6.1","arch":"aarch64","instance":"whosent-1-2","filter":""}"#).unwrap();
        r.line(br#"{"type":"signal","ts":1.5,"cpu":0,"sig":9,"signame":"SIGKILL","code":0,"code_name":"SI_USER","errno":0,"group":true,"result":"delivered","context":"task","sender":{"pid":6993,"tid":6993,"comm":"test_sender","uid":0,"cmdline":null},"running":null,"target":{"pid":6985,"tid":6985,"comm":"test_receiver"}}"#).unwrap();
        r.line(br#"{"type":"end","reason":"count","signals":1,"lost":0}"#)
            .unwrap();
        assert_eq!(r.status(0), 0);
        drop(r);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SIGKILL: test_sender(6993) -> test_receiver(6985)  code=SI_USER  delivered\n"
        );
    }

    #[test]
    fn json_is_tagged_with_the_host_and_errors_exit_2() {
        let mut out = Vec::new();
        let mut r = Report::new(&mut out, true, Some("board".into()));
        r.line(br#"{"type":"error","kind":"not_root","message":"m","help":"h"}"#)
            .unwrap();
        assert_eq!(r.status(2), 2);
        assert_eq!(r.signals, 0);
        drop(r);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "{\"host\":\"board\",\"type\":\"error\",\"kind\":\"not_root\",\"message\":\"m\",\"help\":\"h\"}\n");
    }

    #[test]
    fn no_signal_is_status_1() {
        let mut r = Report::new(Vec::new(), true, None);
        r.line(br#"{"type":"ready","v":1,"agent":"0","backend":"ftrace","kernel":"k","arch":"a","instance":"i","filter":""}"#).unwrap();
        r.line(br#"{"type":"end","reason":"duration","signals":0,"lost":0}"#)
            .unwrap();
        assert_eq!(r.status(1), 1);
    }
}
