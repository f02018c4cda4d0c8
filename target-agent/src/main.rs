//! whosent-agent: the static program that runs on the board.

// eprintln! and println! panic when the write fails, and the agent's
// panic aborts past the drops that clean up: see error::note.
#![deny(clippy::print_stderr, clippy::print_stdout)]

use std::io::Write;
use whosent_agent::args::{self, Parsed, HELP};
use whosent_agent::error::AgentError;
use whosent_proto::record::ErrorRec;

/// Prints `text` on stdout; a failure (a full disk: `>/dev/full`) is an
/// error line and exit 2, never a panic (print! panics on it).
fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // The reader going away (`| head`) is no error.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            AgentError::output(e).say();
            std::process::exit(2)
        }
    }
}

fn fail(e: &AgentError) -> ! {
    // The JSON record lets the host show a typed error; stderr is for
    // a person at the board.
    let mut s = String::new();
    ErrorRec {
        kind: e.kind.into(),
        message: e.message.clone(),
        help: e.help.clone(),
    }
    .encode(&mut s);
    // Already failing: a stdout that cannot take the record changes
    // nothing, stderr says it all.
    let _ = std::io::stdout().write_all(s.as_bytes());
    e.say();
    std::process::exit(2)
}

fn main() {
    // The abort path's test (host/tests/cross_build.rs: no unwind tables,
    // yet a panic prints its message and aborts) needs a panic, and the
    // agent has none of its own to show any more.
    if std::env::var_os("WHOSENT_AGENT_PANIC").is_some() {
        panic!("WHOSENT_AGENT_PANIC is set");
    }
    let opts = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            print(HELP);
            return;
        }
        Ok(Parsed::Version) => {
            print(concat!("whosent-agent ", env!("CARGO_PKG_VERSION"), "\n"));
            return;
        }
        Err(e) => fail(&e),
    };
    match whosent_agent::run::run(opts) {
        Ok(0) => std::process::exit(1),
        Ok(_) => {}
        Err(e) => fail(&e),
    }
}
