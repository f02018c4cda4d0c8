//! What a built module says about itself: its `.modinfo` section, a
//! run of NUL-terminated `key=value` strings (Linux
//! `include/linux/moduleparam.h`, `__MODULE_INFO`). The kernel refuses
//! a module whose `vermagic` differs from its own
//! (`kernel/module/version.c`, `same_magic`), so it is checked here,
//! before the push, with a message that says what to do.
//!
//! Only the ELF header and the section headers are read (System V gABI;
//! Linux `include/uapi/linux/elf.h`), for either class and byte order.

use super::other;
use crate::build::Target as Arch;
use crate::error::HostError;
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

struct Elf<'a> {
    b: &'a [u8],
    le: bool,
    wide: bool,
}

impl Elf<'_> {
    fn uint(&self, at: usize, n: usize) -> Result<u64, String> {
        let s = at
            .checked_add(n)
            .and_then(|end| self.b.get(at..end))
            .ok_or_else(|| format!("truncated at byte {at}"))?;
        let mut v = 0u64;
        for i in 0..n {
            let byte = if self.le { s[n - 1 - i] } else { s[i] };
            v = v << 8 | u64::from(byte);
        }
        Ok(v)
    }
    /// 4 bytes in a 32-bit file, 8 in a 64-bit one.
    fn word(&self, at: usize) -> Result<u64, String> {
        self.uint(at, if self.wide { 8 } else { 4 })
    }
    fn at(v: u64) -> Result<usize, String> {
        usize::try_from(v).map_err(|_| format!("offset {v} is out of range"))
    }
    fn slice(&self, off: u64, size: u64) -> Result<&[u8], String> {
        let (off, size) = (Self::at(off)?, Self::at(size)?);
        off.checked_add(size)
            .and_then(|end| self.b.get(off..end))
            .ok_or_else(|| format!("section at {off}+{size} is outside the file"))
    }
}

/// Reads `.modinfo` from a whole `.ko` file.
pub fn parse(b: &[u8]) -> Result<ModInfo, String> {
    if b.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    let wide = match b.get(4) {
        Some(1) => false,
        Some(2) => true,
        c => return Err(format!("unknown ELF class {c:?}")),
    };
    let le = match b.get(5) {
        Some(1) => true,
        Some(2) => false,
        d => return Err(format!("unknown ELF byte order {d:?}")),
    };
    let e = Elf { b, le, wide };
    let machine = e.uint(18, 2)? as u16;
    // e_shoff, then (after e_flags, e_ehsize, e_phentsize, e_phnum)
    // e_shentsize, e_shnum, e_shstrndx.
    let (shoff, rest) = if wide {
        (e.uint(40, 8)?, 58)
    } else {
        (e.uint(32, 4)?, 46)
    };
    let shentsize = e.uint(rest, 2)?;
    let shnum = e.uint(rest + 2, 2)?;
    let shstrndx = e.uint(rest + 4, 2)?;
    if shoff == 0 || shnum == 0 {
        return Err("no section headers".into());
    }
    // sh_name at 0; sh_offset and sh_size after sh_type, sh_flags, sh_addr.
    let section = |i: u64| -> Result<(u64, u64, u64), String> {
        let h = Elf::at(shoff + i * shentsize)?;
        let (off_at, size_at) = if wide {
            (h + 24, h + 32)
        } else {
            (h + 16, h + 20)
        };
        Ok((e.uint(h, 4)?, e.word(off_at)?, e.word(size_at)?))
    };
    let (_, str_off, str_size) = section(shstrndx)?;
    let names = e.slice(str_off, str_size)?;
    for i in 0..shnum {
        let (name, off, size) = section(i)?;
        let name = names
            .get(Elf::at(name)?..)
            .and_then(|n| n.split(|&c| c == 0).next())
            .unwrap_or_default();
        if name != b".modinfo" {
            continue;
        }
        let entries = e
            .slice(off, size)?
            .split(|&c| c == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let s = String::from_utf8_lossy(s);
                let (k, v) = s.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        return Ok(ModInfo { machine, entries });
    }
    Err("no .modinfo section (not a kernel module?)".into())
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
