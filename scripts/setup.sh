#!/usr/bin/env bash
# setup.sh [--check]
#
# Installs everything whosent's demo, tests and benchmark need on a
# Debian 12 machine, idempotently: it installs only what is missing and
# is quiet when everything is there. Run as root.
#
# Packages are installed with --no-install-recommends, as a fresh CI
# machine does, so every package the project uses is named in PKGS
# below; a Recommends that happens to be on this machine does not count.
#
# --check lists every file from outside the project that the demo, the
# tests and the bench use, with the Debian package that provides it, and
# fails (naming the package) when that package is neither in PKGS nor
# pulled in by PKGS' Depends. It installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PROG=setup
# shellcheck source=lib/steps.sh
. scripts/lib/steps.sh
say() { echo "setup: $*" >&2; }
# fail STEP WHY [STATUS]: the one line a failed step leaves, then exit.
fail() { report_once "setup: error: step '$1' failed: $2"; exit "${3:-1}"; }

# The packages, each with why it is here. qemu-system-arm provides
# qemu-system-aarch64 too; the boards' NIC is started with romfile= so
# qemu needs no option ROM (ipxe-qemu, a Recommends, is not installed).
PKGS=(
  qemu-system-arm            # the emulated aarch64 and armv7 boards
  qemu-user-static           # cross-built agents and board tools under qemu-user
  cpio gzip                  # the boards' initramfs
  binutils                   # readelf: NEEDED closures of the boards' dropbear
  binutils-aarch64-linux-gnu # objcopy for arm64 stap modules
  gcc-aarch64-linux-gnu      # compiles stap modules for the aarch64 board ...
  libc6-dev-arm64-cross      # ... and, with this libc, the static test programs of tests/fixtures/stap/record.sh
  gcc-arm-linux-gnueabihf    # links the static glibc armv7 agent ...
  libc6-dev-armhf-cross      # ... with its crt1.o, crti.o and libc.a (only a Recommends of the gcc)
  openssh-client             # ssh, ssh-keygen
  openssh-server             # the local sshd the deploy tests log into
  dropbear-bin               # the local dropbear server of the SSH tests (what boards run)
  sudo util-linux procps iproute2
  systemtap                  # the stap backend and its cross-builds
  trace-cmd bpftrace         # the benchmark's peers
  g++                        # scripts/fuzz.sh: libfuzzer-sys compiles libFuzzer (C++)
  auditd                     # auditd, auditctl, ausearch: record the audit parser's fixtures (its postinst does not start it without an init)
)
# Commands the scripts run that come from PKGS (checked after install).
CMDS=(qemu-system-aarch64 qemu-system-arm qemu-aarch64-static qemu-arm-static
      cpio gzip readelf aarch64-linux-gnu-objcopy aarch64-linux-gnu-gcc
      arm-linux-gnueabihf-gcc ssh ssh-keygen sudo setpriv unshare flock ip
      stap staprun trace-cmd bpftrace)

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# ------------------------------------------------------------------ --check

