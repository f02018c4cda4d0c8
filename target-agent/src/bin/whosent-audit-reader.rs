//! The board side of `--backend audit` (whosent_agent::audit): reads
//! the kernel's audit records for whosent's own rules, and removes them
//! on every way out. `--list-rules` prints the kernel's rules instead.
fn main() {
    let code = match std::env::args().nth(1).as_deref() {
        None => whosent_agent::audit::run(),
        Some("--list-rules") => whosent_agent::audit::list_rules(),
        Some(a) => {
            eprintln!("whosent-audit-reader: error: unknown argument {a:?} (help: run it with no argument, or --list-rules)");
            2
        }
    };
    std::process::exit(code);
}
