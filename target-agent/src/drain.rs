//! The one capture loop of both modes: drain every CPU's pages into a
//! [`Pages`] consumer (the in-process pipeline of the standalone agent,
//! or the recorder's spool with `--stream`), wait for the kernel, and
//! stop on count, duration, a signal, stdin EOF, or (`--alive-timeout`)
//! stdin silent for too long.

use crate::capture::Capture;
use crate::error::{AgentError, Result};
use crate::stop::Stop;
use std::time::{Duration, Instant};
use whosent_proto::record::EndReason;

/// Pages read from one CPU before moving on, so that a storm on one CPU
/// cannot starve the others or delay stop checks.
pub const PAGES_PER_ROUND: usize = 64;

/// What a capture does with the pages it reads.
pub trait Pages {
    /// Takes one page from `cpu`; returns how many events it held.
    fn page(&mut self, cap: &Capture, cpu: u32, buf: &[u8]) -> Result<usize>;
    /// A round over `cpus` ended; `cut` were not read to empty.
    fn end_round(&mut self, cpus: &[u32], cut: &[u32], events: usize);
    /// Whether another page fits.
    fn room(&self) -> bool {
        true
    }
    /// Writes what is pending; `Err` when stdout is gone.
    fn flush(&mut self) -> std::io::Result<()>;
    /// `--count` was reached.
    fn done(&self) -> bool {
        false
    }
    /// Events are held back for the next round, so come back soon.
    fn holding(&self) -> bool;
    /// Before the last round: make room for what the kernel still holds.
    fn settle(&mut self) {}
    /// After a round that read events, wait this long before the next
    /// (without waking on new data), so that pages fill up: in a storm
    /// the kernel would otherwise wake the reader for every few events,
    /// and the wake-ups cost more than the events.
    fn batch(&self) -> Option<Duration> {
        None
    }
    /// stdout to wait for, when output is pending and it is non-blocking.
    fn out_fd(&self) -> Option<i32> {
        None
    }
    /// The host's heartbeat came on stdin: answer it, so that the host
    /// hears from us even when no signal is sent.
    fn heard(&mut self) {}
}

/// Writes what is pending: `Some(OutputClosed)` once stdout's reader
/// went away (EPIPE), an error for any other failure.
fn flushed(p: &mut dyn Pages) -> Result<Option<EndReason>> {
    match p.flush() {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Some(EndReason::OutputClosed)),
        Err(e) => Err(AgentError::output(e)),
    }
}

/// Rounds after the stop, at most: enough for a 2 MiB-per-CPU buffer
/// through the smallest spool the tests use (64 KiB).
const FINAL_ROUNDS: usize = 64;

/// One round: every CPU's pages while there is room; returns the events read.
pub fn round(cap: &mut Capture, page: &mut [u8], p: &mut dyn Pages) -> Result<usize> {
    let mut n = 0;
    let mut cut = Vec::new();
    for i in 0..cap.readers.cpus.len() {
        let cpu = cap.readers.cpus[i].cpu;
        for round in 1.. {
            if round > PAGES_PER_ROUND || !p.room() {
                cut.push(cpu);
                break;
            }
            let len = cap.readers.cpus[i].read_page(page).map_err(|e| {
                AgentError::io("cannot read", &format!("cpu{cpu}/trace_pipe_raw"), e)
            })?;
            if len == 0 {
                break;
            }
            n += p.page(cap, cpu, &page[..len])?;
        }
    }
    let cpus: Vec<u32> = cap.readers.cpus.iter().map(|r| r.cpu).collect();
    p.end_round(&cpus, &cut, n);
    Ok(n)
}

