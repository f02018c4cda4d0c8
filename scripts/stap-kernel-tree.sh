#!/bin/sh
# stap-kernel-tree.sh [--check] [RELEASE]
#
# Lays out a Debian kernel header tree that the host can cross-build
# kernel modules (and so SystemTap modules) against, and prints its
# build directory on stdout.  RELEASE defaults to 6.1.0-56-arm64.
#
#   ${WHOSENT_CACHE:-$HOME/.cache/whosent}/debs/          the .debs (reused)
#   ${WHOSENT_CACHE}/stap/sysroot-RELEASE/                  the unpacked tree
#   .../sysroot-RELEASE/lib/modules/RELEASE/{build,source}  relative links
#
# Three packages go into one sysroot:
#   linux-headers-RELEASE:ARCH    the flavour's config, Module.symvers and
#                                 generated headers;
#   linux-headers-ABI-common      the source headers and Makefiles;
#   linux-kbuild-X.Y:HOSTARCH     fixdep/modpost/... built for *this* host.
# The names of the last two come from the headers package's Depends, so
# flavours such as -rt-arm64 find their own -common-rt.
#
# --check also builds a trivial module against the tree and prints its
# vermagic on stderr.
#
# Idempotent: a finished tree is marked with .whosent-tree and is only
# printed on later runs.  Debs already in the cache are not downloaded
# again, so a warm cache works offline.
#
# Packages of a foreign architecture: if dpkg already knows the
# architecture (dpkg --add-architecture), the system's apt is used.
# Otherwise a private apt state under ${WHOSENT_CACHE}/apt-ARCH is
# used, built from the host's sources.list, so the system is not
# changed.  WHOSENT_APT_PRIVATE=1 forces the private state.
set -eu

check=0
if [ "${1:-}" = "--check" ]; then
    check=1
    shift
fi
case "${1:-}" in
    -h|--help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0 ;;
esac

release=${1:-6.1.0-56-arm64}
cache=${WHOSENT_CACHE:-$HOME/.cache/whosent}
debs=$cache/debs
sysroot=$cache/stap/sysroot-$release
build=$sysroot/lib/modules/$release/build

say() { echo "stap-kernel-tree: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Debian's kernel flavour names the dpkg architecture of its packages.
deb_arch() {
    case "$1" in
        *-arm64|*-arm64-16k) echo arm64 ;;  # also -cloud-, -rt-
        *-armmp|*-armmp-lpae) echo armhf ;;
        *-marvell|*-rpi) echo armel ;;
        *-amd64) echo amd64 ;;
        *-686|*-686-pae) echo i386 ;;
        *) [ -n "${WHOSENT_DEB_ARCH:-}" ] && echo "$WHOSENT_DEB_ARCH" && return
           die "cannot tell the architecture of kernel flavour '$1'; set WHOSENT_DEB_ARCH" ;;
    esac
}

# kbuild ARCH and the usual Debian cross compiler prefix for a dpkg arch.
kbuild_arch() {
    case "$1" in
        arm64) echo "arm64 aarch64-linux-gnu-" ;;
        armhf) echo "arm arm-linux-gnueabihf-" ;;
        armel) echo "arm arm-linux-gnueabi-" ;;
        amd64) echo "x86_64 x86_64-linux-gnu-" ;;
        i386)  echo "x86 i686-linux-gnu-" ;;
    esac
}

# Builds a trivial module against the tree; prints vermagic on stderr.
check_tree() {
    # shellcheck disable=SC2046 # two words wanted: ARCH and prefix
    set -- $(kbuild_arch "$arch")
    karch=$1
    cross=${CROSS_COMPILE:-$2}
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cat > "$tmp/hello.c" <<'EOF'
#include <linux/module.h>
#include <linux/init.h>
static int __init whosent_hello_init(void) { pr_info("whosent hello\n"); return 0; }
static void __exit whosent_hello_exit(void) { }
module_init(whosent_hello_init);
module_exit(whosent_hello_exit);
MODULE_LICENSE("GPL");
EOF
    echo 'obj-m := hello.o' > "$tmp/Makefile"
    if ! make -C "$build" M="$tmp" ARCH="$karch" CROSS_COMPILE="$cross" modules \
            > "$tmp/make.log" 2>&1; then
        cat "$tmp/make.log" >&2
        die "hello module failed to build against $build"
    fi
    vermagic=$("${cross}objcopy" -O binary -j .modinfo "$tmp/hello.ko" /dev/stdout \
        | tr '\0' '\n' | sed -n 's/^vermagic=//p')
    say "check ok: hello.ko ($(wc -c < "$tmp/hello.ko") bytes), vermagic: $vermagic"
}

arch=$(deb_arch "$release")

if [ -f "$sysroot/.whosent-tree" ] && [ -f "$build/Makefile" ]; then
    [ $check = 1 ] && check_tree
    echo "$build"
    exit 0
fi

host_arch=$(dpkg --print-architecture)
mkdir -p "$debs" "$cache/stap"

