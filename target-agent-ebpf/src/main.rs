//! whosent-ebpf-agent: the eBPF agent that runs on the board.

use whosent_agent::args::{self, Parsed};
use whosent_agent::error::AgentError;
use whosent_proto::record::ErrorRec;

/// Writes to stdout; a failed write (a full disk, a closed pipe) is an
/// error with exit 2, never a panic as `print!` gives (issue #13, item 5).
fn out(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(s.as_bytes()).and_then(|()| o.flush()) {
        let _ = writeln!(
            std::io::stderr(),
            "whosent-ebpf-agent: error: cannot write to stdout: {e}"
        );
        std::process::exit(2);
    }
}

fn fail(e: &AgentError) -> ! {
    let mut s = String::new();
    ErrorRec {
        kind: e.kind.into(),
        message: e.message.clone(),
        help: e.help.clone(),
    }
    .encode(&mut s);
    out(&s);
    eprintln!(
        "whosent-ebpf-agent: error: {} (help: {})",
        e.message, e.help
    );
    std::process::exit(2)
}

fn main() {
    // --human, --until-exit and --fold are the eBPF agent's own: the
    // ftrace agent left them to the host for its size budget, which this
    // agent does not have.
    let (mut human, mut until_exit, mut fold) = (false, false, false);
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| {
            human |= a == "--human";
            until_exit |= a == "--until-exit";
            fold |= a == "--fold";
            a != "--human" && a != "--until-exit" && a != "--fold"
        })
        .collect();
    let opts = match args::parse(argv) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            out(whosent_ebpf_agent::HELP);
            return;
        }
        Ok(Parsed::Version) => {
            out(&format!(
                "whosent-ebpf-agent {}\n",
                env!("CARGO_PKG_VERSION")
            ));
            return;
        }
        Err(e) => fail(&e),
    };
    if until_exit && opts.query.pids.is_empty() {
        fail(&AgentError::usage(
            "--until-exit needs --pid: it stops when those processes have ended",
        ));
    }
    match whosent_ebpf_agent::run::run(opts, human, until_exit, fold) {
        Ok(0) => std::process::exit(1),
        Ok(_) => {}
        Err(e) => fail(&e),
    }
}