/// Waits until a CPU has data, stdin changes, stdout takes more (`out`)
/// or its reader goes away, or `timeout` passes; the reason to stop
/// that it found.
fn wait(
    cap: &Capture,
    stop: &Stop,
    timeout: Duration,
    out: Option<i32>,
    data: bool,
) -> Option<EndReason> {
    // Pushed one by one: an iterator chain here was ~0.8 KB of the agent
    // (docs/agent-size.md).
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut add = |fd, events| {
        fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        })
    };
    if data {
        for fd in cap.readers.fds() {
            add(fd, libc::POLLIN);
        }
    }
    if let Some(fd) = out {
        add(fd, libc::POLLOUT);
    }
    add(stop.wake_fd, libc::POLLIN);
    // No events asked: poll still says POLLERR when a pipe's reader
    // closed (fs/pipe.c pipe_poll), so `| head` ends the capture even
    // when nothing is written.
    add(1, 0);
    if let Some(fd) = stop.stdin_fd {
        add(fd, libc::POLLIN);
    }
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: fds is a valid array of pollfd for its length.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    let n = fds.len() - 1 - usize::from(stop.stdin_fd.is_some());
    if fds[n].revents & (libc::POLLERR | libc::POLLHUP) != 0 {
        return Some(EndReason::OutputClosed);
    }
    let stdin = stop.stdin_fd.is_some() && fds.last().is_some_and(|p| p.revents != 0);
    (stdin && stop.stdin_closed()).then_some(EndReason::StdinClosed)
}

/// Runs the loop until something says stop; then reads what the kernel
/// already holds (it was generated before we stopped) unless `--count`
/// ended it, or the host is gone: stdin silent for longer than `alive`
/// (the end is `hangup`, and nobody reads it).
pub fn capture(
    cap: &mut Capture,
    stop: &Stop,
    duration: Option<Duration>,
    alive: Option<Duration>,
    p: &mut dyn Pages,
) -> Result<EndReason> {
    let mut page = vec![0; cap.readers.page_size];
    // A deadline past what Instant can hold is no deadline.
    let deadline = duration.and_then(|d| Instant::now().checked_add(d));
    let reason = loop {
        if let Some(r) = flushed(p)? {
            break r;
        }
        if let Some(r) = stop.signalled() {
            break r;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break EndReason::Duration;
        }
        if alive.is_some_and(|t| stop.silent(t)) {
            // Nobody is reading: the kernel's rest would go nowhere.
            return Ok(EndReason::Hangup);
        }
        let n = if p.room() {
            round(cap, &mut page, p)?
        } else {
            0
        };
        if p.done() {
            break EndReason::Count;
        }
        // Write before waiting: stdout that can take more (always, for a
        // file) would otherwise end every wait at once.
        if let Some(r) = flushed(p)? {
            break r;
        }
        if n == 0 {
            // Held-back events are released by the next round.
            let most = Duration::from_millis(if p.holding() { 2 } else { 200 });
            let left = deadline.map_or(most, |d| d.saturating_duration_since(Instant::now()));
            // With the spool full, new data cannot be read: wait for
            // stdout only, or a busy kernel buffer would spin the loop.
            let data = p.room();
            let t = Instant::now();
            if let Some(r) = wait(cap, stop, left.min(most), p.out_fd(), data) {
                break r;
            }
            if stop.heard_since(t) {
                p.heard();
            }
        } else if let Some(b) = p.batch() {
            let left = deadline.map_or(b, |d| d.saturating_duration_since(Instant::now()));
            let t = Instant::now();
            if let Some(r) = wait(cap, stop, left.min(b), p.out_fd(), false) {
                break r;
            }
            if stop.heard_since(t) {
                p.heard();
            }
        }
    };
    if !matches!(reason, EndReason::Count | EndReason::OutputClosed) {
        // Read it all, writing the spool out between rounds: one round
        // stops when the spool is full, and a small spool holds less
        // than the kernel's buffer, whose rest would be neither reported
        // nor counted lost. Bounded, so a storm that goes on while we
        // read cannot keep the agent here.
        for _ in 0..FINAL_ROUNDS {
            p.settle();
            if round(cap, &mut page, p)? == 0 {
                break;
            }
        }
    }
    Ok(reason)
}
