//! The board's side of a session: its staprun (its own, or the bundle
//! pushed with the module) and the sh that runs it.
//!
//! # Unloading on every way out
//!
//! stapio unloads the module when it gets SIGINT, SIGTERM or SIGHUP, or
//! when the script calls `exit()` (`max_events`). What it does *not*
//! notice is the SSH channel closing: exec commands run without a
//! terminal, so no SIGHUP comes, and stapio does not read its stdin; on
//! the emulated board it stayed loaded after the connection dropped
//! until its next write failed. So [`wrapper`] runs stapio under a small
//! sh that turns EOF on stdin into SIGTERM: the host stops a session by
//! closing stdin (duration, Ctrl-C, a host-side count, stdout gone), and
//! a dropped connection or a killed whosent-deploy closes it too.
//! SIGTERM rather than SIGINT: a background job of a non-interactive sh
//! starts with SIGINT ignored, so a stop that came before stapio set its
//! handlers would be lost. The sh then checks /proc/modules, unloads a
//! module that stapio left behind (a stop between staprun's insmod and
//! stapio's handlers), and removes the directory.

use super::other;
use super::script::MODULE_NAME;
use crate::build::Target as Arch;
use crate::error::HostError;
use crate::ssh::upload::quote;
use std::io::Read;
use std::path::Path;

/// staprun's buffer in MB; the default (about 32 MB) is a lot for a
/// small board, and signals are few (docs/stap-notes.md).
const BUFFER_MB: u32 = 1;

/// How the board runs staprun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staprun {
    /// The board's own `staprun` (in PATH).
    Board,
    /// The bundle's bytes; pushed and run as `DIR/rt/run-staprun`.
    Bundle(Vec<u8>),
}

/// A `--staprun-bundle`, read and looked into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub data: Vec<u8>,
    /// `e_machine` of its `bin/staprun`.
    pub machine: u16,
}

const BUNDLE_HINT: &str =
    "build one with scripts/staprun-bundle.sh ARCH (a tar.gz with run-staprun, bin/ and lib/)";

/// Reads and checks a `--staprun-bundle`: a tar.gz with `run-staprun`
/// and an ELF `bin/staprun`.
pub fn read_bundle(path: &Path) -> Result<Bundle, HostError> {
    let data = std::fs::read(path).map_err(|e| {
        other(
            format!("cannot read --staprun-bundle {}: {e}", path.display()),
            BUNDLE_HINT,
        )
    })?;
    let bad = |why: String| {
        other(
            format!("--staprun-bundle {}: {why}", path.display()),
            BUNDLE_HINT,
        )
    };
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(data.as_slice()));
    let (mut runner, mut machine) = (false, None);
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a tar.gz ({e})")))?;
    for e in entries {
        let mut e = e.map_err(|e| bad(format!("not a tar.gz ({e})")))?;
        let p = e
            .path()
            .map(|p| p.to_string_lossy().trim_start_matches("./").to_string());
        match p.as_deref() {
            Ok("run-staprun") => runner = true,
            Ok("bin/staprun") => {
                let mut elf = Vec::new();
                if e.read_to_end(&mut elf).is_ok() {
                    machine = crate::build::elf::machine(&elf);
                }
            }
            _ => {}
        }
    }
    if !runner {
        return Err(bad("it has no run-staprun at its top".into()));
    }
    let machine = machine.ok_or_else(|| bad("it has no bin/staprun ELF binary".into()))?;
    Ok(Bundle { data, machine })
}

impl Bundle {
    /// Its staprun must run on the board.
    pub fn check(self, arch: Arch, path: &Path) -> Result<Vec<u8>, HostError> {
        if self.machine != arch.elf_machine() {
            return Err(other(
                format!(
                    "--staprun-bundle {} holds a staprun for ELF machine {}, but the board is {}",
                    path.display(),
                    self.machine,
                    arch.name()
                ),
                "build the bundle for the board's architecture (scripts/staprun-bundle.sh arm64|armhf|amd64)",
            ));
        }
        Ok(self.data)
    }
}

/// The sh the board runs; see the module docs. `staprun` is the
/// command (already quoted), `args` the module options; with `keep`
/// (`--keep`) the directory stays for the next run.
pub fn wrapper(dir: &str, staprun: &str, args: &[String], keep: bool) -> String {
    let opts: Vec<String> = args.iter().map(|a| quote(a)).collect();
    format!(
        r#"d={dir}
cd "$d" || exit 2
exec 3<&0
{staprun} -b {BUFFER_MB} -R ./{MODULE_NAME}.ko {opts} </dev/null 3<&- &
p=$!
trap '' PIPE
(while read -r _; do :; done <&3; [ -d "$d" ] && kill -TERM "$p") >/dev/null 2>&1 &
w=$!
exec 3<&- 0</dev/null
wait "$p"; st=$?
kill "$w" 2>/dev/null
n={MODULE_NAME}; s="_$p"
m=$(echo "$n" | cut -c1-$((${{#n}} - ${{#s}})))$s
if grep -q "^$m " /proc/modules 2>/dev/null; then
  echo "whosent: stapio left $m loaded; unloading it" >&2
  {staprun} -d "$m" >/dev/null 2>&1 || rmmod "$m" 2>/dev/null
fi
{cleanup}exit "$st"
"#,
        dir = quote(dir),
        opts = opts.join(" "),
        cleanup = if keep { "" } else { "cd / && rm -rf \"$d\"\n" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_quotes_what_it_is_given() {
        let w = wrapper(
            "/tmp/whosent.ab12",
            "staprun",
            &["target_comm=\"it's me\"".into(), "target_sig=9".into()],
            false,
        );
        assert!(w.starts_with("d=/tmp/whosent.ab12\n"), "{w}");
        let opts = format!(
            "{} {}",
            quote("target_comm=\"it's me\""),
            quote("target_sig=9")
        );
        assert!(
            w.contains(&format!(
                "staprun -b 1 -R ./whosent_session.ko {opts} </dev/null 3<&- &"
            )),
            "{w}"
        );
        assert!(
            w.contains("m=$(echo \"$n\" | cut -c1-$((${#n} - ${#s})))$s\n"),
            "{w}"
        );
        assert!(w.ends_with("cd / && rm -rf \"$d\"\nexit \"$st\"\n"), "{w}");
        let k = wrapper("/tmp/whosent-keep-0-ab", "staprun", &[], true);
        assert!(!k.contains("rm -rf"), "{k}");
        assert!(k.ends_with("fi\nexit \"$st\"\n"), "{k}");
    }
}
