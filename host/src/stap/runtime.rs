//! The SystemTap runtime, adapted to kernels newer than it.
//!
//! Linux 68cbd415dd4b (v6.11, "task_work: s/task_work_cancel()/
//! task_work_cancel_func()/") renamed the function that cancels task
//! work by callback and gave the old name to a different function; the
//! pair was backported to 6.1.y, so Debian 12's current kernels have it.
//! SystemTap 4.8's `runtime/stp_task_work.c` still uses the old name
//! (in a `typeof`, a kallsyms lookup and a call), so no module builds;
//! and making only the types agree would look up and call the wrong
//! function. docs/stap-notes.md (section 2) has the details and the rule
//! implemented here; `scripts/stap/adapt-runtime.sh` is the same rule in
//! sh, and both write the same directory with the same stamp.
//!
//! The adapted copy is keyed by the SystemTap version and kept at a
//! fixed path: stap's own cache (SYSTEMTAP_DIR) is keyed by the `-R`
//! path, and a new path would cost another cold build.

use super::other;
use crate::error::HostError;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The macro that turns the adaptation on (the name later SystemTap
/// releases use for the same purpose).
pub const DEFINE: &str = "STAPCONF_TASK_WORK_CANCEL_FUNC";
const FILE: &str = "stp_task_work.c";
const STAMP: &str = ".whosent-adapted";
const NEW_NAME: &str = "task_work_cancel_func";

/// The runtime stap uses by default: `$SYSTEMTAP_RUNTIME`, else
/// `PREFIX/share/systemtap/runtime` for the `PREFIX/bin/stap` in PATH.
pub fn stock() -> PathBuf {
    if let Some(r) = std::env::var_os("SYSTEMTAP_RUNTIME").filter(|r| !r.is_empty()) {
        return PathBuf::from(r);
    }
    let stap = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("stap"))
                .find(|s| s.is_file())
        })
        .and_then(|s| fs::canonicalize(s).ok());
    stap.and_then(|s| Some(s.parent()?.parent()?.join("share/systemtap/runtime")))
        .filter(|r| r.is_dir())
        .unwrap_or_else(|| PathBuf::from("/usr/share/systemtap/runtime"))
}

/// Whether the kernel has the rename (its task_work.h names the new
/// function) and the runtime does not know it yet.
pub fn needed(task_work_h: Option<&Path>, runtime: &Path) -> bool {
    let mentions = |p: &Path| fs::read_to_string(p).is_ok_and(|t| t.contains(NEW_NAME));
    task_work_h.is_some_and(mentions) && !mentions(&runtime.join(FILE))
}

/// Inserted after the compatibility include: an empty line, then ten.
const BLOCK: &str = "
/* whosent: Linux 68cbd415dd4b (v6.11, backported to 6.1.y and others)
 * renamed task_work_cancel(task, func) to task_work_cancel_func() and
 * added an unrelated bool task_work_cancel(task, callback_head *). */
#if defined(STAPCONF_TASK_WORK_CANCEL_FUNC)
#define STP_TASK_WORK_CANCEL_FN task_work_cancel_func
#define STP_TASK_WORK_CANCEL_SYM \"task_work_cancel_func\"
#else
#define STP_TASK_WORK_CANCEL_FN task_work_cancel
#define STP_TASK_WORK_CANCEL_SYM \"task_work_cancel\"
#endif";

