//! What a board has: one POSIX-sh probe (busybox-compatible) whose
//! `key=value` output is parsed here, so the parsing is tested without
//! a board. Used by the deploy path and by `doctor`.

use std::collections::BTreeMap;

/// Run on the board (through `sudo -n sh -c` with `--sudo`). It only
/// reads: nothing is written or mounted.
pub const PROBE: &str = r#"
echo "arch=$(uname -m)"
echo "release=$(uname -r)"
echo "uid=$(id -u)"
for c in tar sha256sum scp mktemp staprun sudo gzip; do
  if command -v "$c" >/dev/null 2>&1; then echo "has_$c=1"; else echo "has_$c=0"; fi
done
for s in /usr/lib/sftp-server /usr/lib/openssh/sftp-server /usr/libexec/sftp-server /usr/libexec/openssh/sftp-server; do
  [ -x "$s" ] && echo "has_sftp=1"
done
for t in /sys/kernel/tracing /sys/kernel/debug/tracing; do
  if [ -d "$t/events" ]; then
    echo "tracefs=$t"
    [ -e "$t/events/signal/signal_generate/format" ] && echo "signal_events=1"
    [ -d "$t/instances" ] && echo "instances=1"
    break
  fi
done
grep -qw tracefs /proc/filesystems 2>/dev/null && echo "tracefs_supported=1"
grep -qw debugfs /proc/filesystems 2>/dev/null && echo "debugfs_supported=1"
echo "tmp_df=$(df -k /tmp 2>/dev/null | tail -n 1)"
# For --backend audit: the kernel's config where it is readable, the
# loginuid file (there with CONFIG_AUDIT), and whether auditd runs.
if [ -r /proc/config.gz ] && command -v zcat >/dev/null 2>&1; then zcat /proc/config.gz 2>/dev/null
elif [ -r "/boot/config-$(uname -r)" ]; then cat "/boot/config-$(uname -r)"; fi |
  grep -E '^CONFIG_AUDIT(SYSCALL)?=' | sed 's/^CONFIG_/kconfig_/'
[ -e /proc/self/loginuid ] && echo "loginuid=1"
# Without a readable config: CONFIG_AUDITSYSCALL builds __audit_syscall_entry
# (kernel/auditsc.c), whose name /proc/kallsyms lists.
[ -r /proc/config.gz ] || [ -r "/boot/config-$(uname -r)" ] ||
  { grep -q ' __audit_syscall_entry$' /proc/kallsyms 2>/dev/null && echo "auditsyscall_sym=1"; }
for p in /proc/[0-9]*; do
  [ "$(cat "$p/comm" 2>/dev/null)" = auditd ] && { echo "auditd=${p#/proc/}"; break; }
done
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then
  sudo -n true 2>/dev/null && echo "sudo_ok=1"
fi
exit 0
"#;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub arch: String,
    pub release: String,
    /// The uid the probe ran as (root under --sudo).
    pub uid: Option<u32>,
    /// The uid of the SSH login itself.
    pub login_uid: Option<u32>,
    pub tools: BTreeMap<String, bool>,
    pub sftp: bool,
    /// The mounted tracefs, if any.
    pub tracefs: Option<String>,
    pub signal_events: bool,
    pub instances: bool,
    pub tracefs_supported: bool,
    pub debugfs_supported: bool,
    /// Free KiB in /tmp (df's "Available").
    pub tmp_free_kb: Option<u64>,
    pub sudo_ok: bool,
    /// CONFIG_AUDIT and CONFIG_AUDITSYSCALL, where the kernel's config
    /// is readable (`/proc/config.gz`, `/boot/config-RELEASE`).
    pub kconfig_audit: Option<bool>,
    pub kconfig_auditsyscall: Option<bool>,
    /// `/proc/self/loginuid` exists: the kernel has CONFIG_AUDIT.
    pub loginuid: bool,
    /// The pid of a running auditd.
    pub auditd: Option<u32>,
}

