#!/bin/sh
# build-module.sh [-r RELEASE] [-m MODNAME] [-o OUT.ko] [SCRIPT] [-- STAP_ARGS...]
#
# Cross-compiles a SystemTap script into a kernel module for RELEASE
# (default 6.1.0-56-arm64) on this host, the way whosent does it:
#
#   1. scripts/stap-kernel-tree.sh RELEASE gives the header tree;
#   2. ARCH and CROSS_COMPILE come from the tree's include/config/auto.conf
#      (CROSS_COMPILE may be overridden from the environment);
#   3. if the tree's include/linux/task_work.h declares
#      task_work_cancel_func and the runtime's stp_task_work.c does not
#      know it, an adapted runtime copy is made once with
#      adapt-runtime.sh and used with -R DIR -D STAPCONF_TASK_WORK_CANCEL_FUNC;
#   4. stap -p4 -g runs with SYSTEMTAP_DIR=${WHOSENT_CACHE}/stap/systemtap,
#      so the per-tree tracepoint/autoconf cache (~20 MB, 30-90 s to
#      build) is made once.  Keep the flags constant, or it is rebuilt.
#
# SCRIPT defaults to whosent.stp beside this file, MODNAME to
# whosent_sig, OUT to ${WHOSENT_CACHE}/stap/modules/RELEASE/MODNAME.ko.
# Arguments after -- go to stap unchanged (e.g. -D MAXSKIPPED=...).
# Prints the module path on stdout; stap's own errors go to stderr and
# the exit status is stap's (1 on any pass failure).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
release=6.1.0-56-arm64
modname=whosent_sig
out=
script=$here/whosent.stp
while [ $# -gt 0 ]; do
    case "$1" in
        -r) release=$2; shift 2 ;;
        -m) modname=$2; shift 2 ;;
        -o) out=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        --) shift; break ;;
        -*) echo "build-module: unknown option $1" >&2; exit 2 ;;
        *) script=$1; shift ;;
    esac
done

cache=${WHOSENT_CACHE:-$HOME/.cache/whosent}
out=${out:-$cache/stap/modules/$release/$modname.ko}
say() { echo "build-module: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ -f "$script" ] || die "no script $script"
build=$("$here/../stap-kernel-tree.sh" "$release")

auto=$build/include/config/auto.conf
[ -f "$auto" ] || die "no $auto"
if grep -q '^CONFIG_ARM64=y' "$auto"; then
    arch=arm64 cross=aarch64-linux-gnu-
elif grep -q '^CONFIG_ARM=y' "$auto"; then
    arch=arm cross=arm-linux-gnueabihf-
elif grep -q '^CONFIG_X86_64=y' "$auto"; then
    arch=x86_64 cross=x86_64-linux-gnu-
else
    die "cannot tell the architecture of $build"
fi
cross=${CROSS_COMPILE:-$cross}
command -v "${cross}gcc" >/dev/null || die "no ${cross}gcc (install gcc-${cross%-})"

# The rename lives in the source (-common) half of a Debian tree.
tw=
for f in "$(dirname "$build")/source/include/linux/task_work.h" "$build/include/linux/task_work.h"; do
    [ -f "$f" ] && { tw=$f; break; }
done
[ -n "$tw" ] || die "no include/linux/task_work.h under $build or its source"

runtime=${SYSTEMTAP_RUNTIME:-/usr/share/systemtap/runtime}
if grep -q 'task_work_cancel_func' "$tw" \
        && ! grep -q 'task_work_cancel_func' "$runtime/stp_task_work.c"; then
    ver=$(stap -V 2>&1 | sed -n 's/.*(version \([^/ ]*\).*/\1/p' | head -n 1)
    rt=$("$here/adapt-runtime.sh" "$runtime" "$cache/stap/runtime-${ver:-unknown}-adapted")
    set -- -R "$rt" -D STAPCONF_TASK_WORK_CANCEL_FUNC "$@"
    say "kernel has task_work_cancel_func: using $rt with -D STAPCONF_TASK_WORK_CANCEL_FUNC"
fi

export SYSTEMTAP_DIR="$cache/stap/systemtap"
mkdir -p "$SYSTEMTAP_DIR" "$(dirname "$out")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
script_abs=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")
(cd "$tmp" && stap -p4 -g -a "$arch" -B CROSS_COMPILE="$cross" -r "$build" \
    "$@" -m "$modname" "$script_abs" >/dev/null) || exit $?
mv "$tmp/$modname.ko" "$out"
echo "$out"
