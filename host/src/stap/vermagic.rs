//! What a built module says about itself: its `.modinfo` section, a
//! run of NUL-terminated `key=value` strings (Linux
//! `include/linux/moduleparam.h`, `__MODULE_INFO`). The kernel refuses
//! a module whose `vermagic` differs from its own
//! (`kernel/module/version.c`, `same_magic`), so it is checked here,
//! before the push, with a message that says what to do.
//!
//! Only the ELF header and the section headers are read, with the
//! `object` crate, for either class and byte order.

use super::other;
use crate::build::Target as Arch;
use crate::error::HostError;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader};
use object::Endianness;
use std::path::Path;

/// `.modinfo`'s entries, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    pub machine: u16,
    pub entries: Vec<(String, String)>,
}

impl ModInfo {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `vermagic`, e.g. `6.1.0-56-arm64 SMP mod_unload modversions aarch64`.
    pub fn vermagic(&self) -> Option<&str> {
        self.get("vermagic")
    }

    /// The kernel release the module was built for: vermagic's first word.
    pub fn release(&self) -> Option<&str> {
        self.vermagic()?.split_whitespace().next()
    }

    /// The module's name (`name=`, written by modpost).
    pub fn name(&self) -> Option<&str> {
        self.get("name")
    }
}

/// Reads `.modinfo` from a whole `.ko` file.
pub fn parse(b: &[u8]) -> Result<ModInfo, String> {
    match object::FileKind::parse(b) {
        Ok(object::FileKind::Elf32) => parse_as::<elf::FileHeader32<Endianness>>(b),
        Ok(object::FileKind::Elf64) => parse_as::<elf::FileHeader64<Endianness>>(b),
        _ => Err("not an ELF file".into()),
    }
}

fn parse_as<H: FileHeader<Endian = Endianness>>(b: &[u8]) -> Result<ModInfo, String> {
    let err = |e: object::Error| e.to_string();
    let h = H::parse(b).map_err(err)?;
    let endian = h.endian().map_err(err)?;
    let sections = h.sections(endian, b).map_err(err)?;
    if sections.is_empty() {
        return Err("no section headers".into());
    }
    let (_, modinfo) = sections
        .section_by_name(endian, b".modinfo")
        .ok_or("no .modinfo section (not a kernel module?)")?;
    let entries = modinfo
        .data(endian, b)
        .map_err(err)?
        .split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            let (k, v) = s.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    Ok(ModInfo {
        machine: h.e_machine(endian).0,
        entries,
    })
}

/// Reads and parses a `.ko`.
pub fn read(path: &Path) -> Result<ModInfo, HostError> {
    let b = std::fs::read(path)
        .map_err(|e| HostError::Io(format!("cannot read {}", path.display()), e))?;
    parse(&b).map_err(|e| {
        other(
            format!("{} is not a usable kernel module: {e}", path.display()),
            "remove it from the module cache (~/.cache/whosent/stap/modules) and run again",
        )
    })
}

