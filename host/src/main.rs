//! whosent-deploy: who sent that signal, on a board over SSH.

use clap::Parser;
use whosent_deploy::{app, cli::Cli};

fn main() {
    let cli = Cli::parse();
    let code = match app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("whosent-deploy: error: {e} (help: {})", e.help());
            2
        }
    };
    std::process::exit(code);
}
