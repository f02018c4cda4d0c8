//! Putting a backend's files into the private directory, each checked
//! by its sha256 on the board before anything runs.

use crate::board::Facts;
use crate::bundle;
use crate::error::HostError;
use crate::ssh::upload::quote;
use crate::transport::{Transport, UploadMethod};

/// The board, its facts and the directory, for a backend's `push`.
pub struct Pusher<'a> {
    pub t: &'a dyn Transport,
    pub facts: &'a Facts,
    pub dir: &'a str,
    /// For the agent's `--alive-timeout` (see `flow::Plan`).
    pub alive_timeout: Option<std::time::Duration>,
}

impl Pusher<'_> {
    /// `dir/name`.
    pub fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    /// Fails unless /tmp has `need_kb` KiB free; `message` gets the free
    /// KiB and says what needs the room. Unknown free space passes.
    pub fn need_free(
        &self,
        need_kb: u64,
        message: impl Fn(u64) -> String,
    ) -> Result<(), HostError> {
        match self.facts.tmp_free_kb {
            Some(kb) if kb < need_kb => Err(HostError::other(
                message(kb),
                "free space in /tmp on the board (or set TMPDIR for the login user)",
            )),
            _ => Ok(()),
        }
    }

    /// Uploads `data` as `dir/name`; `label` names it in the progress.
    pub fn put(
        &self,
        name: &str,
        data: &[u8],
        mode: i32,
        label: &str,
    ) -> Result<UploadMethod, HostError> {
        let mut bar = crate::progress::bar(label);
        Ok(self.t.upload(data, &self.path(name), mode, &mut bar)?)
    }

    /// Runs a command that unpacks what was uploaded; `what` names it in
    /// the error.
    pub fn unpack(&self, cmd: &str, what: &str) -> Result<(), HostError> {
        let out = self.t.run(cmd)?;
        if out.status != 0 {
            return Err(HostError::other(
                format!(
                    "unpacking {what} on the board failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "check free space in /tmp on the board (`whosent-deploy doctor`)",
            ));
        }
        Ok(())
    }

    /// The file's sha256 as the board computes it (or, without
    /// sha256sum, as the bytes read back hash on this side).
    pub fn sha256(&self, path: &str) -> Result<Option<String>, HostError> {
        if self.facts.has("sha256sum") {
            let out = self
                .t
                .run(&format!("sha256sum {} 2>/dev/null", quote(path)))?;
            let text = String::from_utf8_lossy(&out.stdout);
            return Ok(text
                .split_whitespace()
                .next()
                .filter(|h| h.len() == 64)
                .map(str::to_string));
        }
        let out = self.t.run(&format!("cat {} 2>/dev/null", quote(path)))?;
        Ok((out.status == 0).then(|| bundle::sha256_hex(&out.stdout)))
    }

    /// Checks `path` against `hash`; `what` ("agent", "module") and
    /// `verb` ("running", "loading") word the error.
    pub fn verify(&self, path: &str, hash: &str, what: &str, verb: &str) -> Result<(), HostError> {
        match self.sha256(path)? {
            Some(h) if h == hash => Ok(()),
            Some(h) => Err(HostError::other(
                format!("the {what} on the board has sha256 {h}, expected {hash}; not {verb} it"),
                "retry; if it persists, check the board's storage (a full or failing /tmp)",
            )),
            None => Err(HostError::other(
                format!("could not read back the uploaded {what} to check its sha256"),
                "check free space in /tmp on the board (`whosent-deploy doctor`)",
            )),
        }
    }
}

/// How an upload travelled, in the words of the progress lines.
pub fn method(m: UploadMethod) -> &'static str {
    match m {
        UploadMethod::Scp => "scp",
        UploadMethod::Exec => "the exec channel",
        UploadMethod::Copy => "a local copy",
    }
}
