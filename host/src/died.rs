//! The agent ending without its last word (no END or ERROR in its
//! stream): it died, and the user is told how, from its exit status
//! (signal n is 128 + n, as both transports give it: the local
//! transport from wait(2), SSH from the board's shell, which runs the
//! agent as `AGENT; st=$?; …; exit $st`), and what it last said on
//! stderr.

use crate::error::HostError;
use whosent_proto::escape::escape;
use whosent_proto::record::ErrorRec;

/// The agent's last line on stderr, kept as its stderr passes by.
#[derive(Default)]
pub struct LastWords {
    last: String,
    partial: Vec<u8>,
}

impl LastWords {
    pub fn feed(&mut self, chunk: &[u8]) {
        self.partial.extend_from_slice(chunk);
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            if !line.trim().is_empty() {
                self.last = line.trim_end().to_string();
            }
        }
    }

    /// The last non-empty line (an unfinished one counts).
    pub fn last(&self) -> Option<String> {
        let partial = String::from_utf8_lossy(&self.partial);
        let partial = partial.trim_end();
        if !partial.is_empty() {
            return Some(partial.to_string());
        }
        (!self.last.is_empty()).then(|| self.last.clone())
    }
}

/// How the agent process ended, as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// 128 + n for signal n.
    pub status: i32,
    /// Its last line on stderr.
    pub last: Option<String>,
}

impl Exit {
    /// Its death, if it died: it exited without its end record, or,
    /// when the host stopped reading it (`unread`: what it said last
    /// was not read), with a status that is none of its own (0, 1, 2).
    pub fn death(&self, ended: bool, unread: bool, started: bool) -> Option<Death> {
        let died = if unread {
            !(0..=2).contains(&self.status)
        } else {
            !ended
        };
        died.then(|| Death {
            status: self.status,
            started,
            last: self.last.clone(),
        })
    }
}

/// How the agent died: exit `status` (128 + n for signal n), whether
/// the capture had `started` (its ready came), its `last` stderr line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    pub status: i32,
    pub started: bool,
    pub last: Option<String>,
}

impl Death {
    pub fn message(&self) -> String {
        let how = match self.status - 128 {
            n @ 1..=64 => format!(
                "was killed by signal {n} ({})",
                whosent_proto::signal::name(n)
            ),
            _ => format!("exited with status {}", self.status),
        };
        let when = if self.started {
            "during the capture"
        } else {
            "before the capture started"
        };
        // The line comes from the board: no raw control bytes.
        let said = match &self.last {
            Some(l) => format!("its last line on stderr: {}", escape(l)),
            None => "it wrote nothing on stderr".into(),
        };
        format!("the agent {how} {when}, without its end record; {said}")
    }

    pub fn help(&self) -> &'static str {
        if self.started {
            "the signals before it died are reported; look for why in the kernel log (dmesg: the OOM killer, a crash) or who killed it"
        } else {
            "run the agent by hand to see why (`whosent-agent --help`); --agent and WHOSENT_AGENT must name a whosent-agent"
        }
    }

    /// The `error` record of `--json` output.
    pub fn record(&self) -> ErrorRec {
        ErrorRec {
            kind: "agent_died".into(),
            message: self.message(),
            help: self.help().into(),
        }
    }

    pub fn error(&self) -> HostError {
        HostError::other(self.message(), self.help())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_kept_across_chunks() {
        let mut w = LastWords::default();
        assert_eq!(w.last(), None);
        w.feed(b"whosent-agent: note: a\nwhosent-agent: er");
        w.feed(b"ror: b\n\n");
        assert_eq!(w.last().as_deref(), Some("whosent-agent: error: b"));
        w.feed(b"cut off");
        assert_eq!(w.last().as_deref(), Some("cut off"));
    }

    #[test]
    fn a_signal_is_named_and_a_status_is_given() {
        let d = Death {
            status: 137,
            started: true,
            last: Some("whosent-agent: note: x\x1b[2K".into()),
        };
        assert_eq!(
            d.message(),
            "the agent was killed by signal 9 (SIGKILL) during the capture, without its end record; its last line on stderr: whosent-agent: note: x\\x1b[2K"
        );
        let d = Death {
            status: 1,
            started: false,
            last: None,
        };
        assert_eq!(
            d.message(),
            "the agent exited with status 1 before the capture started, without its end record; it wrote nothing on stderr"
        );
    }
}
