//! trace.dat layouts this machine's trace-cmd does not write: zlib
//! compression (trace-cmd 3.1.6 here has only zstd) and the BUFFER
//! option of trace-cmd 3.0 (no page size). The files are put together
//! here, following trace-cmd.dat.v7(5), around pieces recorded from a
//! real arm64 kernel: its header_page and signal_generate format and one
//! `trace_pipe_raw` page, whose events the kernel also printed as text
//! (tests/fixtures/arm64-6.1/README.md). The reader must give what the
//! kernel printed.

use std::io::Write;
use whosent_ftrace::text::{self, TextItem};
use whosent_ftrace::tracedat::signals::DatItem;
use whosent_ftrace::tracedat::{Codec, TraceDat};

fn fixture(rel: &str) -> Vec<u8> {
    let p = format!(
        "{}/../../tests/fixtures/arm64-6.1/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// `<u32 compressed size><u32 size><data>`
fn block(data: &[u8]) -> Vec<u8> {
    let z = zlib(data);
    let mut b = (z.len() as u32).to_le_bytes().to_vec();
    b.extend((data.len() as u32).to_le_bytes());
    b.extend(z);
    b
}

struct File {
    b: Vec<u8>,
    zlib: bool,
}

impl File {
    fn u16(&mut self, v: u16) {
        self.b.extend(v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.b.extend(v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.b.extend(v.to_le_bytes());
    }
    /// A section: u16 id, u16 flags, u32 description, u64 size, body.
    fn section(&mut self, id: u16, body: &[u8]) -> u64 {
        let at = self.b.len() as u64;
        let body = if self.zlib {
            block(body)
        } else {
            body.to_vec()
        };
        self.u16(id);
        self.u16(self.zlib as u16);
        self.u32(0);
        self.u64(body.len() as u64);
        self.b.extend(body);
        at
    }
}

fn sized(v: &mut Vec<u8>, data: &[u8]) {
    v.extend((data.len() as u64).to_le_bytes());
    v.extend(data);
}

/// A v7 file with one instance holding `page` on CPU 0.
fn v7(zlib: bool, with_page_size: bool) -> Vec<u8> {
    let mut f = File {
        b: Vec::new(),
        zlib,
    };
    f.b.extend(b"\x17\x08\x44tracing7\0\0\x08");
    f.u32(4096);
    f.b.extend(if zlib {
        &b"zlib\x001.2.13\0"[..]
    } else {
        b"none\0\0"
    });
    let options_at = f.b.len();
    f.u64(0);

    let mut h = b"header_page\0".to_vec();
    sized(&mut h, &fixture("events/header_page"));
    h.extend(b"header_event\0");
    sized(&mut h, &fixture("events/header_event"));
    let header_info = f.section(16, &h);
    let mut e = 1u32.to_le_bytes().to_vec();
    e.extend(b"signal\0");
    e.extend(1u32.to_le_bytes());
    sized(&mut e, &fixture("events/signal/signal_generate/format"));
    let formats = f.section(18, &e);
    let cmdlines = f.section(21, &{
        let mut c = Vec::new();
        sized(&mut c, b"1 init\n");
        c
    });
    let buffer = f.b.len() as u64;
    f.u16(3);
    f.u16(zlib as u16);
    f.u32(0);
    f.u64(0);
    let page = fixture("per_cpu/cpu0/trace_pipe_raw");
    let cpu_at = f.b.len() as u64;
    if zlib {
        f.u32(1);
        f.b.extend(block(&page));
    } else {
        f.b.extend(&page);
    }
    let cpu_size = f.b.len() as u64 - cpu_at;

    let mut o = Vec::new();
    for (id, off) in [(16u16, header_info), (18, formats), (21, cmdlines)] {
        o.extend(id.to_le_bytes());
        o.extend(8u32.to_le_bytes());
        o.extend(off.to_le_bytes());
    }
    let mut buf = buffer.to_le_bytes().to_vec();
    buf.extend(b"fixture\0local\0");
    if with_page_size {
        buf.extend(4096u32.to_le_bytes());
    }
    buf.extend(1u32.to_le_bytes());
    buf.extend(0u32.to_le_bytes());
    buf.extend(cpu_at.to_le_bytes());
    buf.extend(cpu_size.to_le_bytes());
    o.extend(3u16.to_le_bytes());
    o.extend((buf.len() as u32).to_le_bytes());
    o.extend(buf);
    o.extend(0u16.to_le_bytes());
    o.extend(8u32.to_le_bytes());
    o.extend(0u64.to_le_bytes());
    let options = f.section(0, &o);
    f.b[options_at..options_at + 8].copy_from_slice(&options.to_le_bytes());
    f.b
}

fn check(file: &[u8]) {
    let dat = TraceDat::parse(file).unwrap();
    assert!(dat.warnings.is_empty(), "{:?}", dat.warnings);
    assert_eq!(dat.buffers[0].name, "fixture");
    assert_eq!(dat.buffers[0].clock.as_deref(), Some("local"));
    let ours: Vec<_> = dat
        .signals()
        .unwrap()
        .map(|i| match i.unwrap() {
            DatItem::Signal(s) => s,
            DatItem::Lost { .. } => panic!("no loss in this page"),
        })
        .collect();
    let kernel: Vec<_> = text::parse(fixture("per_cpu/cpu0/trace").as_slice())
        .filter_map(|i| match i.unwrap() {
            TextItem::Signal(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(ours.len(), kernel.len());
    assert!(ours.len() >= 10);
    for (o, k) in ours.iter().zip(&kernel) {
        // The kernel prints microseconds, rounded (ns2usecs()).
        assert_eq!((o.ts_ns + 500) / 1000, k.ts_ns / 1000);
        assert_eq!((o.sig, o.code, o.errno), (k.sig, k.code, k.errno));
        assert_eq!(
            (o.target.tid, &o.target.comm),
            (k.target_tid, &k.target_comm)
        );
        assert_eq!(o.running.tid, k.running_tid);
        assert_eq!(o.result.map(|r| r.as_raw()), k.result);
        assert_eq!(o.context, k.context);
    }
}

#[test]
fn zlib_compressed_v7_gives_what_the_kernel_printed() {
    let f = v7(true, true);
    assert_eq!(
        TraceDat::parse(&f).unwrap().header.codec(),
        Some(Codec::Zlib)
    );
    check(&f);
}

#[test]
fn a_trace_cmd_3_0_buffer_option_without_page_size_is_read_too() {
    check(&v7(false, false));
    check(&v7(true, false));
}

#[test]
fn a_zlib_chunk_that_does_not_decompress_is_a_warning_not_a_failure() {
    let mut f = v7(true, true);
    // Find the CPU chunk's zlib stream by its content and spoil it.
    let page = zlib(&fixture("per_cpu/cpu0/trace_pipe_raw"));
    let at = f.windows(page.len()).position(|w| w == page).unwrap();
    f[at + page.len() / 2] ^= 0xff;
    let dat = TraceDat::parse(&f).unwrap();
    assert_eq!(dat.warnings.len(), 1, "{:?}", dat.warnings);
    assert!(dat.warnings[0].to_string().contains("does not decompress"));
    assert_eq!(dat.signals().unwrap().count(), 0);
}
