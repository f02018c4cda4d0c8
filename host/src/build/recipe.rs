//! How the agent is compiled and linked for one triple: static, with the
//! workspace's size-tuned `agent` profile, and for musl with the linker
//! flags that keep the aarch64 agent under its 400 KiB budget. The
//! numbers behind each choice are in docs/agent-size.md.

use super::Builder;

/// Drops the unwind tables at link time; see the file's own comment.
pub const DISCARD_EH_SCRIPT: &str = include_str!("discard-eh.ld");
pub const DISCARD_EH_FILE: &str = "discard-eh.ld";

/// The C cross linker of the static glibc armv7 fallback, and the
/// Debian package that has it.
pub const GNUEABIHF_LINKER: &str = "arm-linux-gnueabihf-gcc";
pub const GNUEABIHF_LINKER_PACKAGE: &str = "gcc-arm-linux-gnueabihf";
/// The C runtime and static libc that linker needs (crt1.o, crti.o,
/// libc.a): only a Recommends of the gcc package, so a machine that
/// installs without Recommends has the linker and cannot link.
pub const GNUEABIHF_LIBC_PACKAGE: &str = "libc6-dev-armhf-cross";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    pub triple: &'static str,
    /// `CARGO_TARGET_<TRIPLE>_LINKER`, when the builder must set it.
    pub linker: Option<&'static str>,
    pub rustflags: Vec<String>,
}

/// Whether `triple` links against glibc: only the armv7 fallback does.
pub fn is_glibc(triple: &str) -> bool {
    triple.contains("-gnu")
}

impl Recipe {
    /// `script` is the path of [`DISCARD_EH_SCRIPT`] as the linker will see it.
    pub fn new(triple: &'static str, builder: Builder, script: &str) -> Recipe {
        let flags = |f: &[&str]| f.iter().map(|s| s.to_string()).collect();
        if is_glibc(triple) {
            // crt-static makes a fully static glibc binary. The C cross
            // linker is needed for glibc's start files; cross's image has
            // its own. The unwind tables stay: glibc uses them
            // (pthread_cancel, backtrace), and 32-bit ARM has no budget.
            Recipe {
                triple,
                linker: (builder == Builder::Local).then_some(GNUEABIHF_LINKER),
                rustflags: flags(&["-C", "target-feature=+crt-static"]),
            }
        } else {
            // musl targets are static by default. rust-lld (shipped with
            // rustc) needs no C cross toolchain. --icf=all folds every
            // pair of identical functions, also those whose address is
            // taken (vtables, fn pointers): 2.1 KB over --icf=safe, and
            // safe here because nothing in the agent compares function
            // addresses (Rust does not promise them unique; the folds
            // it adds were listed and are all empty or identical-body
            // functions: musl's weak dummies, trait defaults, duplicate
            // generic copies). docs/agent-size.md has the list.
            Recipe {
                triple,
                linker: Some("rust-lld"),
                rustflags: flags(&[
                    "-C",
                    "link-arg=--icf=all",
                    "-C",
                    &format!("link-arg=-T{script}"),
                ]),
            }
        }
    }

    /// The environment that applies the recipe to `cargo build` (and
    /// through cross, which forwards `CARGO_*` variables). The encoded
    /// flags beat any RUSTFLAGS of the user's, which are meant for the
    /// host (e.g. `-C target-cpu=native`).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            "CARGO_ENCODED_RUSTFLAGS".to_string(),
            self.rustflags.join("\x1f"),
        )];
        if let Some(l) = self.linker {
            let var = format!(
                "CARGO_TARGET_{}_LINKER",
                self.triple.to_uppercase().replace('-', "_")
            );
            env.push((var, l.to_string()));
        }
        env
    }

    /// What goes into the cache key: everything but where the script lives.
    pub fn describe(&self) -> String {
        format!(
            "linker={:?} rustflags={:?} script={DISCARD_EH_SCRIPT}",
            self.linker, self.rustflags
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn musl_links_with_rust_lld_and_the_script() {
        let r = Recipe::new(
            "aarch64-unknown-linux-musl",
            Builder::Local,
            "/c/discard-eh.ld",
        );
        let env = r.env();
        assert!(env.contains(&(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER".into(),
            "rust-lld".into()
        )));
        assert!(env.contains(&(
            "CARGO_ENCODED_RUSTFLAGS".into(),
            "-C\x1flink-arg=--icf=all\x1f-C\x1flink-arg=-T/c/discard-eh.ld".into()
        )));
        assert_eq!(
            r,
            Recipe::new(
                "aarch64-unknown-linux-musl",
                Builder::Cross,
                "/c/discard-eh.ld"
            )
        );
    }

    #[test]
    fn the_glibc_fallback_is_crt_static_with_the_gcc_linker_locally() {
        let r = Recipe::new("armv7-unknown-linux-gnueabihf", Builder::Local, "x");
        assert_eq!(r.linker, Some("arm-linux-gnueabihf-gcc"));
        assert_eq!(r.rustflags, ["-C", "target-feature=+crt-static"]);
        assert!(r.env().contains(&(
            "CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER".into(),
            "arm-linux-gnueabihf-gcc".into()
        )));
        // cross's image brings and configures its own.
        assert_eq!(
            Recipe::new("armv7-unknown-linux-gnueabihf", Builder::Cross, "x").linker,
            None
        );
    }

    #[test]
    fn the_script_discards_unwind_tables_without_replacing_the_layout() {
        assert!(DISCARD_EH_SCRIPT.contains("/DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr)"));
        assert!(DISCARD_EH_SCRIPT
            .trim_end()
            .ends_with("INSERT AFTER .text;"));
    }
}
