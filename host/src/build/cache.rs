//! Where built agents are kept, and the key that says whether one is
//! still good: a hash of everything that goes into the binary (the
//! agent's sources and lock file, the target triple, the builder, the
//! compiler's version and the build recipe). Same key, same agent; so
//! the deploy path (#4) rebuilds only when something changed.

use sha2::{Digest, Sha256};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What the agents are built from, relative to the workspace root: every
/// crate of the workspace they link (a test checks the list against the
/// manifests; the analysis and stream crates were once missing, and an
/// agent built before a change to them was reused), and the eBPF agent,
/// which links the ftrace agent's library. One list for both agents; the
/// key also names the agent ([`super::Agent`]).
pub const SOURCES: [&str; 9] = [
    "Cargo.toml",
    "Cargo.lock",
    "target-agent",
    "target-agent-ebpf",
    "crates/whosent-proto",
    "crates/whosent-ftrace",
    "crates/whosent-stream",
    "crates/whosent-analysis",
    // The audit reader, built with the agent, links it.
    "crates/whosent-audit",
];

/// `${XDG_CACHE_HOME:-~/.cache}/whosent`. The XDG spec says a relative
/// XDG_CACHE_HOME is invalid and must be ignored.
pub fn root() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".cache"))
    })?;
    Some(base.join("whosent"))
}

/// The agent `bin` cached under `key`: `<root>/agents/<target>-<key>/<bin>`.
pub fn entry(root: &Path, target: &str, key: &str, bin: &str) -> PathBuf {
    root.join("agents")
        .join(format!("{target}-{key}"))
        .join(bin)
}

/// Cargo's target directory for the agents of the checkout at
/// `workspace`: `<root>/<kind>-<16 hex of its path>`. One per checkout:
/// in a target directory shared by two checkouts, cargo finds the second
/// one's units fresh (their fingerprints are its own) and so never links
/// its binary again, leaving at `<triple>/agent/whosent-agent` the one
/// the other checkout linked last, which was then stored under the
/// second one's key (seen with two worktrees of different agents).
pub fn target_dir(root: &Path, kind: &str, workspace: &Path) -> PathBuf {
    let path = workspace
        .canonicalize()
        .unwrap_or_else(|_| workspace.to_path_buf());
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    root.join(format!("{kind}-{hex}"))
}

