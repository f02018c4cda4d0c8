//! The metadata that v6 stores in sequence and v7 in sections, with the
//! same body either way (`trace-cmd.dat.v7(5)`: "HEADER INFO SECTION",
//! "FTRACE EVENT FORMATS SECTION", "EVENT FORMATS SECTION", "SAVED
//! COMMAND LINES SECTION"; read by read_header_files(),
//! read_ftrace_files(), read_event_files() and read_cmdlines() in
//! trace-cmd's lib/trace-cmd/trace-input.c).

use super::bytes::Cursor;
use super::error::TraceDatError;
use crate::format::EventFormat;
use crate::header_page::PageLayout;
use std::collections::HashMap;

/// What the metadata gave.
#[derive(Debug, Default)]
pub(crate) struct Metadata {
    pub(crate) layout: Option<PageLayout>,
    pub(crate) formats: Vec<EventFormat>,
    /// Formats that did not parse; only their events are unreadable.
    pub(crate) format_errors: Vec<TraceDatError>,
    /// pid → comm from the kernel's saved_cmdlines at record time.
    pub(crate) cmdlines: HashMap<i32, String>,
}

impl Metadata {
    /// `"header_page\0"`, u64 size, the `events/header_page` text, then
    /// the same for `header_event` (not needed: its layout is fixed).
    pub(crate) fn header_info(&mut self, c: &mut Cursor<'_>) -> Result<(), TraceDatError> {
        c.expect(b"header_page\0", "\"header_page\"")?;
        let n = c.u64("header_page size")?;
        let at = c.offset();
        let text = c.take(n, "header_page")?;
        let layout = PageLayout::parse(text)
            .map_err(|e| TraceDatError::corrupt(format!("header_page: {}", e.0), at))?;
        c.expect(b"header_event\0", "\"header_event\"")?;
        let n = c.u64("header_event size")?;
        c.take(n, "header_event")?;
        self.layout = Some(layout);
        Ok(())
    }

    /// u32 count, then each `events/ftrace/*/format` as u64 size + text.
    pub(crate) fn ftrace_formats(&mut self, c: &mut Cursor<'_>) -> Result<(), TraceDatError> {
        let n = c.u32("ftrace format count")?;
        for _ in 0..n {
            self.format(c, "ftrace")?;
        }
        Ok(())
    }

    /// u32 count of systems; each: name, u32 count of events, each as
    /// u64 size + format text.
    pub(crate) fn event_formats(&mut self, c: &mut Cursor<'_>) -> Result<(), TraceDatError> {
        let systems = c.u32("event system count")?;
        for _ in 0..systems {
            let system = c.cstr("event system name")?;
            let n = c.u32("event format count")?;
            for _ in 0..n {
                self.format(c, &system)?;
            }
        }
        Ok(())
    }

    fn format(&mut self, c: &mut Cursor<'_>, system: &str) -> Result<(), TraceDatError> {
        let n = c.u64("event format size")?;
        let text = c.take(n, "event format")?;
        match EventFormat::parse(text) {
            Ok(f) => self.formats.push(f),
            Err(e) => self.format_errors.push(TraceDatError::Format {
                event: format!("{system}/{}", name_of(text)),
                msg: e.0,
            }),
        }
        Ok(())
    }

    /// u64 size, then saved_cmdlines: `PID COMM` per line.
    pub(crate) fn cmdlines(&mut self, c: &mut Cursor<'_>) -> Result<(), TraceDatError> {
        let n = c.u64("cmdlines size")?;
        let text = c.take(n, "cmdlines")?;
        for line in String::from_utf8_lossy(text).lines() {
            if let Some((pid, comm)) = line.split_once(' ') {
                if let Ok(pid) = pid.parse() {
                    self.cmdlines.insert(pid, comm.to_string());
                }
            }
        }
        Ok(())
    }
}

/// The `name:` line of a format that did not parse, for the message.
fn name_of(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .lines()
        .find_map(|l| l.strip_prefix("name:").map(|n| n.trim().to_string()))
        .unwrap_or_else(|| "?".into())
}

/// v6 only: kallsyms and printk formats, u32 size + data each; not
/// needed to decode events.
pub(crate) fn skip_u32_sized(c: &mut Cursor<'_>, what: &str) -> Result<(), TraceDatError> {
    let n = c.u32(what)?;
    c.take(n as u64, what)?;
    Ok(())
}
