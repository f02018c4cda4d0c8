#!/usr/bin/env bash
# Installs everything whosent's demo and tests need on a Debian 12
# machine, idempotently: it only installs what is missing and is quiet
# when everything is there. Run as root.
set -euo pipefail

say() { echo "setup: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "run as root (apt-get, mount)"; exit 2; }

# Host packages. qemu-system-arm provides qemu-system-aarch64 too;
# gcc-arm-linux-gnueabihf links the armv7 agent (see docs/agent-size.md);
# gcc-aarch64-linux-gnu and systemtap build stap modules for the board.
PKGS=(qemu-system-arm qemu-user-static cpio binutils-aarch64-linux-gnu
      openssh-client openssh-server sudo util-linux procps
      gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu systemtap trace-cmd)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  say "adding the arm64 dpkg architecture (for the emulated board's packages)"
  dpkg --add-architecture arm64
  need_update=1
fi
if [ ${#missing[@]} -gt 0 ] || [ $need_update = 1 ]; then
  say "apt-get update"
  apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust targets for the agent. armv7 musl's rust-std may not be
# downloadable; whosent-deploy then builds a static glibc armv7 agent.
installed=$(rustup target list --installed)
for t in aarch64-unknown-linux-musl x86_64-unknown-linux-musl armv7-unknown-linux-gnueabihf; do
  grep -qx "$t" <<<"$installed" || { say "rustup target add $t"; rustup target add "$t" >/dev/null; }
done
grep -qx armv7-unknown-linux-musleabihf <<<"$installed" \
  || rustup target add armv7-unknown-linux-musleabihf >/dev/null 2>&1 \
  || say "note: armv7-unknown-linux-musleabihf is not available from rustup here; armv7 agents are static glibc builds"
rustup component list --installed 2>/dev/null | grep -q '^llvm-tools' \
  || { say "rustup component add llvm-tools"; rustup component add llvm-tools >/dev/null; }

# tracefs for the real-kernel tests and --host local.
if [ ! -d /sys/kernel/tracing/events ]; then
  say "mounting tracefs on /sys/kernel/tracing"
  mount -t tracefs nodev /sys/kernel/tracing
fi
exit 0
