//! whosent-deploy: who sent that signal, on a board over SSH.

use clap::Parser;
use std::io::IsTerminal;
use whosent_deploy::{app, cli::Cli, error};

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
                eprintln!("{}", e.line());
                std::process::exit(error::EXIT_STATUS);
            }
            std::process::exit(0);
        }
        e.exit()
    });
    let code = match app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.line());
            error::EXIT_STATUS
        }
    };
    std::process::exit(code);
}