/// Every file under the source paths, sorted, with build output and
/// hidden files (editor swap files, `.git`) left out.
pub fn source_files(workspace: &Path) -> io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if e.file_type()?.is_dir() {
                walk(&e.path(), out)?;
            } else {
                out.push(e.path());
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for s in SOURCES {
        let p = workspace.join(s);
        if p.is_dir() {
            walk(&p, &mut files)?;
        } else if p.exists() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// The cache key: 16 hex digits of a SHA-256 over `inputs` (name and
/// value pairs: triple, builder, rustc version, recipe) and over each
/// source file's path and content.
pub fn key(workspace: &Path, inputs: &[(&str, &[u8])]) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut field = |name: &[u8], value: &[u8]| {
        // Lengths first, so that no two different inputs hash alike.
        for part in [name, value] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
    };
    for (name, value) in inputs {
        field(name.as_bytes(), value);
    }
    for f in source_files(workspace)? {
        let rel = f.strip_prefix(workspace).unwrap_or(&f);
        field(rel.to_string_lossy().as_bytes(), &fs::read(&f)?);
    }
    let digest = h.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// Puts a built agent into the cache atomically (copy to a temporary
/// name, then rename), so that a concurrent reader never sees half a file.
pub fn store(built: &Path, dest: &Path) -> io::Result<()> {
    let dir = dest.parent().expect("a cache entry has a directory");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".whosent-agent.{}", std::process::id()));
    fs::copy(built, &tmp)?;
    fs::rename(&tmp, dest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_checkout_builds_in_a_target_dir_of_its_own() {
        let root = std::path::Path::new("/cache/whosent");
        let a = super::target_dir(root, "target", std::path::Path::new("/work/a"));
        let b = super::target_dir(root, "target", std::path::Path::new("/work/b"));
        assert_ne!(a, b);
        assert_eq!(
            a,
            super::target_dir(root, "target", std::path::Path::new("/work/a"))
        );
        assert!(a.starts_with(root));
        let cross = super::target_dir(root, "target-cross", std::path::Path::new("/work/a"));
        assert_ne!(a, cross);
    }

    use super::*;

    /// The workspace crates `dir`'s manifest depends on (`whosent-*`
    /// lines of its `[dependencies]`), by directory.
    fn deps(ws: &Path, dir: &str) -> Vec<String> {
        let m = fs::read_to_string(ws.join(dir).join("Cargo.toml")).unwrap();
        let deps = m.split("[dependencies]").nth(1).unwrap_or("");
        let deps = deps.split("\n[").next().unwrap_or("");
        deps.lines()
            .filter_map(|l| l.trim().strip_prefix("whosent-"))
            .map(|l| {
                format!(
                    "crates/whosent-{}",
                    l.split(['.', ' ', '=']).next().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn the_key_covers_every_crate_the_agent_links() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut todo = vec!["target-agent".to_string()];
        let mut seen = Vec::new();
        while let Some(d) = todo.pop() {
            for dep in deps(&ws, &d) {
                if !seen.contains(&dep) {
                    seen.push(dep.clone());
                    todo.push(dep);
                }
            }
        }
        assert!(seen.len() >= 4, "{seen:?}");
        for d in &seen {
            assert!(
                SOURCES.contains(&d.as_str()),
                "{d} is linked by the agent but not in the cache key"
            );
        }
    }

    fn tree(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("whosent-cache-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        for f in [
            "Cargo.toml",
            "target-agent/src/main.rs",
            "crates/whosent-proto/src/lib.rs",
        ] {
            fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            fs::write(d.join(f), f).unwrap();
        }
        d
    }

    #[test]
    fn the_key_follows_sources_and_inputs_but_not_build_output() {
        let d = tree("key");
        let k = |inputs: &[(&str, &[u8])]| key(&d, inputs).unwrap();
        let base = k(&[("triple", b"aarch64-unknown-linux-musl")]);
        assert_eq!(base.len(), 16);
        assert_eq!(base, k(&[("triple", b"aarch64-unknown-linux-musl")]));
        assert_ne!(base, k(&[("triple", b"x86_64-unknown-linux-musl")]));
        // Build output and hidden files do not count.
        fs::create_dir_all(d.join("target-agent/target")).unwrap();
        fs::write(d.join("target-agent/target/x"), "x").unwrap();
        fs::write(d.join("target-agent/src/.main.rs.swp"), "x").unwrap();
        assert_eq!(base, k(&[("triple", b"aarch64-unknown-linux-musl")]));
        // A source edit does.
        fs::write(d.join("target-agent/src/main.rs"), "changed").unwrap();
        assert_ne!(base, k(&[("triple", b"aarch64-unknown-linux-musl")]));
        // Other parts of the workspace do not.
        let after = k(&[("triple", b"aarch64-unknown-linux-musl")]);
        fs::create_dir_all(d.join("host/src")).unwrap();
        fs::write(d.join("host/src/main.rs"), "x").unwrap();
        assert_eq!(after, k(&[("triple", b"aarch64-unknown-linux-musl")]));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn storing_replaces_an_entry_whole() {
        let d = tree("store");
        let dest = entry(
            &d.join("cache"),
            "aarch64",
            "0123456789abcdef",
            "whosent-agent",
        );
        assert!(dest.ends_with("agents/aarch64-0123456789abcdef/whosent-agent"));
        store(&d.join("Cargo.toml"), &dest).unwrap();
        store(&d.join("target-agent/src/main.rs"), &dest).unwrap();
        assert_eq!(
            fs::read_to_string(&dest).unwrap(),
            "target-agent/src/main.rs"
        );
        assert_eq!(fs::read_dir(dest.parent().unwrap()).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }
}
