//! The board side of `--backend audit` (whosent_agent::audit): reads
//! the kernel's audit records for whosent's own rules, and removes them
//! on every way out. `--list-rules` prints the kernel's rules instead.
//!
//!   whosent-audit-reader [--sig N] [--sender-pid PID]   (filters set in the rules)
//!   whosent-audit-reader --list-rules

// eprintln! and println! panic when the write fails, and the agent's
// panic aborts past the drops that clean up: see error::note.
#![deny(clippy::print_stderr, clippy::print_stdout)]

use whosent_agent::audit::{self, rules::Filter};

fn usage(msg: &str) -> ! {
    whosent_agent::note!("whosent-audit-reader: error: {msg} (help: whosent-audit-reader [--sig N] [--sender-pid PID] | --list-rules)");
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut f = Filter::default();
    while let Some(a) = args.next() {
        let mut num = || -> u32 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{a} needs a number")))
        };
        match a.as_str() {
            "--list-rules" => std::process::exit(audit::list_rules()),
            "--sig" => f.sig = Some(num()),
            "--sender-pid" => f.sender_pid = Some(num()),
            _ => usage(&format!("unknown argument {a:?}")),
        }
    }
    std::process::exit(audit::run(f));
}
