//! whosent-deploy: who sent that signal, on a board over SSH.

use clap::Parser;
use whosent_deploy::{app, cli::Cli, error};

fn main() {
    let cli = Cli::parse();
    let code = match app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.line());
            error::EXIT_STATUS
        }
    };
    std::process::exit(code);
}
