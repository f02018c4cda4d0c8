//! Progress of long steps (uploads) on stderr, only when a person
//! watches it: scripts and tests see no progress at all.

use std::io::{self, IsTerminal, Write};

/// A callback for (done, total) that draws `whosent: LABEL  NN%`.
pub fn bar(label: &str) -> impl FnMut(u64, u64) {
    let tty = io::stderr().is_terminal();
    let label = label.to_string();
    move |sent, total| {
        if tty && total > 0 {
            eprint!("\rwhosent: {label} {:>3}%", sent * 100 / total);
            if sent >= total {
                eprintln!();
            }
            let _ = io::stderr().flush();
        }
    }
}