/// Each whole line that must occur exactly once, and what replaces it
/// (without its newline).
const EDITS: [(&str, &str); 6] = [
    (
        "#include \"linux/task_work_compatibility.h\"",
        "#include \"linux/task_work_compatibility.h\"\n@BLOCK@",
    ),
    (
        "typedef typeof(&task_work_cancel) task_work_cancel_fn;",
        "typedef typeof(&STP_TASK_WORK_CANCEL_FN) task_work_cancel_fn;",
    ),
    (
        // The #undef: stap builds with -Werror, and a redefined macro warns.
        "#define task_work_cancel (* (task_work_cancel_fn)kallsyms_task_work_cancel)",
        "#undef STP_TASK_WORK_CANCEL_FN\n#define STP_TASK_WORK_CANCEL_FN (* (task_work_cancel_fn)kallsyms_task_work_cancel)",
    ),
    (
        "        kallsyms_task_work_cancel = (void *)kallsyms_lookup_name(\"task_work_cancel\");",
        "        kallsyms_task_work_cancel = (void *)kallsyms_lookup_name(STP_TASK_WORK_CANCEL_SYM);",
    ),
    (
        "\t\t_stp_error(\"Can't resolve task_work_cancel!\");",
        "\t\t_stp_error(\"Can't resolve \" STP_TASK_WORK_CANCEL_SYM \"!\");",
    ),
    (
        "\ttwork = task_work_cancel(task, func);",
        "\ttwork = STP_TASK_WORK_CANCEL_FN(task, func);",
    ),
];

/// The adapted `stp_task_work.c`. Every edit's line must be there
/// exactly once: another SystemTap version fails here rather than being
/// half patched. A file that already knows the new name is returned as
/// it is.
pub fn patch(src: &str) -> Result<String, String> {
    if src.contains(NEW_NAME) {
        return Ok(src.to_string());
    }
    for (find, _) in EDITS {
        let n = src.lines().filter(|l| *l == find).count();
        if n != 1 {
            return Err(format!(
                "expected exactly one line '{}' in {FILE}, found {n}",
                find.escape_debug()
            ));
        }
    }
    let mut out = String::with_capacity(src.len() + BLOCK.len() + 256);
    for line in src.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        match EDITS.iter().find(|(find, _)| *find == body) {
            Some((_, repl)) => {
                out.push_str(&repl.replace("@BLOCK@", BLOCK));
                out.push_str(nl);
            }
            None => out.push_str(line),
        }
    }
    Ok(out)
}

/// POSIX `cksum` (CRC-32/CKSUM over the data and then its length),
/// which is what `adapt-runtime.sh` stamps the copy with.
pub fn cksum(data: &[u8]) -> u32 {
    fn step(crc: u32, byte: u8) -> u32 {
        let mut c = crc ^ (u32::from(byte) << 24);
        for _ in 0..8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
        }
        c
    }
    let mut crc = data.iter().fold(0u32, |c, &b| step(c, b));
    let mut len = data.len() as u64;
    while len != 0 {
        crc = step(crc, (len & 0xff) as u8);
        len >>= 8;
    }
    !crc
}

fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
    fs::create_dir_all(dest)?;
    for e in fs::read_dir(src)? {
        let e = e?;
        let to = dest.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_dir() {
            copy_tree(&e.path(), &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(e.path())?, &to)?;
        } else {
            fs::copy(e.path(), &to)?;
        }
    }
    Ok(())
}

