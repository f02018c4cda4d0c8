//! The upload bundle: a tar.gz holding the agent and a manifest with
//! its version and sha256, so the board can check what it got before
//! running it.

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

pub const AGENT_NAME: &str = "whosent-agent";
pub const MANIFEST_NAME: &str = "MANIFEST";

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `version=…`, `sha256=…` and `target=…`, one per line.
pub fn manifest(agent: &[u8], target: &str) -> String {
    format!(
        "version={}\nsha256={}\ntarget={target}\n",
        env!("CARGO_PKG_VERSION"),
        sha256_hex(agent)
    )
}

/// The bundle bytes: `whosent-agent` (0755) and `MANIFEST` (0644).
pub fn build(agent: &[u8], target: &str) -> std::io::Result<Vec<u8>> {
    build_named(AGENT_NAME, agent, target)
}

/// As [`build`], with the agent under `name` (`whosent-ebpf-agent`).
pub fn build_named(name: &str, agent: &[u8], target: &str) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::best()));
    for (name, data, mode) in [
        (name, agent, 0o755),
        (MANIFEST_NAME, manifest(agent, target).as_bytes(), 0o644),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, data)?;
    }
    tar.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn bundle_holds_agent_and_manifest() {
        let agent = b"\x7fELF pretend agent".to_vec();
        let b = build(&agent, "aarch64").unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(b.as_slice()));
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            seen.push((
                e.path().unwrap().display().to_string(),
                e.header().mode().unwrap(),
                data,
            ));
        }
        assert_eq!(seen[0], ("whosent-agent".into(), 0o755, agent.clone()));
        let m = String::from_utf8(seen[1].2.clone()).unwrap();
        assert!(m.contains(&format!("sha256={}", sha256_hex(&agent))));
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
