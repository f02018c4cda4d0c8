//! `--backend stap`: the same question answered by a SystemTap module
//! instead of the ftrace agent.
//!
//! The module is cross-compiled here, once per (script template, kernel
//! release, arch, stap version): the query goes in as module parameters
//! when `staprun` loads it on the board, so one build serves every
//! query. The pieces, in the order a run uses them:
//! - [`flags`]: its command-line flags;
//! - [`params`]: the query as module parameters, and what only the host
//!   can filter;
//! - [`script`]: the template (`scripts/stap/whosent.stp`) and the
//!   script `stap-script` prints;
//! - [`tree`]: the board kernel's build tree, its release and arch;
//! - [`runtime`]: the SystemTap runtime, adapted to kernels it does not
//!   know yet (docs/stap-notes.md, section 2);
//! - [`build`]: `stap -p4` with progress, and the module cache;
//! - [`vermagic`]: the built module's `.modinfo`, checked against the
//!   board before anything is pushed;
//! - [`parse`]: the module's TAB-separated lines into whosent records;
//! - [`staprun`]: the board's staprun and the sh that unloads the
//!   module on every way out;
//! - [`lines`]: the module's lines into typed records;
//! - [`push`]: the module (and the bundle) on the board, and the check
//!   that it is unloaded at the end;
//! - [`backend`]: all of it as a [`crate::deploy::Backend`]; the flow
//!   itself (connect, probe, upload, stream) is [`crate::deploy`]'s.

pub mod backend;
pub mod build;
pub mod flags;
pub mod lines;
pub mod params;
pub mod parse;
pub mod push;
pub mod runtime;
pub mod script;
pub mod staprun;
pub mod tree;
pub mod vermagic;

use crate::error::HostError;
use std::path::PathBuf;

pub(crate) fn other(message: impl Into<String>, help: impl Into<String>) -> HostError {
    HostError::Other {
        message: message.into(),
        help: help.into(),
    }
}

/// `${WHOSENT_CACHE}/stap`, else `${XDG_CACHE_HOME:-~/.cache}/whosent/stap`
/// (as the agent cache): WHOSENT_CACHE is what the scripts in
/// scripts/stap honour, so the tree, runtime and stap caches are shared.
pub fn cache_dir() -> Result<PathBuf, HostError> {
    let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let root = std::env::var_os("WHOSENT_CACHE")
        .and_then(abs)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").and_then(abs).map(|p| p.join("whosent")))
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".cache/whosent"))
        })
        .ok_or_else(|| {
            other(
                "cannot tell where to cache SystemTap modules: neither WHOSENT_CACHE nor HOME is set",
                "set HOME, or WHOSENT_CACHE to a writable directory",
            )
        })?;
    Ok(root.join("stap"))
}

/// `s` as a shell word: as it is when that is safe, else quoted, so
/// that commands shown to the user read like commands.
pub(crate) fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_+=.,/:@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        crate::ssh::upload::quote(s)
    }
}
