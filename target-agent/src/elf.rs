//! Just enough ELF to place the argv uprobe: a program's interpreter
//! (`PT_INTERP`) and the file offset of an ELF file's entry point, which
//! is what `uprobe_events` takes. Files of the agent's own byte order
//! only: the agent runs on the machine whose programs it reads.

const PT_LOAD: u64 = 1;
const PT_INTERP: u64 = 3;

pub struct Elf<'a> {
    b: &'a [u8],
    /// Word size: 4 (ELFCLASS32) or 8 (ELFCLASS64).
    w: usize,
}

/// A program header: (type, file offset, virtual address, file size).
type Phdr = (u64, u64, u64, u64);

impl<'a> Elf<'a> {
    /// `b` must hold at least the file's first page (headers, and the
    /// interpreter path, which linkers put right after them).
    pub fn parse(b: &'a [u8]) -> Option<Self> {
        let native = if cfg!(target_endian = "little") { 1 } else { 2 };
        if b.get(..4)? != b"\x7fELF" || *b.get(5)? != native {
            return None;
        }
        let w = match b.get(4)? {
            1 => 4,
            2 => 8,
            _ => return None,
        };
        Some(Elf { b, w })
    }

    fn n(&self, off: usize, size: usize) -> Option<u64> {
        let s = self.b.get(off..off + size)?;
        let mut v = [0u8; 8];
        if cfg!(target_endian = "little") {
            v[..size].copy_from_slice(s);
        } else {
            v[8 - size..].copy_from_slice(s);
        }
        Some(u64::from_ne_bytes(v))
    }

    /// A word-sized field: at `off32` in ELF32, `off64` in ELF64.
    fn word(&self, off32: usize, off64: usize) -> Option<u64> {
        match self.w {
            4 => self.n(off32, 4),
            _ => self.n(off64, 8),
        }
    }

    fn phdrs(&self) -> Vec<Phdr> {
        let w = self.w;
        let table = || -> Option<Vec<Phdr>> {
            let phoff = self.word(28, 32)? as usize;
            let (size, num) = if w == 4 { (42, 44) } else { (54, 56) };
            let (size, num) = (self.n(size, 2)? as usize, self.n(num, 2)?);
            // A loop, not a collect into Option<Vec>: smaller in the
            // agent (docs/agent-size.md).
            let mut out = Vec::with_capacity(num as usize);
            for i in 0..num as usize {
                let p = phoff + i * size;
                // p_type is first in both; ELF64 puts p_flags next.
                let at = |k: usize| if w == 4 { p + 4 * k } else { p + 8 * k };
                out.push((
                    self.n(p, 4)?,
                    self.word(at(1), at(1))?,
                    self.word(at(2), at(2))?,
                    self.word(at(4), at(4))?,
                ));
            }
            Some(out)
        };
        table().unwrap_or_default()
    }

    /// The path in `PT_INTERP`: the dynamic loader every dynamically
    /// linked program starts in. `None` for a static program.
    pub fn interp(&self) -> Option<&'a str> {
        let (_, off, _, size) = self.phdrs().into_iter().find(|p| p.0 == PT_INTERP)?;
        let s = self.b.get(off as usize..(off + size) as usize)?;
        std::str::from_utf8(s.split(|&c| c == 0).next()?).ok()
    }

    /// Where the entry point's instruction lies in the file.
    pub fn entry_offset(&self) -> Option<u64> {
        let entry = self.word(24, 24)?;
        self.phdrs()
            .into_iter()
            .find(|&(t, _, va, size)| t == PT_LOAD && (va..va + size).contains(&entry))
            .map(|(_, off, va, _)| entry - va + off)
    }
}

#[cfg(test)]
mod tests {
    use super::Elf;

    fn head(path: &str) -> Vec<u8> {
        let mut b = std::fs::read(path).unwrap();
        b.truncate(4096);
        b
    }

    #[test]
    fn finds_the_loader_of_bin_sh_and_its_entry() {
        let sh = head("/bin/sh");
        let interp = Elf::parse(&sh).unwrap().interp().unwrap().to_string();
        assert!(interp.contains("ld-"), "{interp}");
        let ld = head(&interp);
        let elf = Elf::parse(&ld).unwrap();
        assert_eq!(elf.interp(), None, "the loader is static");
        let off = elf.entry_offset().unwrap();
        assert!(off > 0 && off < std::fs::metadata(&interp).unwrap().len());
    }

    #[test]
    fn elf32_headers() {
        // A minimal ELF32 LSB: one PT_INTERP at 0x54, one PT_LOAD
        // mapping file offset 0x1000 at 0x8000, entry 0x8010.
        let mut b = vec![0u8; 0x80];
        b[..6].copy_from_slice(b"\x7fELF\x01\x01");
        b[24..28].copy_from_slice(&0x8010u32.to_le_bytes());
        b[28..32].copy_from_slice(&0x34u32.to_le_bytes());
        b[42..44].copy_from_slice(&32u16.to_le_bytes());
        b[44..46].copy_from_slice(&2u16.to_le_bytes());
        let ph = |b: &mut Vec<u8>, at: usize, v: [u32; 5]| {
            for (i, x) in v.iter().enumerate() {
                b[at + 4 * i..at + 4 * i + 4].copy_from_slice(&x.to_le_bytes());
            }
        };
        ph(&mut b, 0x34, [3, 0x74, 0, 0, 8]);
        ph(&mut b, 0x54, [1, 0x1000, 0x8000, 0, 0x100]);
        b[0x74..0x7c].copy_from_slice(b"/lib/ld\0");
        let e = Elf::parse(&b).unwrap();
        assert_eq!(e.interp(), Some("/lib/ld"));
        assert_eq!(e.entry_offset(), Some(0x1010));
        assert!(Elf::parse(b"\x7fELF\x03\x01").is_none());
        assert!(Elf::parse(b"#!/bin/sh\n").is_none());
    }
}
