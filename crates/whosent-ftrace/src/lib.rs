//! ftrace parsing for whosent, free of I/O: the callers read tracefs
//! (the agent) or files (the host's `parse`) and hand bytes or a
//! `BufRead` to these parsers, so everything here is tested on the host
//! against recorded fixtures from real kernels (`tests/fixtures/`).

pub mod detect;
pub mod fate_events;
pub mod filter;
pub mod format;
pub mod header_page;
pub mod page;
pub mod signal_generate;
pub mod task_events;
pub mod text;
#[cfg(feature = "tracedat")]
pub mod tracedat;
pub mod uid_events;

/// The recorded format files of `tests/fixtures/format`, for the
/// decoders' unit tests.
#[cfg(test)]
pub(crate) fn host_format(name: &str) -> format::EventFormat {
    let p = format!(
        "{}/../../tests/fixtures/format/host-6.18-{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    format::EventFormat::parse(std::fs::read(p).unwrap().as_slice()).unwrap()
}
