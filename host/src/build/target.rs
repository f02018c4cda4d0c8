//! The boards whosent builds agents for, and each one's names: the
//! user's (`--target`), the board's (`uname -m`), Rust's (the target
//! triple) and the ELF header's (class and machine).

use crate::error::HostError;
use std::fmt;

/// `EI_CLASS` of a 32-bit ELF file.
pub const ELFCLASS32: u8 = 1;
/// `EI_CLASS` of a 64-bit ELF file.
pub const ELFCLASS64: u8 = 2;
/// `e_machine` values (Linux `include/uapi/linux/elf-em.h`).
pub const EM_ARM: u16 = 40;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Aarch64,
    Armv7,
    X86_64,
}

/// Every target, in the order `--help` and error messages list them.
pub const ALL: [Target; 3] = [Target::Aarch64, Target::Armv7, Target::X86_64];

/// "aarch64 (arm64), armv7 (arm, armhf, armv7l), x86_64 (amd64)".
pub fn supported() -> String {
    let names: Vec<String> = ALL
        .iter()
        .map(|t| format!("{} ({})", t.name(), t.short_aliases().join(", ")))
        .collect();
    names.join(", ")
}

impl Target {
    /// A `--target` value: a name, an alias or the musl triple.
    pub fn parse(s: &str) -> Result<Target, HostError> {
        let wanted = s.trim().to_ascii_lowercase();
        ALL.into_iter()
            .find(|t| {
                t.name() == wanted
                    || t.triple() == wanted
                    || t.short_aliases().contains(&wanted.as_str())
            })
            .ok_or_else(|| {
                HostError::Usage(format!(
                    "unknown target '{s}': supported targets are {}",
                    supported()
                ))
            })
    }

    /// The target for a board's `uname -m`, if whosent supports it.
    /// `armv8l` is a 32-bit userland on an ARMv8 CPU, which runs armv7 code.
    pub fn from_uname_m(machine: &str) -> Option<Target> {
        match machine.trim() {
            "aarch64" | "arm64" => Some(Target::Aarch64),
            "armv7l" | "armv7" | "armv8l" => Some(Target::Armv7),
            "x86_64" | "amd64" => Some(Target::X86_64),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Aarch64 => "aarch64",
            Target::Armv7 => "armv7",
            Target::X86_64 => "x86_64",
        }
    }

    fn short_aliases(self) -> &'static [&'static str] {
        match self {
            Target::Aarch64 => &["arm64"],
            Target::Armv7 => &["arm", "armhf", "armv7l"],
            Target::X86_64 => &["amd64"],
        }
    }

    /// The Rust target triple of the fully static musl agent.
    pub fn triple(self) -> &'static str {
        match self {
            Target::Aarch64 => "aarch64-unknown-linux-musl",
            Target::Armv7 => "armv7-unknown-linux-musleabihf",
            Target::X86_64 => "x86_64-unknown-linux-musl",
        }
    }

    /// The triple to build a static glibc agent for when rustup cannot
    /// install the musl one (armv7's musl rust-std is not always
    /// downloadable); see docs/agent-size.md.
    pub fn fallback_triple(self) -> Option<&'static str> {
        match self {
            Target::Armv7 => Some("armv7-unknown-linux-gnueabihf"),
            _ => None,
        }
    }

    /// `e_machine` in the ELF header of an agent for this target.
    pub fn elf_machine(self) -> u16 {
        match self {
            Target::Aarch64 => EM_AARCH64,
            Target::Armv7 => EM_ARM,
            Target::X86_64 => EM_X86_64,
        }
    }

    /// `EI_CLASS` in the ELF header of an agent for this target.
    pub fn elf_class(self) -> u8 {
        match self {
            Target::Armv7 => ELFCLASS32,
            Target::Aarch64 | Target::X86_64 => ELFCLASS64,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_triples_parse() {
        for (s, t) in [
            ("aarch64", Target::Aarch64),
            ("arm64", Target::Aarch64),
            ("aarch64-unknown-linux-musl", Target::Aarch64),
            ("armv7", Target::Armv7),
            ("arm", Target::Armv7),
            ("armhf", Target::Armv7),
            ("armv7l", Target::Armv7),
            ("armv7-unknown-linux-musleabihf", Target::Armv7),
            ("x86_64", Target::X86_64),
            ("amd64", Target::X86_64),
            ("x86_64-unknown-linux-musl", Target::X86_64),
            ("ARM64", Target::Aarch64),
        ] {
            assert_eq!(Target::parse(s).unwrap(), t, "{s}");
        }
    }

    #[test]
    fn an_unknown_target_lists_the_supported_ones() {
        let e = Target::parse("sparc").unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, HostError::Usage(_)));
        for want in [
            "'sparc'",
            "aarch64 (arm64)",
            "armv7 (arm, armhf, armv7l)",
            "x86_64",
        ] {
            assert!(m.contains(want), "{m}");
        }
    }

    #[test]
    fn uname_m_names_the_board() {
        assert_eq!(Target::from_uname_m("aarch64\n"), Some(Target::Aarch64));
        assert_eq!(Target::from_uname_m("armv7l"), Some(Target::Armv7));
        assert_eq!(Target::from_uname_m("armv8l"), Some(Target::Armv7));
        assert_eq!(Target::from_uname_m("x86_64"), Some(Target::X86_64));
        assert_eq!(Target::from_uname_m("armv6l"), None);
        assert_eq!(Target::from_uname_m("mips"), None);
    }

    #[test]
    fn elf_identity() {
        assert_eq!(
            (Target::Aarch64.elf_machine(), Target::Aarch64.elf_class()),
            (183, 2)
        );
        assert_eq!(
            (Target::Armv7.elf_machine(), Target::Armv7.elf_class()),
            (40, 1)
        );
        assert_eq!(
            (Target::X86_64.elf_machine(), Target::X86_64.elf_class()),
            (62, 2)
        );
    }
}