impl Facts {
    pub fn parse(out: &str) -> Facts {
        let mut f = Facts::default();
        for line in out.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k {
                "arch" => f.arch = v.to_string(),
                "release" => f.release = v.to_string(),
                "uid" => f.uid = v.parse().ok(),
                "login_uid" => f.login_uid = v.parse().ok(),
                "has_sftp" => f.sftp = true,
                k if k.starts_with("has_") => {
                    f.tools.insert(k[4..].to_string(), v == "1");
                }
                "tracefs" => f.tracefs = Some(v.to_string()),
                "signal_events" => f.signal_events = true,
                "instances" => f.instances = true,
                "tracefs_supported" => f.tracefs_supported = true,
                "debugfs_supported" => f.debugfs_supported = true,
                "sudo_ok" => f.sudo_ok = true,
                "kconfig_AUDIT" => f.kconfig_audit = Some(v == "y"),
                "kconfig_AUDITSYSCALL" => f.kconfig_auditsyscall = Some(v == "y"),
                "loginuid" => f.loginuid = true,
                "auditsyscall_sym" => {
                    f.kconfig_auditsyscall.get_or_insert(true);
                }
                "auditd" => f.auditd = v.parse().ok(),
                // `Filesystem 1K-blocks Used Available Use% Mounted`; a
                // long device name can wrap, so count from the end.
                "tmp_df" => {
                    let cols: Vec<&str> = v.split_whitespace().collect();
                    if cols.len() >= 4 {
                        f.tmp_free_kb = cols[cols.len() - 3].parse().ok();
                    }
                }
                _ => {}
            }
        }
        f
    }

    pub fn has(&self, tool: &str) -> bool {
        self.tools.get(tool).copied().unwrap_or(false)
    }

    pub fn is_root(&self) -> bool {
        self.uid == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_busybox_board() {
        // Recorded from the emulated aarch64 board (plain variant).
        let out = "arch=aarch64\nrelease=6.1.0-56-arm64\nuid=0\nhas_tar=1\nhas_sha256sum=1\nhas_scp=0\nhas_mktemp=1\nhas_staprun=0\nhas_sudo=0\nhas_gzip=1\ntracefs=/sys/kernel/tracing\nsignal_events=1\ninstances=1\ntracefs_supported=1\ndebugfs_supported=1\ntmp_df=tmpfs                   252620         4    252616   0% /tmp\n";
        let f = Facts::parse(out);
        assert_eq!(f.arch, "aarch64");
        assert!(f.is_root() && f.signal_events && f.has("tar") && !f.has("scp") && !f.sftp);
        assert_eq!(f.tmp_free_kb, Some(252616));
        assert_eq!(f.tracefs.as_deref(), Some("/sys/kernel/tracing"));
    }

    #[test]
    fn audit_facts() {
        let f = Facts::parse("kconfig_AUDIT=y\nkconfig_AUDITSYSCALL=y\nloginuid=1\nauditd=612\n");
        let sym = Facts::parse("loginuid=1\nauditsyscall_sym=1\n");
        assert_eq!(
            (sym.kconfig_audit, sym.kconfig_auditsyscall, sym.loginuid),
            (None, Some(true), true)
        );
        assert_eq!(
            (
                f.kconfig_audit,
                f.kconfig_auditsyscall,
                f.loginuid,
                f.auditd
            ),
            (Some(true), Some(true), true, Some(612))
        );
        let none = Facts::parse("uid=0\n");
        assert_eq!(
            (none.kconfig_audit, none.loginuid, none.auditd),
            (None, false, None)
        );
    }

    #[test]
    fn a_wrapped_df_line_and_missing_facts() {
        let f = Facts::parse("uid=1000\ntmp_df=  10240 20 10220 1% /tmp\nhas_tar=0\n");
        assert_eq!(f.tmp_free_kb, Some(10220));
        assert!(!f.is_root() && !f.has("tar") && !f.has("sha256sum") && f.tracefs.is_none());
    }
}
