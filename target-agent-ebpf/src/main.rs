//! whosent-ebpf-agent: the eBPF agent that runs on the board.

use whosent_agent::args::{self, Parsed};
use whosent_agent::error::AgentError;
use whosent_proto::record::ErrorRec;

fn fail(e: &AgentError) -> ! {
    let mut s = String::new();
    ErrorRec {
        kind: e.kind.into(),
        message: e.message.clone(),
        help: e.help.clone(),
    }
    .encode(&mut s);
    print!("{s}");
    eprintln!(
        "whosent-ebpf-agent: error: {} (help: {})",
        e.message, e.help
    );
    std::process::exit(2)
}

fn main() {
    // --human is the eBPF agent's own: the ftrace agent left it to the
    // host for its size budget, which this agent does not have.
    let mut human = false;
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| {
            let h = a == "--human";
            human |= h;
            !h
        })
        .collect();
    let opts = match args::parse(argv) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            print!("{}", whosent_ebpf_agent::HELP);
            return;
        }
        Ok(Parsed::Version) => {
            println!("whosent-ebpf-agent {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Err(e) => fail(&e),
    };
    match whosent_ebpf_agent::run::run(opts, human) {
        Ok(0) => std::process::exit(1),
        Ok(_) => {}
        Err(e) => fail(&e),
    }
}
