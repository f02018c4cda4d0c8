//! `cargo run -p whosent-audit --example dump FILE [--json]`: the
//! records a log gives, to look at while working on the parser.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: dump FILE [--json]");
    let json = args.next().as_deref() == Some("--json");
    let text = std::fs::read(&path).expect("cannot read the file");
    for item in whosent_audit::parse_all(&text) {
        match item {
            Ok(s) if json => {
                let mut o = String::new();
                s.encode(&mut o);
                print!("{o}");
            }
            Ok(s) => println!("{}", s.human_line()),
            Err(e) => println!("warning: {e} (help: {})", e.help()),
        }
    }
}
