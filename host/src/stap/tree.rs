//! The board kernel's build tree (`--kernel-build DIR`, or
//! `--sysroot DIR` holding `lib/modules/RELEASE/build`): where it is,
//! which release and architecture it is for, and where its
//! `include/linux/task_work.h` lives.
//!
//! Debian splits a tree in two: the flavour's `build` directory (config,
//! generated headers, Module.symvers) and the shared `source` beside it
//! (`lib/modules/REL/source`, the -common package) with the rest of
//! `include/`, the tracepoint headers among them. stap finds `source`
//! only from the `…/lib/modules/REL/build` path, so that is the path to
//! give it (docs/stap-notes.md, "Pitfall: -r given the headers
//! directory itself").

use super::other;
use crate::build::Target as Arch;
use crate::error::HostError;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// What stap gets as `-r`.
    pub build: PathBuf,
    /// `UTS_RELEASE`, what `uname -r` says on that kernel and what the
    /// module's vermagic will say.
    pub release: String,
    pub arch: Arch,
}

const HINT: &str = "give --kernel-build the board kernel's build tree (lib/modules/RELEASE/build of \
its Yocto/Buildroot build or Debian headers); for Debian kernels scripts/stap-kernel-tree.sh RELEASE makes one";

/// Where the tree is, from the flags: `--kernel-build` as given, or
/// `--sysroot`'s `lib/modules/RELEASE/build` for the board's release
/// (known only once the board was probed, hence `release`).
pub fn locate(
    kernel_build: Option<&Path>,
    sysroot: Option<&Path>,
    release: Option<&str>,
) -> Result<PathBuf, HostError> {
    match (kernel_build, sysroot) {
        (Some(k), _) => {
            if !k.is_dir() {
                return Err(other(
                    format!("--kernel-build {}: no such directory", k.display()),
                    HINT,
                ));
            }
            Ok(k.to_path_buf())
        }
        (None, Some(s)) => {
            let modules = s.join("lib/modules");
            if !modules.is_dir() {
                return Err(other(
                    format!("--sysroot {}: it has no lib/modules", s.display()),
                    HINT,
                ));
            }
            let Some(rel) = release else {
                return Ok(modules);
            };
            let b = modules.join(rel).join("build");
            if !b.is_dir() {
                let have: Vec<String> = fs::read_dir(&modules)
                    .map(|d| {
                        d.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                return Err(other(
                    format!(
                        "--sysroot {}: no lib/modules/{rel}/build for the board's kernel {rel} (it has: {})",
                        s.display(),
                        if have.is_empty() { "none".into() } else { have.join(", ") }
                    ),
                    HINT,
                ));
            }
            Ok(b)
        }
        (None, None) => Err(HostError::Usage(
            "--backend stap needs the board kernel's build tree: --kernel-build DIR (or --sysroot DIR)"
                .into(),
        )),
    }
}

/// `#define UTS_RELEASE "6.1.0-56-arm64"` from include/generated/utsrelease.h.
/// Debian's include/config/kernel.release holds the package's upstream
/// version (6.1.192) instead, so it is only a fallback.
fn release_of(build: &Path) -> Option<String> {
    let uts = fs::read_to_string(build.join("include/generated/utsrelease.h")).ok();
    let from_uts = uts.as_deref().and_then(|t| {
        t.lines().find_map(|l| {
            let v = l.strip_prefix("#define UTS_RELEASE")?.trim();
            Some(v.trim_matches('"').to_string())
        })
    });
    from_uts
        .or_else(|| {
            fs::read_to_string(build.join("include/config/kernel.release"))
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|r| !r.is_empty())
}

/// From include/config/auto.conf (the kernel's own record of .config).
fn arch_of(build: &Path) -> Option<Arch> {
    let conf = fs::read_to_string(build.join("include/config/auto.conf"))
        .or_else(|_| fs::read_to_string(build.join(".config")))
        .ok()?;
    let on = |k: &str| conf.lines().any(|l| l.trim() == format!("{k}=y"));
    if on("CONFIG_ARM64") {
        Some(Arch::Aarch64)
    } else if on("CONFIG_ARM") {
        Some(Arch::Armv7)
    } else if on("CONFIG_X86_64") {
        Some(Arch::X86_64)
    } else {
        None
    }
}

impl Tree {
    /// Reads a tree's release and architecture.
    pub fn open(build: &Path) -> Result<Tree, HostError> {
        if !build.join("Makefile").is_file() {
            return Err(other(
                format!(
                    "{} is not a kernel build tree: it has no Makefile",
                    build.display()
                ),
                HINT,
            ));
        }
        let release = release_of(build).ok_or_else(|| {
            other(
                format!(
                    "{} has no include/generated/utsrelease.h or include/config/kernel.release: \
                     is it a configured and prepared build tree?",
                    build.display()
                ),
                HINT,
            )
        })?;
        let arch = arch_of(build).ok_or_else(|| {
            other(
                format!(
                    "cannot tell the architecture of {}: include/config/auto.conf sets none of \
                     CONFIG_ARM64, CONFIG_ARM, CONFIG_X86_64",
                    build.display()
                ),
                HINT,
            )
        })?;
        Ok(Tree {
            build: build.to_path_buf(),
            release,
            arch,
        })
    }

    /// The tree must be the board's kernel.
    pub fn check(&self, board_release: &str, board_arch: Arch) -> Result<(), HostError> {
        if self.release != board_release {
            return Err(other(
                format!(
                    "the kernel tree {} is for Linux {}, but the board runs {board_release}; \
                     a module built from it would not load there",
                    self.build.display(),
                    self.release
                ),
                format!(
                    "give --kernel-build the build tree of {board_release}, the board's `uname -r`"
                ),
            ));
        }
        if self.arch != board_arch {
            return Err(other(
                format!(
                    "the kernel tree {} is for {}, but the board is {}",
                    self.build.display(),
                    self.arch.name(),
                    board_arch.name()
                ),
                "give --kernel-build the build tree of the board's own kernel",
            ));
        }
        Ok(())
    }

    /// `include/linux/task_work.h`: in `source` beside a split tree,
    /// else in the tree itself.
    pub fn task_work_h(&self) -> Option<PathBuf> {
        let split = self
            .build
            .parent()
            .map(|p| p.join("source/include/linux/task_work.h"));
        split
            .into_iter()
            .chain([self.build.join("include/linux/task_work.h")])
            .find(|p| p.is_file())
    }

    /// The cross-compiler prefix for this arch; `CROSS_COMPILE` in the
    /// environment wins, as it does for kbuild.
    pub fn cross_compile(&self) -> String {
        if let Ok(c) = std::env::var("CROSS_COMPILE") {
            return c;
        }
        match self.arch {
            Arch::Aarch64 => "aarch64-linux-gnu-",
            Arch::Armv7 => "arm-linux-gnueabihf-",
            Arch::X86_64 => "x86_64-linux-gnu-",
        }
        .to_string()
    }

    /// stap's `-a`: the kernel's name for the arch.
    pub fn stap_arch(&self) -> &'static str {
        match self.arch {
            Arch::Aarch64 => "arm64",
            Arch::Armv7 => "arm",
            Arch::X86_64 => "x86_64",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, uts: Option<&str>, kr: &str, conf: &str) {
        fs::create_dir_all(dir.join("include/generated")).unwrap();
        fs::create_dir_all(dir.join("include/config")).unwrap();
        fs::write(dir.join("Makefile"), "include x\n").unwrap();
        if let Some(u) = uts {
            fs::write(
                dir.join("include/generated/utsrelease.h"),
                format!("#define UTS_RELEASE \"{u}\"\n"),
            )
            .unwrap();
        }
        fs::write(dir.join("include/config/kernel.release"), format!("{kr}\n")).unwrap();
        fs::write(dir.join("include/config/auto.conf"), conf).unwrap();
    }

    #[test]
    fn release_from_utsrelease_then_kernel_release() {
        let d = std::env::temp_dir().join(format!("whosent-tree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let b = d.join("lib/modules/6.1.0-56-arm64/build");
        // Debian's kernel.release is the upstream version.
        fake(
            &b,
            Some("6.1.0-56-arm64"),
            "6.1.192",
            "CONFIG_64BIT=y\nCONFIG_ARM64=y\n",
        );
        let t = Tree::open(&b).unwrap();
        assert_eq!(
            (t.release.as_str(), t.arch),
            ("6.1.0-56-arm64", Arch::Aarch64)
        );
        assert_eq!(t.stap_arch(), "arm64");
        t.check("6.1.0-56-arm64", Arch::Aarch64).unwrap();
        let e = t.check("6.1.0-57-arm64", Arch::Aarch64).unwrap_err();
        assert!(
            e.to_string()
                .contains("is for Linux 6.1.0-56-arm64, but the board runs 6.1.0-57-arm64"),
            "{e}"
        );
        assert!(t.check("6.1.0-56-arm64", Arch::Armv7).is_err());

        assert_eq!(locate(None, Some(&d), Some("6.1.0-56-arm64")).unwrap(), b);
        let e = locate(None, Some(&d), Some("6.1.0-99-arm64")).unwrap_err();
        assert!(e.to_string().contains("it has: 6.1.0-56-arm64"), "{e}");
        assert!(locate(Some(&d.join("nope")), None, None).is_err());
        assert!(matches!(locate(None, None, None), Err(HostError::Usage(_))));

        let b2 = d.join("armtree");
        fake(&b2, None, "6.1.0-50-armmp-lpae", "CONFIG_ARM=y\n");
        let t = Tree::open(&b2).unwrap();
        assert_eq!(
            (t.release.as_str(), t.arch),
            ("6.1.0-50-armmp-lpae", Arch::Armv7)
        );
        assert!(Tree::open(&d).is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
