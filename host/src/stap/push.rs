//! The stap backend's payload on the board: the module, and the staprun
//! bundle where the board has no staprun; and the check, at the end,
//! that the module is gone from the board.

use super::other;
use super::script::MODULE_NAME;
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

/// Uploads the module (and the bundle) into the directory, checked;
/// returns the staprun command to use there.
pub fn push(p: &Pusher<'_>, ko: &[u8], staprun: &Staprun) -> Result<String, HostError> {
    let bundle_len = match staprun {
        Staprun::Bundle(b) => b.len() as u64,
        Staprun::Board => 0,
    };
    // The bundle unpacks to about 2.6 times its size.
    let need_kb = (ko.len() as u64 + bundle_len * 4) / 1024;
    p.need_free(need_kb, |kb| {
        format!("the board has {kb} KiB free in /tmp, and the module and staprun need about {need_kb} KiB")
    })?;
    let ko_name = format!("{MODULE_NAME}.ko");
    p.put(&ko_name, ko, 0o600, "uploading the module")?;
    p.verify(&p.path(&ko_name), &sha256_hex(ko), "module", "loading")?;
    let b = match staprun {
        Staprun::Board => {
            eprintln!(
                "whosent: uploaded the module ({} KiB) to {}; using the board's staprun",
                ko.len() / 1024,
                p.dir
            );
            return Ok("staprun".to_string());
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
    let tgz = p.path("staprun.tar.gz");
    p.verify(&tgz, &sha256_hex(b), "staprun bundle", "loading")?;
    let rt = p.path("rt");
    p.unpack(
        &format!(
            "mkdir {rt} && tar -xzf {tgz} -C {rt} && rm -f {tgz}",
            rt = quote(&rt),
            tgz = quote(&tgz)
        ),
        "the staprun bundle",
    )?;
    eprintln!(
        "whosent: uploaded the module ({} KiB) and staprun ({} KiB) to {}; sha256 verified",
        ko.len() / 1024,
        b.len() / 1024,
        p.dir
    );
    Ok(quote(&format!("{rt}/run-staprun")))
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