# The files from outside the project, as "FILE PACKAGE WHAT". FILE is a
# path, or a command name looked up on PATH.
FILES=(
  "qemu-system-aarch64 qemu-system-arm the aarch64 board's emulator"
  "qemu-system-arm qemu-system-arm the armv7 board's emulator"
  "/usr/share/qemu/efi-virtio.rom - not used: the boards' virtio-net-pci has romfile= (ipxe-qemu not needed)"
  "qemu-aarch64-static qemu-user-static aarch64 agents and dropbearkey under qemu-user"
  "qemu-arm-static qemu-user-static armv7 agents under qemu-user"
  "arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf linker of the static glibc armv7 agent"
  "/usr/arm-linux-gnueabihf/lib/crt1.o libc6-dev-armhf-cross armv7 C runtime start file"
  "/usr/arm-linux-gnueabihf/lib/crti.o libc6-dev-armhf-cross armv7 C runtime start file"
  "/usr/arm-linux-gnueabihf/lib/libc.a libc6-dev-armhf-cross armv7 static libc"
  "aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu compiler of aarch64 stap modules"
  "/usr/aarch64-linux-gnu/lib/libc.a libc6-dev-arm64-cross static libc of the stap fixtures' test programs (tests/fixtures/stap/record.sh)"
  "aarch64-linux-gnu-objcopy binutils-aarch64-linux-gnu objcopy of aarch64 stap modules"
  "readelf binutils NEEDED closure of the boards' dropbear"
  "cpio cpio the boards' initramfs"
  "gzip gzip the boards' initramfs"
  "ssh openssh-client the tests' and demo's SSH client"
  "ssh-keygen openssh-client test keys"
  "/usr/sbin/sshd openssh-server the local sshd of the deploy tests"
  "/usr/sbin/dropbear dropbear-bin the local dropbear of the SSH tests (scripts/local-sshd.sh --dropbear)"
  "sudo sudo --sudo tests"
  "setpriv util-linux non-root and uid-changing senders in tests"
  "unshare util-linux pid-namespace tests"
  "ip iproute2 lab network namespaces"
  "stap systemtap the stap backend"
  "staprun systemtap-runtime loads stap modules (host tests)"
  "trace-cmd trace-cmd benchmark peer"
  "bpftrace bpftrace benchmark peer"
  "g++ g++ compiles libFuzzer for scripts/fuzz.sh (libfuzzer-sys)"
  "auditd auditd records the audit parser's fixtures (crates/whosent-audit/tests/fixtures/record.sh)"
  "auditctl auditd audit rules while those fixtures are recorded"
  "ausearch auditd the fixtures' ausearch output"
)
# Files fetched as .debs into the cache (never installed on this machine).
FETCHED=(
  "ld-linux-aarch64.so.1 libc6:arm64 dynamic loader copied into the aarch64 board (scripts/board.sh)"
  "ld-linux-armhf.so.3 libc6:armhf dynamic loader copied into the armv7 board (scripts/board.sh)"
  "ld-linux-aarch64.so.1 libc6:arm64 dynamic loader in the staprun bundle (scripts/staprun-bundle.sh)"
  "vmlinuz linux-image-6.1.0-56-arm64 the aarch64 board's kernel (scripts/board.sh)"
  "vmlinuz linux-image-6.1.0-50-armmp-lpae the armv7 board's kernel (scripts/board.sh)"
)

# Packages PKGS brings: the list itself and its Depends/PreDepends,
# followed recursively. Recommends and Suggests do not count.
closure() {
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "${PKGS[@]}" 2>/dev/null |
    sed -n 's/^ *\(Pre\)\{0,1\}Depends: //p; /^[a-z0-9]/p' | tr -d '<>' | sed 's/:.*//' | sort -u
}

# owner FILE: the installed package that holds FILE (usrmerge-aware).
owner() {
  local f=$1 p alt
  for p in "$f" "$(readlink -f "$f")"; do
    for alt in "$p" "${p/#\/usr\/bin\//\/bin\/}" "${p/#\/usr\/sbin\//\/sbin\/}" "${p/#\/bin\//\/usr\/bin\/}"; do
      dpkg-query -S "$alt" 2>/dev/null | head -1 | sed 's/: .*//; s/:.*//' | grep . && return 0
    done
  done
  return 1
}