# apt-get with either the system's state or a private one for $arch.
apt_private=
use_private_apt() {
    [ "${WHOSENT_APT_PRIVATE:-0}" = 1 ] && return 0
    [ "$arch" = "$host_arch" ] && return 1
    dpkg --print-foreign-architectures | grep -qx "$arch" && return 1
    return 0
}
apt() {
    if [ -n "$apt_private" ]; then
        apt-get -q -o APT::Architecture="$host_arch" \
            -o APT::Architectures::="$host_arch" -o APT::Architectures::="$arch" \
            -o Dir::State="$apt_private/state" -o Dir::Cache="$apt_private/cache" \
            -o Dir::State::status="$apt_private/state/status" \
            -o APT::Sandbox::User=root "$@"
    else
        apt-get -q -o APT::Sandbox::User=root "$@"
    fi
}
apt_ready=0
apt_prepare() {
    [ $apt_ready = 1 ] && return
    apt_ready=1
    if use_private_apt; then
        apt_private=$cache/apt-$arch
        mkdir -p "$apt_private/state/lists/partial" "$apt_private/cache/archives/partial"
        touch "$apt_private/state/status"
        say "using a private apt state in $apt_private (dpkg does not know $arch)"
        apt update >&2 || die "apt-get update (private state) failed"
    fi
}

# newest_deb PKG ARCH: the highest-versioned cached .deb of PKG, if any.
newest_deb() {
    # shellcheck disable=SC2012 # Debian package file names; ls -v sorts versions
    ls -v "$debs/${1}_"*"_$2.deb" 2>/dev/null | tail -n 1 || true
}

# fetch PKG ARCH: prints the cached .deb for PKG, downloading it if needed.
fetch() {
    pkg=$1 parch=$2
    hit=$(newest_deb "$pkg" "$parch")
    if [ -z "$hit" ]; then
        apt_prepare
        say "downloading $pkg:$parch"
        (cd "$debs" && apt download "$pkg:$parch" >&2) \
            || die "could not download $pkg:$parch (for a foreign architecture: dpkg --add-architecture $parch && apt-get update)"
        hit=$(newest_deb "$pkg" "$parch")
        [ -n "$hit" ] || die "download of $pkg:$parch left no .deb in $debs"
    fi
    echo "$hit"
}

headers_deb=$(fetch "linux-headers-$release" "$arch")
depends=$(dpkg-deb -f "$headers_deb" Depends | tr ',' '\n' | sed 's/^ *//; s/ .*//')
common=$(echo "$depends" | grep '^linux-headers-.*-common' | head -n 1 || true)
kbuild=$(echo "$depends" | grep '^linux-kbuild-' | head -n 1 || true)
[ -n "$common" ] || die "$headers_deb does not depend on a -common headers package"
[ -n "$kbuild" ] || die "$headers_deb does not depend on a linux-kbuild package"
common_deb=$(fetch "$common" all)
kbuild_deb=$(fetch "$kbuild" "$host_arch")

# Unpack into a fresh directory and rename it into place, so an
# interrupted run never leaves a half tree that looks finished.
tmp_root=$cache/stap/.sysroot-$release.$$
rm -rf "$tmp_root"
trap 'rm -rf "$tmp_root"' EXIT
for deb in "$headers_deb" "$common_deb" "$kbuild_deb"; do
    dpkg-deb -x "$deb" "$tmp_root"
done

hdr=usr/src/linux-headers-$release
src=usr/src/$common
[ -f "$tmp_root/$hdr/Makefile" ] || die "$headers_deb has no $hdr/Makefile"
[ -f "$tmp_root/$src/Makefile" ] || die "$common_deb has no $src/Makefile"

# The packages' lib/modules links are absolute (/usr/src/...); make them
# relative so the tree works wherever the sysroot lives.
mods=$tmp_root/lib/modules/$release
mkdir -p "$mods"
rm -f "$mods/build" "$mods/source"
ln -s "../../../$hdr" "$mods/build"
ln -s "../../../$src" "$mods/source"

# The flavour Makefile is one line, "include /usr/src/<common>/Makefile".
# Point it at the sysroot's copy (absolute: make resolves includes
# against its cwd, which kbuild changes).
sed -i "s|^include /usr/src/$common/Makefile\$|include $sysroot/$src/Makefile|" \
    "$tmp_root/$hdr/Makefile"
grep -q "^include $sysroot/$src/Makefile\$" "$tmp_root/$hdr/Makefile" \
    || die "unexpected $hdr/Makefile: $(cat "$tmp_root/$hdr/Makefile")"

# The scripts/ and tools/ links of both header dirs are relative
# (../../lib/linux-kbuild-X.Y/...) and resolve inside the sysroot.
[ -x "$tmp_root/$hdr/scripts/basic/fixdep" ] \
    || die "no host fixdep under $hdr/scripts (is $kbuild_deb for $host_arch?)"

printf '%s\n' "$(basename "$headers_deb")" "$(basename "$common_deb")" \
    "$(basename "$kbuild_deb")" > "$tmp_root/.whosent-tree"
rm -rf "$sysroot"
mv "$tmp_root" "$sysroot"
trap - EXIT
say "tree ready: $sysroot"

[ $check = 1 ] && check_tree
echo "$build"
