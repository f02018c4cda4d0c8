//! whosent-deploy: who sent that signal, on a board over SSH.

use std::io::Write;
use whosent_deploy::{app, cli, error};

/// The error line on stderr; a stderr that cannot take it changes
/// nothing (eprintln! would panic: exit 101 instead of 2).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn main() {
    let code = match cli::parse(std::env::args_os()).and_then(app::run) {
        Ok(code) => code,
        Err(e) => {
            say(&e.line());
            error::EXIT_STATUS
        }
    };
    std::process::exit(code);
}