check() {
  local brought bad=0 line file pkg what path got
  brought=$(closure)
  [ -n "$brought" ] || fail "--check" "apt-cache depends gave nothing (run apt-get update first)" 2
  printf '%-44s %-28s %s\n' FILE PACKAGE "USED FOR"
  for line in "${FILES[@]}"; do
    read -r file pkg what <<<"$line"
    if [ "$pkg" = - ]; then
      printf '%-44s %-28s %s\n' "$file" "(none)" "$what"
      continue
    fi
    path=$file
    [[ $file == /* ]] || path=$(command -v "$file" 2>/dev/null || echo "$file")
    status=ok
    if [ ! -e "$path" ]; then
      status="MISSING (run scripts/setup.sh)"
    elif got=$(owner "$path") && [ "$got" != "$pkg" ]; then
      # The table must say the truth about this machine.
      status="OWNED BY $got, table says $pkg"
      bad=1
    fi
    if ! grep -qx "$pkg" <<<"$brought"; then
      status="NOT BROUGHT BY setup.sh: add $pkg to PKGS"
      bad=1
    fi
    printf '%-44s %-28s %s [%s]\n' "$path" "$pkg" "$what" "$status"
    [[ $status == MISSING* ]] && bad=1
  done
  for line in "${FETCHED[@]}"; do
    read -r file pkg what <<<"$line"
    printf '%-44s %-28s %s [fetched .deb]\n' "$file" "$pkg" "$what"
  done
  if [ $bad = 1 ]; then
    echo "setup: --check failed: see the lines not marked [ok] above; run scripts/setup.sh" >&2
    exit 1
  fi
  echo "setup: --check: every file is provided by a package setup.sh installs" >&2
}

case "${1:-}" in
  --check) check; exit 0 ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  "") ;;
  *) echo "setup: unknown argument '$1' (try --check or --help)" >&2; exit 2 ;;
esac

[ "$(id -u)" = 0 ] || fail "root check" "run as root (apt-get, mount)" 2

log=$(mktemp /tmp/whosent-setup.XXXXXX)
on_exit 'rm -f "$log"'
# run STEP CMD...: runs CMD with its output in $log; on failure prints the
# step and the most telling line of that output.
run() {
  local step=$1; shift
  step "$step"
  if ! "$@" >"$log" 2>&1; then
    local why
    why=$(grep -E '^(E:|Err:|error:|Error)' "$log" | head -1)
    [ -n "$why" ] || why=$(grep -v '^\s*$' "$log" | tail -1)
    fail "$step" "${why:-no output}"
  fi
}

missing=()
for p in "${PKGS[@]}"; do pkg_installed "$p" || missing+=("$p"); done
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  say "adding the arm64 dpkg architecture (for the emulated board's packages)"
  run "dpkg --add-architecture arm64" dpkg --add-architecture arm64
  need_update=1
fi
if [ ${#missing[@]} -gt 0 ] || [ $need_update = 1 ]; then
  say "apt-get update"
  run "apt-get update" apt-get update -q
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${#missing[@]} packages (first run: about 300 MB of downloads, 2-4 min): ${missing[*]}"
  run "apt-get install ${missing[*]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
for c in "${CMDS[@]}"; do
  command -v "$c" >/dev/null || fail "host commands" "$c not found after installing; scripts/setup.sh --check says which package provides it"
done

# Rust targets for the agent. armv7 musl's rust-std may not be
# downloadable; whosent-deploy then builds a static glibc armv7 agent.
installed=$(rustup target list --installed)
for t in aarch64-unknown-linux-musl x86_64-unknown-linux-musl armv7-unknown-linux-gnueabihf; do
  grep -qx "$t" <<<"$installed" || { say "rustup target add $t"; run "rustup target add $t" rustup target add "$t"; }
done
grep -qx armv7-unknown-linux-musleabihf <<<"$installed" \
  || rustup target add armv7-unknown-linux-musleabihf >/dev/null 2>&1 \
  || say "note: armv7-unknown-linux-musleabihf is not available from rustup here; armv7 agents are static glibc builds"
rustup component list --installed 2>/dev/null | grep -q '^llvm-tools' \
  || { say "rustup component add llvm-tools"; run "rustup component add llvm-tools" rustup component add llvm-tools; }

# tracefs for the real-kernel tests and --host local.
if [ ! -d /sys/kernel/tracing/events ]; then
  say "mounting tracefs on /sys/kernel/tracing"
  run "mount tracefs" mount -t tracefs nodev /sys/kernel/tracing
fi
exit 0
