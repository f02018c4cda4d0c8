//! whosent-agent: the static program that runs on the board.

use whosent_agent::args::{self, Parsed, HELP};
use whosent_agent::error::AgentError;
use whosent_proto::record::ErrorRec;

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
    print!("{s}");
    eprintln!("whosent-agent: error: {} (help: {})", e.message, e.help);
    std::process::exit(2)
}

fn main() {
    let opts = match args::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            print!("{HELP}");
            return;
        }
        Ok(Parsed::Version) => {
            println!("whosent-agent {}", env!("CARGO_PKG_VERSION"));
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
