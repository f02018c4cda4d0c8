//! Compiles the BPF program (ebpf/signal.bpf.c) with clang, twice: for
//! the ring buffer (5.8+) and for the perf event array. The objects are
//! built for `bpfel`, the byte order of every target whosent supports
//! (x86_64, aarch64, armv7), and travel inside the agent
//! (`include_bytes!` in src/object.rs).

use std::path::PathBuf;
use std::process::Command;

const SOURCES: [&str; 3] = ["ebpf/signal.bpf.c", "ebpf/bpf.h", "ebpf/event.h"];

fn main() {
    for s in SOURCES {
        println!("cargo:rerun-if-changed={s}");
    }
    println!("cargo:rerun-if-env-changed=WHOSENT_CLANG");
    let clang = std::env::var("WHOSENT_CLANG").unwrap_or_else(|_| "clang".into());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (name, ringbuf) in [("signal-ringbuf.o", 1), ("signal-perf.o", 0)] {
        let obj = out.join(name);
        let status = Command::new(&clang)
            // -g is left out on purpose: no .BTF section, so nothing in
            // loading depends on the kernel's BTF support.
            .args(["-O2", "-Wall", "-Werror", "-target", "bpfel"])
            .arg(format!("-DWHOSENT_RINGBUF={ringbuf}"))
            .args(["-c", "ebpf/signal.bpf.c", "-o"])
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{clang} failed ({s}) compiling ebpf/signal.bpf.c for the BPF target"),
            Err(e) => panic!(
                "cannot run {clang} ({e}): the eBPF agent's program is compiled with clang for the \
                 BPF target; install Debian's `clang` package (scripts/setup.sh does), or set \
                 WHOSENT_CLANG to a clang with the BPF backend"
            ),
        }
    }
}
