//! Events of all buffers and CPUs merged in timestamp order, as
//! `trace-cmd report` prints them: at each step the CPU whose next
//! event is oldest, the lowest-numbered one on a tie
//! (tracecmd_read_next_data() in trace-cmd's lib/trace-cmd/trace-input.c).

use super::error::TraceDatError;
use super::{Buffer, TraceDat};
use crate::header_page::PageLayout;
use crate::page::{Events, Page, RawEvent};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    Event {
        /// Index into [`TraceDat::buffers`].
        buffer: usize,
        cpu: u32,
        event: RawEvent<'a>,
    },
    /// The kernel dropped events before this page (`None`: it did not
    /// say how many).
    Lost {
        buffer: usize,
        cpu: u32,
        count: Option<u64>,
    },
}

/// One CPU's pages, with its next item read ahead.
struct Stream<'a> {
    buffer: usize,
    name: &'a str,
    cpu: u32,
    layout: PageLayout,
    pages: std::slice::Chunks<'a, u8>,
    page_no: usize,
    events: Option<Events<'a>>,
    /// The next item and its timestamp (errors take the last one seen).
    head: Option<(u64, Result<Record<'a>, TraceDatError>)>,
    ts: u64,
}

impl<'a> Stream<'a> {
    fn new(
        buffer: usize,
        b: &'a Buffer<'a>,
        d: &'a super::CpuData<'a>,
        layout: PageLayout,
    ) -> Self {
        let mut s = Stream {
            buffer,
            name: &b.name,
            cpu: d.cpu,
            layout,
            pages: d.pages.chunks(b.page_size.max(1)),
            page_no: 0,
            events: None,
            head: None,
            ts: 0,
        };
        s.advance();
        s
    }

    fn error(&self, msg: String) -> TraceDatError {
        TraceDatError::Page {
            buffer: self.name.to_string(),
            cpu: self.cpu,
            page: self.page_no,
            msg,
        }
    }

    fn advance(&mut self) {
        loop {
            if let Some(events) = &mut self.events {
                match events.next() {
                    Some(Ok(event)) => {
                        self.ts = event.ts;
                        let rec = Record::Event {
                            buffer: self.buffer,
                            cpu: self.cpu,
                            event,
                        };
                        self.head = Some((event.ts, Ok(rec)));
                        return;
                    }
                    Some(Err(e)) => {
                        // The rest of the page cannot be trusted.
                        self.events = None;
                        self.head = Some((self.ts, Err(self.error(e.0))));
                        return;
                    }
                    None => self.events = None,
                }
            }
            let Some(page) = self.pages.next() else {
                self.head = None;
                return;
            };
            self.page_no += 1;
            match Page::parse(&self.layout, page) {
                Ok(p) => {
                    self.events = Some(p.events());
                    if let Some(count) = p.missed {
                        // trace-cmd prints the loss with the page's first
                        // event, so it sorts by that event's time.
                        let first = p.events().find_map(Result::ok).map_or(p.ts, |e| e.ts);
                        self.ts = self.ts.max(first);
                        let rec = Record::Lost {
                            buffer: self.buffer,
                            cpu: self.cpu,
                            count,
                        };
                        self.head = Some((self.ts, Ok(rec)));
                        return;
                    }
                }
                Err(e) => {
                    self.head = Some((self.ts, Err(self.error(e.0))));
                    return;
                }
            }
        }
    }
}

pub struct Records<'a> {
    streams: Vec<Stream<'a>>,
}

impl<'a> Records<'a> {
    pub(crate) fn new(t: &'a TraceDat<'a>) -> Self {
        let streams = t
            .buffers
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.cpus.iter().map(move |d| (i, b, d)))
            .map(|(i, b, d)| Stream::new(i, b, d, t.page_layout))
            .collect();
        Records { streams }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, TraceDatError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (i, _) = self
            .streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.head.as_ref().map(|(ts, _)| (i, *ts)))
            .min_by_key(|&(i, ts)| (ts, i))?;
        let s = &mut self.streams[i];
        let (_, item) = s.head.take()?;
        s.advance();
        Some(item)
    }
}