/// The module must be for the board's kernel release and machine, and
/// carry the name its file will have on the board.
pub fn check(m: &ModInfo, board_release: &str, arch: Arch, name: &str) -> Result<(), HostError> {
    let Some(release) = m.release() else {
        return Err(other(
            "the module has no vermagic in .modinfo, so the kernel would refuse it",
            "rebuild it against the board kernel's build tree (--kernel-build)",
        ));
    };
    if release != board_release {
        return Err(other(
            format!(
                "the module was built for Linux {release} (vermagic \"{}\"), but the board runs {board_release}; \
                 the kernel would refuse it, so it is not pushed",
                m.vermagic().unwrap_or_default()
            ),
            format!(
                "give --kernel-build the build tree of the board's own kernel ({board_release})"
            ),
        ));
    }
    if m.machine != arch.elf_machine() {
        return Err(other(
            format!(
                "the module is for ELF machine {}, but the board is {}",
                m.machine,
                arch.name()
            ),
            "give --kernel-build the build tree of the board's own kernel",
        ));
    }
    if m.name() != Some(name) {
        return Err(other(
            format!(
                "the module calls itself {:?}, expected {name:?} (staprun takes the name from the file name)",
                m.name()
            ),
            "remove it from the module cache (~/.cache/whosent/stap/modules) and run again",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal relocatable ELF: null section, .modinfo, .shstrtab.
    fn elf(wide: bool, le: bool, machine: u16, modinfo: &[u8]) -> Vec<u8> {
        let put = |v: &mut Vec<u8>, x: u64, n: usize| {
            let bytes = x.to_le_bytes();
            let mut s = bytes[..n].to_vec();
            if !le {
                s.reverse();
            }
            v.extend_from_slice(&s);
        };
        let (ehsize, shentsize) = if wide { (64, 64) } else { (52, 40) };
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let modinfo_off = ehsize as u64;
        let shstr_off = modinfo_off + modinfo.len() as u64;
        let shoff = shstr_off + shstrtab.len() as u64;
        let word = if wide { 8 } else { 4 };
        let mut b = vec![
            0x7f,
            b'E',
            b'L',
            b'F',
            if wide { 2 } else { 1 },
            if le { 1 } else { 2 },
            1,
        ];
        b.resize(16, 0);
        put(&mut b, 1, 2); // e_type REL
        put(&mut b, machine as u64, 2);
        put(&mut b, 1, 4); // e_version
        put(&mut b, 0, word); // e_entry
        put(&mut b, 0, word); // e_phoff
        put(&mut b, shoff, word);
        put(&mut b, 0, 4); // e_flags
        put(&mut b, ehsize as u64, 2);
        put(&mut b, 0, 2); // e_phentsize
        put(&mut b, 0, 2); // e_phnum
        put(&mut b, shentsize as u64, 2);
        put(&mut b, 3, 2); // e_shnum
        put(&mut b, 2, 2); // e_shstrndx
        assert_eq!(b.len(), ehsize);
        b.extend_from_slice(modinfo);
        b.extend_from_slice(shstrtab);
        for (name, off, size) in [
            (0u64, 0u64, 0u64),
            (1, modinfo_off, modinfo.len() as u64),
            (10, shstr_off, shstrtab.len() as u64),
        ] {
            let start = b.len();
            put(&mut b, name, 4);
            put(&mut b, 1, 4); // sh_type
            put(&mut b, 0, word); // sh_flags
            put(&mut b, 0, word); // sh_addr
            put(&mut b, off, word);
            put(&mut b, size, word);
            b.resize(start + shentsize, 0);
        }
        b
    }

    const INFO: &[u8] = b"vermagic=6.1.0-56-arm64 SMP mod_unload modversions aarch64\0name=whosent\0license=GPL\0\0parmtype=target_sig:int64_t\0";

    #[test]
    fn reads_modinfo_in_every_class_and_byte_order() {
        for (wide, le) in [(true, true), (false, true), (true, false), (false, false)] {
            let m = parse(&elf(wide, le, 183, INFO)).unwrap();
            assert_eq!(m.release(), Some("6.1.0-56-arm64"), "{wide} {le}");
            assert_eq!(m.name(), Some("whosent"));
            assert_eq!(m.get("parmtype"), Some("target_sig:int64_t"));
            assert_eq!(m.machine, 183);
        }
    }

    #[test]
    fn checks_release_machine_and_name() {
        let m = parse(&elf(true, true, 183, INFO)).unwrap();
        check(&m, "6.1.0-56-arm64", Arch::Aarch64, "whosent").unwrap();
        let e = check(&m, "6.1.0-57-arm64", Arch::Aarch64, "whosent").unwrap_err();
        assert!(
            e.to_string().contains("built for Linux 6.1.0-56-arm64"),
            "{e}"
        );
        assert!(e.help().contains("6.1.0-57-arm64"));
        assert!(check(&m, "6.1.0-56-arm64", Arch::Armv7, "whosent").is_err());
        assert!(check(&m, "6.1.0-56-arm64", Arch::Aarch64, "other").is_err());
    }

    #[test]
    fn refuses_what_is_not_a_module() {
        assert!(parse(b"\x7fELF").is_err());
        assert!(parse(b"hello").unwrap_err().contains("not an ELF"));
        let e = parse(&elf(true, true, 183, b"")).map(|m| m.release().map(String::from));
        assert_eq!(e, Ok(None));
        let mut no_modinfo = elf(true, true, 183, INFO);
        // Rename the section: ".modinfo" -> ".modinfX".
        let at = no_modinfo
            .windows(9)
            .position(|w| w == b".modinfo\0")
            .unwrap();
        no_modinfo[at + 7] = b'X';
        assert!(parse(&no_modinfo).unwrap_err().contains("no .modinfo"));
    }
}
