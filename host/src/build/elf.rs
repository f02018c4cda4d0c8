//! Checking a prebuilt agent (`--agent PATH`) before it is pushed: its
//! ELF header must name the board's machine and class, and it must be
//! static, because a board may lack any C library (or have another one).
//! Only the header, the program headers and the dynamic section are
//! read, with the `object` crate.

use super::target::{Target, ELFCLASS32, ELFCLASS64, EM_AARCH64, EM_ARM, EM_X86_64};
use crate::error::HostError;
use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::{Endian, Endianness};
use std::path::Path;

/// What the checks need from an ELF file.
#[derive(Debug, PartialEq, Eq)]
pub struct ElfInfo {
    pub class: u8,
    pub little_endian: bool,
    pub machine: u16,
    /// The program interpreter (dynamic loader), if any.
    pub interp: Option<String>,
    /// How many shared libraries the dynamic section asks for.
    pub needed: usize,
}

/// The ELF machine (`e_machine`) of a file, if it is an ELF file.
pub fn machine(b: &[u8]) -> Option<u16> {
    parse(b).ok().map(|i| i.machine)
}

/// Reads the facts from a whole ELF file.
pub fn parse(b: &[u8]) -> Result<ElfInfo, String> {
    match object::FileKind::parse(b) {
        Ok(object::FileKind::Elf32) => parse_as::<elf::FileHeader32<Endianness>>(b),
        Ok(object::FileKind::Elf64) => parse_as::<elf::FileHeader64<Endianness>>(b),
        _ => Err("no ELF magic".into()),
    }
}

fn parse_as<H: FileHeader<Endian = Endianness>>(b: &[u8]) -> Result<ElfInfo, String> {
    let err = |e: object::Error| e.to_string();
    let h = H::parse(b).map_err(err)?;
    let endian = h.endian().map_err(err)?;
    let mut info = ElfInfo {
        class: if h.is_class_64() {
            ELFCLASS64
        } else {
            ELFCLASS32
        },
        little_endian: endian.is_little_endian(),
        machine: h.e_machine(endian).0,
        interp: None,
        needed: 0,
    };
    for ph in h.program_headers(endian, b).map_err(err)? {
        if let Some(path) = ph.interpreter(endian, b).map_err(err)? {
            info.interp = Some(String::from_utf8_lossy(path).into_owned());
        }
        for d in ph.dynamic(endian, b).map_err(err)?.unwrap_or_default() {
            match d.d_tag(endian) {
                elf::DT_NULL => break,
                elf::DT_NEEDED => info.needed += 1,
                _ => {}
            }
        }
    }
    Ok(info)
}

/// "an x86_64", "a 32-bit ARM": the machine, with its article.
fn machine_name(m: u16) -> String {
    match m {
        EM_AARCH64 => "an aarch64".into(),
        EM_ARM => "a 32-bit ARM".into(),
        EM_X86_64 => "an x86_64".into(),
        3 => "an i386".into(),
        8 => "a MIPS".into(),
        20 => "a PowerPC".into(),
        21 => "a 64-bit PowerPC".into(),
        22 => "an s390".into(),
        243 => "a RISC-V".into(),
        m => format!("a machine-{m}"),
    }
}

/// Why `info` cannot run as the agent on a `target` board, if it cannot.
pub fn mismatch(info: &ElfInfo, target: Target) -> Option<String> {
    let bits = |c: u8| if c == ELFCLASS64 { 64 } else { 32 };
    if info.machine != target.elf_machine() {
        return Some(format!(
            "is {} ELF, but the board is {target}",
            machine_name(info.machine)
        ));
    }
    if info.class != target.elf_class() {
        return Some(format!(
            "is a {}-bit ELF, but the board is {target}, which needs a {}-bit agent",
            bits(info.class),
            bits(target.elf_class())
        ));
    }
    if !info.little_endian {
        return Some(format!(
            "is a big-endian ELF, but the board is little-endian {target}"
        ));
    }
    if let Some(interp) = &info.interp {
        return Some(format!(
            "is dynamically linked (it asks for the loader {interp}), but the agent must be static"
        ));
    }
    if info.needed > 0 {
        return Some(format!(
            "needs {} shared libraries (DT_NEEDED), but the agent must be static",
            info.needed
        ));
    }
    None
}