/// Makes (or reuses) the adapted copy of `src` at `dest`. The stamp
/// names the source file's checksum, so a changed SystemTap install
/// makes a new copy.
pub fn adapt(src: &Path, dest: &Path) -> Result<(), HostError> {
    let io_err =
        |what: &str, p: &Path, e: io::Error| HostError::Io(format!("{what} {}", p.display()), e);
    let file = src.join(FILE);
    let text = fs::read(&file).map_err(|e| io_err("cannot read", &file, e))?;
    let stamp = format!("whosent-adapt v1 {} {}", cksum(&text), text.len());
    if fs::read_to_string(dest.join(STAMP)).is_ok_and(|s| s.trim_end() == stamp) {
        return Ok(());
    }
    let patched = patch(&String::from_utf8_lossy(&text)).map_err(|e| {
        other(
            format!(
                "cannot adapt the SystemTap runtime {} to this kernel's task_work_cancel_func: {e}",
                src.display()
            ),
            "this SystemTap version is not one whosent knows how to adapt; pass a runtime that \
             builds for this kernel with -R DIR (and -D as it needs), or use a newer SystemTap",
        )
    })?;
    let tmp = dest.with_extension(format!("tmp.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let made = copy_tree(src, &tmp)
        .and_then(|()| fs::write(tmp.join(FILE), &patched))
        .and_then(|()| fs::write(tmp.join(STAMP), format!("{stamp}\n")))
        .and_then(|()| {
            let _ = fs::remove_dir_all(dest);
            fs::rename(&tmp, dest)
        });
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&tmp);
        return Err(io_err("cannot write the adapted runtime", dest, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of SystemTap 4.8's stp_task_work.c that matter, with
    /// its whitespace, around filler.
    const STOCK: &str = concat!(
        "/* -*- linux-c -*- */\n",
        "#ifndef _STP_TASK_WORK_C\n",
        "#define _STP_TASK_WORK_C\n",
        "#include \"linux/task_work_compatibility.h\"\n",
        "\n",
        "#if !defined(STAPCONF_TASK_WORK_CANCEL_EXPORTED)\n",
        "typedef typeof(&task_work_cancel) task_work_cancel_fn;\n",
        "#define task_work_cancel (* (task_work_cancel_fn)kallsyms_task_work_cancel)\n",
        "#endif\n",
        "        kallsyms_task_work_cancel = (void *)kallsyms_lookup_name(\"task_work_cancel\");\n",
        "        if (kallsyms_task_work_cancel == NULL) {\n",
        "\t\t_stp_error(\"Can't resolve task_work_cancel!\");\n",
        "\ttwork = task_work_cancel(task, func);\n",
        "#endif\n",
    );

    #[test]
    fn patches_every_line_once() {
        let p = patch(STOCK).unwrap();
        assert!(p.contains(
            "#include \"linux/task_work_compatibility.h\"\n\n/* whosent: Linux 68cbd415dd4b"
        ));
        assert!(p.contains("#endif\n\n#if !defined(STAPCONF_TASK_WORK_CANCEL_EXPORTED)"));
        assert!(p.contains("#undef STP_TASK_WORK_CANCEL_FN\n#define STP_TASK_WORK_CANCEL_FN (*"));
        assert!(p.contains("kallsyms_lookup_name(STP_TASK_WORK_CANCEL_SYM);"));
        assert!(p.contains("\ttwork = STP_TASK_WORK_CANCEL_FN(task, func);\n"));
        assert!(!p.contains("typeof(&task_work_cancel)"));
        assert_eq!(p.lines().count(), STOCK.lines().count() + 12);
        // Already adapted (or a newer SystemTap): unchanged.
        assert_eq!(patch(&p).unwrap(), p);
    }

    #[test]
    fn refuses_to_half_patch() {
        let e = patch(&STOCK.replace("\ttwork = task_work_cancel(task, func);\n", "")).unwrap_err();
        assert!(e.contains("found 0"), "{e}");
        let twice = format!("{STOCK}typedef typeof(&task_work_cancel) task_work_cancel_fn;\n");
        assert!(patch(&twice).unwrap_err().contains("found 2"));
    }

    #[test]
    fn cksum_is_posix_cksum() {
        // `printf '' | cksum` and `printf 'hello\n' | cksum`.
        assert_eq!(cksum(b""), 4294967295);
        assert_eq!(cksum(b"hello\n"), 3015617425);
    }

    #[test]
    fn detects_the_need() {
        let d = std::env::temp_dir().join(format!("whosent-rt-{}", std::process::id()));
        fs::create_dir_all(d.join("rt")).unwrap();
        let h = d.join("task_work.h");
        fs::write(&h, "extern struct callback_head *task_work_cancel_func(struct task_struct *, task_work_func_t);\n").unwrap();
        fs::write(d.join("rt").join(FILE), STOCK).unwrap();
        assert!(needed(Some(&h), &d.join("rt")));
        assert!(!needed(None, &d.join("rt")));
        adapt(&d.join("rt"), &d.join("adapted")).unwrap();
        assert!(!needed(Some(&h), &d.join("adapted")));
        // Reused while the stamp matches.
        let before = fs::metadata(d.join("adapted").join(FILE))
            .unwrap()
            .modified()
            .unwrap();
        adapt(&d.join("rt"), &d.join("adapted")).unwrap();
        let after = fs::metadata(d.join("adapted").join(FILE))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
        fs::remove_dir_all(&d).unwrap();
    }
}
