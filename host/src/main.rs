//! whosent-deploy: who sent that signal, on a board over SSH.

use whosent_deploy::{app, cli, error};

fn main() {
    let code = match cli::parse(std::env::args_os()).and_then(app::run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.line());
            error::EXIT_STATUS
        }
    };
    std::process::exit(code);
}
