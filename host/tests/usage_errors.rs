//! Issue #13, items 11 and 12: local mode checks what it runs, and
//! errors point the right way. Each test is named after what was found;
//! each runs whosent-deploy as a user does and asserts what they see:
//! exit 2 and one line that says what to do, without running anything.

use std::path::Path;
use std::process::{Command, Output};

const DEPLOY: &str = env!("CARGO_BIN_EXE_whosent-deploy");

fn deploy(args: &[&str]) -> Output {
    Command::new(DEPLOY)
        .args(args)
        .env_remove("WHOSENT_AGENT")
        .output()
        .unwrap()
}

/// Exit 2 and exactly one line on stderr, an error with a help line;
/// returns that line.
fn one_error_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line, got: {err}");
    assert!(err.starts_with("whosent-deploy: error: "), "{err}");
    assert!(err.contains("(help: "), "{err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    err.trim_end().to_string()
}

#[test]
fn local_agent_bin_ls_is_refused_by_its_elf_header() {
    let ls = "/bin/ls";
    let e = one_error_line(&deploy(&[
        "--host", "local", "--agent", ls, "--sig", "USR1",
    ]));
    // The same check as over SSH: ls is dynamically linked, so it is
    // refused before it runs (it used to run and complain about --stream).
    assert!(e.contains("/bin/ls is dynamically linked"), "{e}");
    assert!(!e.contains("unrecognized option"), "{e}");
    let o = Command::new(DEPLOY)
        .args(["--host", "local", "--sig", "USR1"])
        .env("WHOSENT_AGENT", ls)
        .output()
        .unwrap();
    assert!(one_error_line(&o).contains("/bin/ls is dynamically linked"));
    // Not an ELF at all.
    let e = one_error_line(&deploy(&["--host", "local", "--agent", "/etc/passwd"]));
    assert!(e.contains("/etc/passwd is not an ELF executable"), "{e}");
}

#[test]
fn ssh_only_flags_with_host_local_are_refused_not_ignored() {
    for (flags, name) in [
        (&["--target", "aarch64"][..], "--target"),
        (&["-p", "2222"], "-p/--port"),
        (&["-i", "/etc/passwd"], "-i/--identity"),
        (&["--keep"], "--keep"),
        (&["-l", "root"], "-l/--login"),
        (&["--known-hosts", "/dev/null"], "--known-hosts"),
    ] {
        // A bounded run, should the flag be ignored again.
        let mut a = vec!["--host", "local", "--sig", "USR1", "--duration", "0.3"];
        a.extend(flags);
        let e = one_error_line(&deploy(&a));
        assert!(
            e.contains(&format!("{name} means nothing with --host local")),
            "{flags:?}: {e}"
        );
    }
}

#[test]
fn duration_1e20_and_1e_10_fail_in_whosent_deploy_not_the_agent() {
    for (d, want) in [("1e20", "too long"), ("1e-10", "shorter than a nanosecond")] {
        let e = one_error_line(&deploy(&["--host", "local", "--duration", d]));
        assert!(e.contains("--duration ") && e.contains(want), "{d}: {e}");
        // The help is whosent-deploy's, not the agent's.
        assert!(!e.contains("whosent-agent"), "{e}");
    }
}

#[test]
fn sig_minus_9_with_a_space_says_write_sig_eq_minus_9() {
    let e = one_error_line(&deploy(&["--host", "local", "--sig", "-9"]));
    assert!(e.contains("write --sig=-9 or --sig 9"), "{e}");
    // And the spelling it suggests is taken: it reaches the usual
    // checks (here --duration 0), not a signal error.
    let e = one_error_line(&deploy(&["--host", "local", "--sig=-9", "--duration", "0"]));
    assert!(e.contains("--duration must be a positive"), "{e}");
}

#[test]
fn parse_of_a_directory_exits_2_and_names_it() {
    let dir = std::env::temp_dir();
    let e = one_error_line(&deploy(&["parse", dir.to_str().unwrap()]));
    assert!(e.contains("is a directory, not a trace file"), "{e}");
    assert!(e.contains("give a file in it"), "{e}");
}

#[test]
fn parse_of_bin_ls_says_not_a_trace_this_tool_reads() {
    let e = one_error_line(&deploy(&["parse", "/bin/ls"]));
    assert!(
        e.contains("not a trace this tool reads: /bin/ls is an ELF file"),
        "{e}"
    );
    // From stdin too.
    let o = Command::new(DEPLOY)
        .args(["parse", "-"])
        .stdin(std::fs::File::open("/bin/ls").unwrap())
        .output()
        .unwrap();
    assert!(one_error_line(&o).contains("not a trace this tool reads: stdin"));
}

#[test]
fn identity_that_is_a_directory_is_refused_before_connecting() {
    let dir = std::env::temp_dir();
    let d = dir.to_str().unwrap();
    // Port 9 on loopback refuses: had it connected, the error would say so.
    let e = one_error_line(&deploy(&["--host", "127.0.0.1", "-p", "9", "-i", d]));
    assert!(
        e.contains(&format!("-i {d}: a directory, not a key file")),
        "{e}"
    );
    assert!(
        e.contains(&Path::new(d).join("id_ed25519").display().to_string()),
        "{e}"
    );
    let e = one_error_line(&deploy(&[
        "doctor",
        "--host",
        "127.0.0.1",
        "-p",
        "9",
        "-i",
        d,
    ]));
    assert!(e.contains("a directory, not a key file"), "{e}");
    let e = one_error_line(&deploy(&[
        "--host",
        "127.0.0.1",
        "-p",
        "9",
        "-i",
        "/nonexistent/key",
    ]));
    assert!(e.contains("-i /nonexistent/key: No such file"), "{e}");
}

#[test]
fn comm_with_a_newline_is_refused_in_one_line() {
    let e = one_error_line(&deploy(&[
        "--host",
        "local",
        "--comm",
        "a\nb",
        "--duration",
        "0.3",
    ]));
    assert!(
        e.contains("--comm: a command name to match cannot hold a line break"),
        "{e}"
    );
}
