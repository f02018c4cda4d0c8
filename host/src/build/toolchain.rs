//! The local Rust toolchain: which compiler builds the agent, and
//! whether it has the standard library for a target triple, adding it
//! with `rustup target add` when it has not.

use crate::error::HostError;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Names the rustup binary; tests point it at a fake one that cannot
/// add targets.
pub const RUSTUP_ENV: &str = "WHOSENT_RUSTUP";

pub struct Toolchain {
    /// The cargo that runs the build: the one running us, if any.
    pub cargo: OsString,
    rustc: OsString,
    rustup: OsString,
    /// Where rustup and rustc run, so that they pick the toolchain the
    /// workspace asks for (rust-toolchain files, overrides).
    dir: PathBuf,
}

/// Why a target's standard library is not there.
#[derive(Debug)]
pub struct Unavailable {
    pub triple: String,
    pub reason: String,
}

impl Unavailable {
    pub fn into_error(self) -> HostError {
        HostError::Other {
            message: format!(
                "the Rust target {} is not installed, and {}",
                self.triple, self.reason
            ),
            help: format!(
                "run `rustup target add {}` yourself and look at its error, use --builder cross, \
                 or pass --agent PATH with a prebuilt static agent",
                self.triple
            ),
        }
    }
}

fn var(name: &str, default: &str) -> OsString {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into())
}

/// Why a command failed, in one line: rustup's `error:` line with the
/// last of its causes ("… status code: 404"), or the last line of
/// stderr, or the exit status.
pub fn last_words(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Stack backtrace"))
        .filter(|l| !l.is_empty())
        .collect();
    let error = lines
        .iter()
        .find_map(|l| l.strip_prefix("error:"))
        .map(str::trim);
    let cause = lines
        .iter()
        .skip_while(|l| **l != "Caused by:")
        .skip(1)
        .last()
        .map(|l| {
            l.split_once(": ")
                .filter(|(n, _)| n.parse::<u32>().is_ok())
                .map_or(*l, |(_, c)| c)
        });
    match (error, cause, lines.last()) {
        (Some(e), Some(c), _) => format!("{e}: {c}"),
        (Some(e), None, _) => e.to_string(),
        (None, _, Some(l)) => l.to_string(),
        (None, _, None) => format!("it exited with {}", o.status),
    }
}

/// `name` found on PATH, as a shell would run it.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Toolchain {
    pub fn new(workspace: &Path) -> Toolchain {
        Toolchain {
            cargo: var("CARGO", "cargo"),
            rustc: var("RUSTC", "rustc"),
            rustup: var(RUSTUP_ENV, "rustup"),
            dir: workspace.to_path_buf(),
        }
    }

    fn run(&self, program: &OsString, args: &[&str]) -> io::Result<Output> {
        // No backtraces from rustup's own errors: one line is wanted.
        Command::new(program)
            .args(args)
            .current_dir(&self.dir)
            .env_remove("RUST_BACKTRACE")
            .output()
    }

    /// `rustc -vV`: part of the cache key, since another compiler makes
    /// another binary.
    pub fn rustc_version(&self) -> Result<String, HostError> {
        let help = "install Rust with rustup (https://rustup.rs), or pass --agent PATH with a prebuilt static agent";
        let rustc = self.rustc.to_string_lossy();
        match self.run(&self.rustc, &["-vV"]) {
            Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
            Ok(o) => Err(HostError::Other {
                message: format!("`{rustc} -vV` failed: {}", last_words(&o)),
                help: help.into(),
            }),
            Err(e) => Err(HostError::Other {
                message: format!("cannot run {rustc}: {e}"),
                help: help.into(),
            }),
        }
    }

    /// Whether the compiler's sysroot has the standard library for
    /// `triple`: the check when there is no rustup to ask.
    fn in_sysroot(&self, triple: &str) -> bool {
        let Ok(o) = self.run(&self.rustc, &["--print", "sysroot"]) else {
            return false;
        };
        let sysroot = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        o.status.success()
            && sysroot
                .join("lib/rustlib")
                .join(triple)
                .join("lib")
                .is_dir()
    }

    /// Makes sure the standard library for `triple` is installed,
    /// running `rustup target add` (and saying so) when it is not.
    pub fn ensure_target(&self, triple: &str) -> Result<(), Unavailable> {
        let rustup = self.rustup.to_string_lossy().into_owned();
        let unavailable = |reason: String| Unavailable {
            triple: triple.into(),
            reason,
        };
        let listed = |o: &Output| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == triple)
        };
        match self.run(&self.rustup, &["target", "list", "--installed"]) {
            Ok(o) if o.status.success() && listed(&o) => return Ok(()),
            // A toolchain without rustup (a distribution's rust) may
            // still have the target.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return if self.in_sysroot(triple) {
                    Ok(())
                } else {
                    Err(unavailable(format!(
                        "there is no rustup to add it ({rustup} was not found)"
                    )))
                };
            }
            // Not installed, or rustup cannot even list targets: adding
            // it either works or fails with rustup's reason.
            _ => {}
        }
        say!("whosent: the Rust target {triple} is not installed; running `rustup target add {triple}`");
        match self.run(&self.rustup, &["target", "add", triple]) {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(unavailable(format!(
                "`rustup target add {triple}` failed: {}",
                last_words(&o)
            ))),
            Err(e) => Err(unavailable(format!(
                "`rustup target add {triple}` could not run: {e}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn failed(stderr: &str) -> Output {
        Output {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn rustups_error_and_its_root_cause_make_one_line() {
        let o = failed(
            "info: downloading component rust-std\ninfo: rolling back changes\n\
             error: component download failed for rust-std-armv7-unknown-linux-musleabihf\n\nCaused by:\n    \
             0: could not download file from 'https://static.rust-lang.org/dist/x.tar.xz'\n    \
             1: http request returned an unsuccessful status code: 404\n\nStack backtrace:\n   0: anyhow\n  15: <unknown>\n",
        );
        assert_eq!(
            last_words(&o),
            "component download failed for rust-std-armv7-unknown-linux-musleabihf: \
             http request returned an unsuccessful status code: 404"
        );
        assert_eq!(
            last_words(&failed("error: toolchain 'x' is not installed\n")),
            "toolchain 'x' is not installed"
        );
        assert_eq!(
            last_words(&failed("something\nwent wrong\n\n")),
            "went wrong"
        );
        assert_eq!(last_words(&failed("")), "it exited with exit status: 1");
    }
}
