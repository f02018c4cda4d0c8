//! whosent-deploy: who sent that signal, on a board over SSH.

use clap::Parser;
use std::io::{IsTerminal, Write};
use whosent_deploy::{app, cli::Cli, error};

/// The error line on stderr; a stderr that cannot take it changes
/// nothing (eprintln! would panic: exit 101 instead of 2).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        // --help and --version go to stdout: checked, as every print
        // path is (clap's own exit ignores a failed write).
        if !e.use_stderr() {
            let text = e.render();
            let out = if std::io::stdout().is_terminal() {
                text.ansi().to_string()
            } else {
                text.to_string()
            };
            if let Err(e) = whosent_deploy::stdout::print(out.as_bytes()) {
                say(&e.line());
                std::process::exit(error::EXIT_STATUS);
            }
            std::process::exit(0);
        }
        e.exit()
    });
    let code = match app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            say(&e.line());
            error::EXIT_STATUS
        }
    };
    std::process::exit(code);
}
