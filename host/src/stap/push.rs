//! The stap backend's payload on the board: the module, and the staprun
//! bundle where the board has no staprun; and the check, at the end,
//! that the module is gone from the board.

use super::other;
use super::staprun::Staprun;
use crate::bundle::sha256_hex;
use crate::deploy::push::Pusher;
use crate::error::HostError;
use crate::ssh::upload::quote;
use crate::transport::Transport;
use std::time::{Duration, Instant};

/// How long to wait for the board to unload after a stop that the
/// SSH layer gave up on. Short in unit tests, where the fake board
/// keeps a module loaded on purpose.
const UNLOAD_WAIT: Duration = if cfg!(test) {
    Duration::from_millis(600)
} else {
    Duration::from_secs(15)
};

/// The `--keep` key: the sha256 of what is pushed, the module and the
/// staprun bundle (none when the board has its own staprun).
pub fn keep_key(ko: &[u8], staprun: &Staprun) -> String {
    let bundle = match staprun {
        Staprun::Bundle(b) => sha256_hex(b),
        Staprun::Board => "board-staprun".to_string(),
    };
    sha256_hex(format!("whosent stap {} {bundle}", sha256_hex(ko)).as_bytes())
}

/// The `.ko` file's name: staprun takes the module name from it.
const KO_NAME: &str = "whosent_session.ko";

/// Puts the module (and the bundle) into the directory, checked;
/// returns the staprun command to use there. `existing`: the directory
/// was kept (`--keep`) and its module and bundle are reused if their
/// sha256 on the board is still the one pushed; `keep`: the bundle's
/// tar.gz stays next to its unpacked copy, for the next run's check.
pub fn push(
    p: &Pusher<'_>,
    ko: &[u8],
    staprun: &Staprun,
    existing: bool,
    keep: bool,
) -> Result<String, HostError> {
    let ko_path = p.path(KO_NAME);
    let tgz = p.path("staprun.tar.gz");
    let verify_ko = || p.verify(&ko_path, &sha256_hex(ko), "module", "loading");
    let verify_tgz = |b: &[u8]| p.verify(&tgz, &sha256_hex(b), "staprun bundle", "loading");
    if existing {
        let kept = verify_ko().is_ok()
            && match staprun {
                Staprun::Board => true,
                Staprun::Bundle(b) => verify_tgz(b).is_ok(),
            };
        if kept {
            if let Staprun::Bundle(_) = staprun {
                // What runs is the unpacked copy: unpacked again from the
                // tar.gz just verified, rather than trusted as it was left.
                unpack_bundle(p, &tgz, true)?;
            }
            say!(
                "whosent: using the module{} kept on the board in {} (sha256 verified)",
                if matches!(staprun, Staprun::Bundle(_)) {
                    " and staprun"
                } else {
                    ""
                },
                p.dir
            );
            return Ok(command(p, staprun));
        }
        say!(
            "whosent: what was kept on the board in {} does not match; uploading again",
            p.dir
        );
    }
    let bundle_len = match staprun {
        Staprun::Bundle(b) => b.len() as u64,
        Staprun::Board => 0,
    };
    // The bundle unpacks to about 2.6 times its size.
    let need_kb = (ko.len() as u64 + bundle_len * 4) / 1024;
    p.need_free(need_kb, |kb| {
        format!("the board has {kb} KiB free in /tmp, and the module and staprun need about {need_kb} KiB")
    })?;
    p.put(KO_NAME, ko, 0o600, "uploading the module")?;
    verify_ko()?;
    let b = match staprun {
        Staprun::Board => {
            say!(
                "whosent: uploaded the module ({} KiB) to {}; using the board's staprun",
                ko.len() / 1024,
                p.dir
            );
            return Ok(command(p, staprun));
        }
        Staprun::Bundle(b) => b,
    };
    if p.dir.contains(char::is_whitespace) {
        return Err(other(
            format!(
                "the board's directory {:?} has a space, which the staprun bundle cannot run from",
                p.dir
            ),
            "set TMPDIR for the login user to a path without spaces",
        ));
    }
    if !p.facts.has("tar") {
        return Err(other(
            "the board has no staprun and no tar to unpack the staprun bundle with",
            "install tar (busybox tar will do) or SystemTap's runtime on the board",
        ));
    }
    p.put("staprun.tar.gz", b, 0o600, "uploading staprun")?;
    verify_tgz(b)?;
    unpack_bundle(p, &tgz, keep)?;
    say!(
        "whosent: uploaded the module ({} KiB) and staprun ({} KiB) to {}; sha256 verified",
        ko.len() / 1024,
        b.len() / 1024,
        p.dir
    );
    Ok(command(p, staprun))
}

/// Unpacks the bundle into `DIR/rt`, afresh; the tar.gz stays with `keep`.
fn unpack_bundle(p: &Pusher<'_>, tgz: &str, keep: bool) -> Result<(), HostError> {
    let rt = p.path("rt");
    p.unpack(&format!("rm -rf {}", quote(&rt)), "the staprun bundle")?;
    p.unpack(
        &format!(
            "mkdir {rt} && tar -xzf {tgz} -C {rt}{rm}",
            rt = quote(&rt),
            tgz = quote(tgz),
            rm = if keep {
                String::new()
            } else {
                format!(" && rm -f {}", quote(tgz))
            }
        ),
        "the staprun bundle",
    )
}

fn command(p: &Pusher<'_>, staprun: &Staprun) -> String {
    match staprun {
        Staprun::Board => "staprun".to_string(),
        Staprun::Bundle(_) => quote(&format!("{}/run-staprun", p.path("rt"))),
    }
}

fn loaded(t: &dyn Transport, module: &str) -> Result<bool, HostError> {
    let out = t.run(&format!(
        "grep -q {} /proc/modules && echo loaded; true",
        quote(&format!("^{module} "))
    ))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains("loaded"))
}

pub fn wait_unloaded(t: &dyn Transport, module: Option<&str>) {
    let Some(m) = module else { return };
    let end = Instant::now() + UNLOAD_WAIT;
    while Instant::now() < end {
        if !loaded(t, m).unwrap_or(false) {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The last word: the module must be gone from the board.
pub fn still_loaded(t: &dyn Transport, module: &str) -> Result<(), HostError> {
    if !loaded(t, module)? {
        return Ok(());
    }
    wait_unloaded(t, Some(module));
    if loaded(t, module)? {
        return Err(other(
            format!("the module {module} is still loaded on the board after the session ended"),
            format!("unload it there with `staprun -d {module}` or `rmmod {module}`"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ko_file_is_named_after_the_module() {
        assert_eq!(KO_NAME, format!("{}.ko", super::super::script::MODULE_NAME));
    }

    #[test]
    fn the_keep_key_changes_with_what_is_pushed() {
        let a = keep_key(b"ko", &Staprun::Board);
        assert_eq!(a.len(), 64);
        assert_eq!(a, keep_key(b"ko", &Staprun::Board));
        assert_ne!(a, keep_key(b"ko2", &Staprun::Board));
        assert_ne!(a, keep_key(b"ko", &Staprun::Bundle(b"tgz".to_vec())));
        assert_ne!(
            keep_key(b"ko", &Staprun::Bundle(b"tgz".to_vec())),
            keep_key(b"ko", &Staprun::Bundle(b"tgz2".to_vec()))
        );
    }
}