/// Refuses a prebuilt agent that is not a static ELF for `target`.
pub fn check_elf(path: &Path, target: Target) -> Result<(), HostError> {
    let bytes = std::fs::read(path).map_err(|source| HostError::Input {
        path: path.to_path_buf(),
        source,
    })?;
    let help = format!("build one with `whosent-deploy build --target {target}`, or leave out --agent to have it built");
    let why = match parse(&bytes) {
        Ok(info) => mismatch(&info, target),
        Err(e) => Some(format!("is not an ELF executable ({e})")),
    };
    match why {
        None => Ok(()),
        Some(why) => Err(HostError::Other {
            message: format!("{} {why}", path.display()),
            help,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PT_INTERP: u32 = 3;
    const PT_DYNAMIC: u32 = 2;
    const DT_NULL: u64 = 0;
    const DT_NEEDED: u64 = 1;

    /// A minimal ELF image: header, program headers, then segment data.
    fn image(wide: bool, machine: u16, segs: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let (eh, ph) = if wide { (64, 56) } else { (52, 32) };
        let mut b = vec![0u8; eh + ph * segs.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = if wide { ELFCLASS64 } else { ELFCLASS32 };
        b[5] = 1;
        b[6] = 1; // EV_CURRENT
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        let put32 =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        let n = segs.len() as u16;
        if wide {
            put64(&mut b, 32, eh as u64);
            b[54..56].copy_from_slice(&(ph as u16).to_le_bytes());
            b[56..58].copy_from_slice(&n.to_le_bytes());
        } else {
            put32(&mut b, 28, eh as u32);
            b[42..44].copy_from_slice(&(ph as u16).to_le_bytes());
            b[44..46].copy_from_slice(&n.to_le_bytes());
        }
        for (i, (ty, data)) in segs.iter().enumerate() {
            let at = eh + i * ph;
            let off = b.len();
            b.extend_from_slice(data);
            put32(&mut b, at, *ty);
            if wide {
                put64(&mut b, at + 8, off as u64);
                put64(&mut b, at + 32, data.len() as u64);
            } else {
                put32(&mut b, at + 4, off as u32);
                put32(&mut b, at + 16, data.len() as u32);
            }
        }
        b
    }

    fn dynamic(wide: bool, tags: &[u64]) -> Vec<u8> {
        let mut d = Vec::new();
        for &t in tags.iter().chain(&[DT_NULL]) {
            if wide {
                d.extend_from_slice(&t.to_le_bytes());
                d.extend_from_slice(&0u64.to_le_bytes());
            } else {
                d.extend_from_slice(&(t as u32).to_le_bytes());
                d.extend_from_slice(&0u32.to_le_bytes());
            }
        }
        d
    }

    #[test]
    fn a_static_aarch64_executable_passes() {
        let b = image(true, EM_AARCH64, &[(1, vec![0; 16])]);
        let info = parse(&b).unwrap();
        assert_eq!(
            info,
            ElfInfo {
                class: 2,
                little_endian: true,
                machine: 183,
                interp: None,
                needed: 0
            }
        );
        assert_eq!(mismatch(&info, Target::Aarch64), None);
    }

    #[test]
    fn a_static_pie_with_an_empty_dynamic_section_passes() {
        let b = image(
            true,
            EM_X86_64,
            &[(PT_DYNAMIC, dynamic(true, &[0x6fff_fffb, 7]))],
        );
        assert_eq!(mismatch(&parse(&b).unwrap(), Target::X86_64), None);
    }

    #[test]
    fn the_wrong_machine_is_named() {
        let b = image(true, EM_X86_64, &[]);
        let why = mismatch(&parse(&b).unwrap(), Target::Aarch64).unwrap();
        assert_eq!(why, "is an x86_64 ELF, but the board is aarch64");
        let b = image(false, EM_ARM, &[]);
        let why = mismatch(&parse(&b).unwrap(), Target::Aarch64).unwrap();
        assert_eq!(why, "is a 32-bit ARM ELF, but the board is aarch64");
    }

    #[test]
    fn the_wrong_class_is_named() {
        let b = image(false, EM_AARCH64, &[]);
        let why = mismatch(&parse(&b).unwrap(), Target::Aarch64).unwrap();
        assert!(why.contains("32-bit") && why.contains("64-bit"), "{why}");
    }

    #[test]
    fn dynamic_linking_is_refused() {
        let b = image(
            false,
            EM_ARM,
            &[(PT_INTERP, b"/lib/ld-linux-armhf.so.3\0".to_vec())],
        );
        let why = mismatch(&parse(&b).unwrap(), Target::Armv7).unwrap();
        assert!(
            why.contains("/lib/ld-linux-armhf.so.3") && why.contains("static"),
            "{why}"
        );
        let b = image(
            false,
            EM_ARM,
            &[(PT_DYNAMIC, dynamic(false, &[DT_NEEDED, DT_NEEDED]))],
        );
        let why = mismatch(&parse(&b).unwrap(), Target::Armv7).unwrap();
        assert!(why.contains("needs 2 shared libraries"), "{why}");
    }

    #[test]
    fn garbage_is_not_an_elf() {
        assert!(parse(b"#!/bin/sh\n").is_err());
        assert!(parse(b"\x7fELF").is_err());
        let mut b = image(true, EM_AARCH64, &[(PT_INTERP, b"/x\0".to_vec())]);
        b.truncate(70);
        assert!(parse(&b).is_err());
    }
}
