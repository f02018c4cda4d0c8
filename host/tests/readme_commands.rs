//! Every `whosent-deploy …` example in the README and docs must parse
//! with the real CLI, so the docs cannot drift from the flags.

use clap::Parser;
use whosent_deploy::cli::Cli;

fn examples() -> Vec<(String, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut files = vec![format!("{root}/README.md")];
    for e in std::fs::read_dir(format!("{root}/docs")).unwrap().flatten() {
        files.push(e.path().display().to_string());
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut in_code = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if !in_code {
                continue;
            }
            let line = line.trim().trim_start_matches("$ ");
            let line = line.strip_prefix("target/release/").unwrap_or(line);
            let Some(rest) = line.strip_prefix("whosent-deploy ") else {
                continue;
            };
            // Drop trailing comments and placeholders' shell syntax.
            let cmd = rest.split("  #").next().unwrap().trim();
            if cmd.contains('[') || cmd.contains('|') || cmd.contains("...") || cmd.contains('…')
            {
                continue; // a synopsis, not an example
            }
            out.push((f.clone(), cmd.to_string()));
        }
    }
    out
}

#[test]
fn documented_commands_parse() {
    let ex = examples();
    assert!(ex.len() >= 3, "found only {ex:?}");
    for (file, cmd) in ex {
        let argv = std::iter::once("whosent-deploy").chain(cmd.split_whitespace());
        if let Err(e) = Cli::try_parse_from(argv.clone()) {
            // --help and --version "fail" with their own output.
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) {
                continue;
            }
            panic!("{file}: `whosent-deploy {cmd}` does not parse:\n{e}");
        }
        // And passes the checks clap cannot express (`--sig -9`, SSH
        // flags with `--host local`); clap's own errors cannot happen
        // here, having parsed above.
        if let Err(e) = whosent_deploy::cli::parse(argv.map(Into::into)) {
            panic!("{file}: `whosent-deploy {cmd}` is refused: {}", e.line());
        }
    }
}

#[test]
fn help_teaches_the_main_flags() {
    let help = Cli::try_parse_from(["whosent-deploy", "--help"])
        .unwrap_err()
        .to_string();
    for needle in [
        "--host",
        "--hosts",
        "Several boards",
        "2 if every board failed",
        "--sig",
        "--pid",
        "--accept-new-host-key",
        "--sudo",
        "--json",
        "Exit status",
        "doctor",
        "Examples",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

#[test]
fn completions_and_man_page_come_from_the_cli() {
    let deploy = env!("CARGO_BIN_EXE_whosent-deploy");
    let out = std::process::Command::new(deploy)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let bash = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    for flag in ["--accept-new-host-key", "--sender-comm", "doctor", "parse"] {
        assert!(bash.contains(flag), "bash completion lacks {flag}");
    }
    let out = std::process::Command::new(deploy)
        .arg("man")
        .output()
        .unwrap();
    let man = String::from_utf8(out.stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH"),
        "not roff: {}",
        &man[..80.min(man.len())]
    );
    assert!(man.contains("whosent\\-deploy") && man.contains("known_hosts"));
    let out = std::process::Command::new(deploy)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown shell 'tcsh'"));
}
