//! Progress of long steps (uploads, the stap build) on stderr, drawn by
//! indicatif, and only when a person watches stderr: scripts and tests
//! see the plain lines and no bars.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{self, IsTerminal};
use std::time::Duration;

/// Not for one board of several: their bars would draw over each
/// other, and the plain lines say which board they are about.
fn tty() -> bool {
    io::stderr().is_terminal() && !crate::fleet::tag::in_fleet()
}

/// A callback for (bytes done, total) that draws `whosent: LABEL [bar]`.
pub fn bar(label: &str) -> impl FnMut(u64, u64) {
    let pb = tty().then(|| {
        let style = ProgressStyle::with_template(
            "whosent: {msg} [{bar:30}] {bytes}/{total_bytes} {percent:>3}%",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        ProgressBar::new(0)
            .with_style(style)
            .with_message(label.to_string())
    });
    move |sent, total| {
        if let Some(pb) = &pb {
            pb.set_length(total);
            pb.set_position(sent);
            if sent >= total {
                pb.finish();
            }
        }
    }
}

/// A spinner with a message, for steps of unknown length; `None` when
/// nobody watches (the caller then prints plain lines now and then).
pub fn spinner(msg: &str) -> Option<ProgressBar> {
    tty().then(|| {
        let pb = ProgressBar::new_spinner()
            .with_style(
                ProgressStyle::with_template("whosent: {msg} {spinner}").expect("a valid template"),
            )
            .with_message(msg.to_string());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    })
}
