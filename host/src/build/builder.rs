//! The two ways to run the build: the local Rust toolchain (default), or
//! `cross`, which runs the same cargo command in a container configured
//! by the workspace's Cross.toml.

use super::recipe::Recipe;
use super::toolchain::{find_in_path, last_words, Toolchain};
use crate::error::HostError;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// Cross.toml mounts the directory named by this variable into the
/// container at the same path, so the linker script is found there too.
pub const LINK_DIR_ENV: &str = "WHOSENT_AGENT_LINK_DIR";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    Local,
    Cross,
}

impl Builder {
    pub fn parse(s: &str) -> Result<Builder, HostError> {
        match s {
            "local" => Ok(Builder::Local),
            "cross" => Ok(Builder::Cross),
            _ => Err(HostError::Usage(format!(
                "unknown builder '{s}': use `local` (the Rust toolchain here) or `cross`"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Builder::Local => "local",
            Builder::Cross => "cross",
        }
    }
}

fn cross_error(message: String, help: &str) -> HostError {
    HostError::Other {
        message,
        help: help.into(),
    }
}

/// Checks that `cross` and a container engine that answers are there,
/// so that a missing one is a one-line error and not a page of cross's.
pub fn check_cross() -> Result<(), HostError> {
    let instead = "or use the default --builder local, which needs no containers";
    match Command::new("cross").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Err(cross_error(format!("`cross --version` failed: {}", last_words(&o)), instead)),
        Err(_) => {
            return Err(cross_error(
                "--builder cross needs `cross`, which is not installed (not found on PATH)".into(),
                &format!("install it with `cargo install cross --git https://github.com/cross-rs/cross`, {instead}"),
            ))
        }
    }
    // cross uses CROSS_CONTAINER_ENGINE, else docker, else podman.
    let chosen = std::env::var("CROSS_CONTAINER_ENGINE")
        .ok()
        .filter(|e| !e.is_empty());
    let candidates = chosen.map_or_else(
        || vec!["docker".to_string(), "podman".to_string()],
        |e| vec![e],
    );
    let Some(engine) = candidates
        .iter()
        .find(|e| find_in_path(e).is_some() || Path::new(e).is_file())
    else {
        return Err(cross_error(
            format!(
                "--builder cross needs a container engine ({}), and none is installed",
                candidates.join(" or ")
            ),
            &format!("install docker or podman, {instead}"),
        ));
    };
    match Command::new(engine).arg("info").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(cross_error(
            format!("--builder cross needs a working container engine, but `{engine} info` failed: {}", last_words(&o)),
            &format!("start it (e.g. `systemctl start {engine}`) or set CROSS_CONTAINER_ENGINE, {instead}"),
        )),
        Err(e) => Err(cross_error(format!("--builder cross: cannot run `{engine} info`: {e}"), instead)),
    }
}

/// The build command: `cargo build` (or `cross build`) of the agent
/// `package` with the `agent` profile, in `target_dir`, with the
/// recipe's environment.
pub fn command(
    package: &str,
    builder: Builder,
    tc: &Toolchain,
    workspace: &Path,
    recipe: &Recipe,
    target_dir: &Path,
    link_dir: &Path,
) -> Command {
    let program: OsString = match builder {
        Builder::Local => tc.cargo.clone(),
        Builder::Cross => "cross".into(),
    };
    let mut c = Command::new(program);
    c.current_dir(workspace)
        .args([
            "build",
            "-p",
            package,
            "--profile",
            "agent",
            "--target",
            recipe.triple,
            "--target-dir",
        ])
        .arg(target_dir)
        .envs(recipe.env())
        .env(LINK_DIR_ENV, link_dir);
    // Flags and a target dir meant for the user's own builds would
    // override the recipe or share its lock.
    for v in [
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        c.env_remove(v);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_parse() {
        assert_eq!(Builder::parse("local").unwrap(), Builder::Local);
        assert_eq!(Builder::parse("cross").unwrap(), Builder::Cross);
        let e = Builder::parse("docker").unwrap_err().to_string();
        assert!(
            e.contains("'docker'") && e.contains("local") && e.contains("cross"),
            "{e}"
        );
    }
}
