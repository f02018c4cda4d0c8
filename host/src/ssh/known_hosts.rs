//! Host key verification against an OpenSSH `known_hosts` file.
//!
//! Lines are parsed and matched by [`super::hostfile`] (OpenSSH's
//! patterns, negations and hashed entries), and each error names the
//! line to fix.
//!
//! Like OpenSSH, a host on port 22 is looked up as `host` and any other
//! port as `[host]:port`, and nothing else: a key recorded for the
//! board's port 22 says nothing about a server on its port 2222.
//!
//! As in OpenSSH (`hostfile.c` `check_hostkeys_by_key_or_type` and
//! `check_key_not_revoked`), a key on a matching `@revoked` line is
//! refused whatever else the file or the flags say. `@cert-authority`
//! lines need host certificates, which whosent does not negotiate: when
//! one names the host and no plain key does, the connection is refused
//! with that reason rather than treated as a new host.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use ssh2::{MethodType, Session};

use super::hostfile::{self, Entry, Marker, Verdict};
use super::{base64, SshError};

/// What to do with a host whose key is not in known_hosts yet.
///
/// A key that differs from the recorded one is refused under every
/// policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostKeyPolicy {
    /// Refuse unknown hosts (OpenSSH's `StrictHostKeyChecking yes`).
    #[default]
    Strict,
    /// Record the key of an unknown host and go on
    /// (`StrictHostKeyChecking accept-new`; `--accept-new-host-key`).
    AcceptNew,
}

/// `~/.ssh/known_hosts`.
pub fn default_path() -> PathBuf {
    super::dest::home_dir().join(".ssh").join("known_hosts")
}

/// The name a host goes by in known_hosts: `host` on port 22,
/// `[host]:port` elsewhere.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The OpenSSH fingerprint of a public key blob: `SHA256:` and the
/// unpadded base64 of its SHA-256, as `ssh-keygen -l` prints it.
pub fn fingerprint(blob: &[u8]) -> String {
    let b64 = base64::encode(&Sha256::digest(blob));
    format!("SHA256:{}", b64.trim_end_matches('='))
}

/// The algorithm name a key blob starts with (`ssh-ed25519`, ...).
pub fn blob_key_type(blob: &[u8]) -> String {
    let len = blob
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    match len.and_then(|n| blob.get(4..4 + n)) {
        Some(name) => String::from_utf8_lossy(name).into_owned(),
        None => "unknown".to_string(),
    }
}

/// The lines of `path` that apply to `name`. A missing file has none.
fn entries_for(path: &Path, name: &str) -> Result<Vec<Entry>, SshError> {
    match fs::read(path) {
        Ok(t) => Ok(hostfile::entries(&String::from_utf8_lossy(&t), name)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(SshError::KnownHostsRead {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The host key algorithms to offer, the types already known for this
/// host first, as OpenSSH orders them; `None` keeps libssh2's default.
///
/// Without this a board with ed25519 and ecdsa keys whose ecdsa key is
/// recorded would present its ed25519 key, and look changed.
pub(crate) fn algorithm_prefs(
    session: &Session,
    path: &Path,
    host: &str,
    port: u16,
) -> Result<Option<String>, SshError> {
    let entries: Vec<Entry> = entries_for(path, &host_name(host, port))?
        .into_iter()
        .filter(|e| e.marker == Marker::None)
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    let supported = session
        .supported_algs(MethodType::HostKey)
        .unwrap_or_default();
    let mut prefs: Vec<&str> = Vec::new();
    for e in &entries {
        let algs: &[&str] = match e.key_type.as_str() {
            "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            other => &[other][..],
        };
        for alg in algs {
            if supported.contains(alg) && !prefs.contains(alg) {
                prefs.push(alg);
            }
        }
    }
    // Then the rest, so a host that dropped the recorded type still gets
    // through the handshake and is reported as changed, not as a
    // handshake failure. Certificates are left out: no CA is trusted.
    for alg in &supported {
        if !alg.contains("-cert-") && !prefs.contains(alg) {
            prefs.push(alg);
        }
    }
    Ok(Some(prefs.join(",")))
}

/// Checks the key the server presented in the handshake.
pub(crate) fn verify(
    session: &Session,
    path: &Path,
    host: &str,
    port: u16,
    policy: HostKeyPolicy,
) -> Result<(), SshError> {
    let (blob, _) = session.host_key().ok_or_else(|| SshError::Channel {
        action: "reading the server's host key".into(),
        source: ssh2::Error::unknown(),
    })?;
    let name = host_name(host, port);
    let key_type = blob_key_type(blob);
    let known_hosts = path.to_path_buf();
    match hostfile::judge(&entries_for(path, &name)?, &key_type, blob) {
        Verdict::Known => Ok(()),
        Verdict::Revoked { line } => Err(SshError::HostKeyRevoked {
            host: name,
            key_type,
            fingerprint: fingerprint(blob),
            known_hosts,
            line,
        }),
        Verdict::Changed { lines } => Err(SshError::HostKeyChanged {
            host: name,
            key_type,
            fingerprint: fingerprint(blob),
            known_hosts,
            lines,
        }),
        // OpenSSH would ask for the host's certificate; recording its
        // plain key instead would quietly bypass the CA.
        Verdict::CertificateOnly { line } => Err(SshError::HostCertificatesUnsupported {
            host: name,
            known_hosts,
            line,
        }),
        Verdict::Unknown => match policy {
            HostKeyPolicy::Strict => Err(SshError::UnknownHostKey {
                host: name,
                key_type,
                fingerprint: fingerprint(blob),
                known_hosts,
            }),
            HostKeyPolicy::AcceptNew => append(
                path,
                &format!("{name} {key_type} {}\n", base64::encode(blob)),
            ),
        },
    }
}

/// Appends an entry, creating the directory (0700) and file (0600) as
/// OpenSSH does.
fn append(path: &Path, entry: &str) -> Result<(), SshError> {
    let err = |source| SshError::KnownHostsWrite {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
    }
    // A last line without its newline would glue onto ours.
    let needs_newline = fs::read(path)
        .map(|t| !t.is_empty() && !t.ends_with(b"\n"))
        .unwrap_or(false);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    let text = if needs_newline {
        format!("\n{entry}")
    } else {
        entry.to_string()
    };
    f.write_all(text.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_22_is_bare_and_others_bracketed() {
        assert_eq!(host_name("board", 22), "board");
        assert_eq!(host_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
        assert_eq!(host_name("::1", 2222), "[::1]:2222");
    }

    #[test]
    fn key_type_comes_from_the_blob() {
        let mut blob = vec![0, 0, 0, 11];
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 32]);
        assert_eq!(blob_key_type(&blob), "ssh-ed25519");
        assert_eq!(blob_key_type(&[0, 0]), "unknown");
    }
}
