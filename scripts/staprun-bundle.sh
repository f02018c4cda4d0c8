#!/bin/sh
# staprun-bundle.sh [--force] [ARCH]
#
# Builds ${WHOSENT_CACHE:-$HOME/.cache/whosent}/stap/staprun-bundle-ARCH.tar.gz
# (ARCH: a Debian architecture, default arm64) from Debian's
# systemtap-runtime:ARCH and the shared libraries staprun and stapio
# need, and prints its path on stdout.  The .debs are cached under
# ${WHOSENT_CACHE}/debs/ and reused, so a warm cache works offline.
#
# A board without SystemTap gets everything it needs to load a module:
#     mkdir -p D && cd D && tar -xzf staprun-bundle-arm64.tar.gz
#     D/run-staprun [-b 1] whosent_sig.ko target_sig=9
# The bundle's files (no top-level directory in the archive):
#     run-staprun     sh wrapper; the only entry point
#     run-stapio      sh wrapper that staprun execs in place of stapio
#     bin/staprun     Debian's binaries, unchanged (not setuid)
#     bin/stapio
#     lib/            ld-linux-*.so.1 and the NEEDED closure
#     MANIFEST        source packages and file list
# Neither binary is run by its PT_INTERP: the wrappers call the bundled
# dynamic loader with --library-path D/lib, so the board's own libc (or
# its absence, or a musl one) does not matter.  staprun execs stapio
# from $SYSTEMTAP_STAPIO when set (else the compiled-in
# /usr/lib/systemtap/stapio) and stapio unloads the module by running
# "sh -c '$SYSTEMTAP_STAPRUN ... -d MODULE'" (else /usr/bin/staprun);
# staprun honours both variables only when not running setuid, which
# is the case here (run as root through the loader).  run-staprun sets
# both to the bundle's wrappers.  Needs /bin/sh on the board.
#
# The library set is computed, not listed: ELF NEEDED entries are
# followed recursively from staprun and stapio, and every soname must
# be found in the unpacked dependency packages (Depends of
# systemtap-runtime, followed recursively, library packages only).
set -eu

force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
case "${1:-}" in
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
esac
arch=${1:-arm64}

cache=${WHOSENT_CACHE:-$HOME/.cache/whosent}
debs=$cache/debs
out=$cache/stap/staprun-bundle-$arch.tar.gz

say() { echo "staprun-bundle: $*" >&2; }
die() { say "error: $*"; exit 1; }

if [ -f "$out" ] && [ $force = 0 ]; then
    echo "$out"
    exit 0
fi

case "$arch" in
    arm64) triplet=aarch64-linux-gnu ld_so=ld-linux-aarch64.so.1 ;;
    armhf) triplet=arm-linux-gnueabihf ld_so=ld-linux-armhf.so.3 ;;
    amd64) triplet=x86_64-linux-gnu ld_so=ld-linux-x86-64.so.2 ;;
    *) die "unsupported architecture $arch (arm64, armhf, amd64)" ;;
esac
# Any binutils readelf reads any ELF; prefer the target's, else the host's.
readelf=$(command -v "$triplet-readelf" || command -v readelf) \
    || die "no readelf (install binutils-$triplet or binutils)"

mkdir -p "$debs" "$cache/stap"
work=$(mktemp -d "$cache/stap/.bundle-$arch.XXXXXX")
trap 'rm -rf "$work"' EXIT

# newest_deb PKG: the highest-versioned cached .deb of PKG:$arch or PKG:all.
newest_deb() {
    # shellcheck disable=SC2012 # Debian package file names; ls -v sorts versions
    ls -v "$debs/${1}_"*"_$arch.deb" "$debs/${1}_"*"_all.deb" 2>/dev/null | tail -n 1 || true
}

# fetch PKG: prints the cached .deb of PKG:$arch (or :all), downloading if needed.
fetch() {
    hit=$(newest_deb "$1")
    if [ -z "$hit" ]; then
        say "downloading $1:$arch"
        (cd "$debs" && apt-get -q -o APT::Sandbox::User=root download "$1:$arch" >&2) \
            || die "could not download $1:$arch (for a foreign architecture: dpkg --add-architecture $arch && apt-get update)"
        hit=$(newest_deb "$1")
        [ -n "$hit" ] || die "download of $1:$arch left no .deb in $debs"
    fi
    echo "$hit"
}

# Depends of a .deb, first alternative, no versions or arch qualifiers;
# only library packages (the rest, adduser etc., brings no .so).
lib_depends() {
    dpkg-deb -f "$1" Pre-Depends Depends | sed 's/^[A-Za-z-]*: //' | tr ',' '\n' \
        | sed 's/|.*//; s/(.*)//; s/:any//; s/^ *//; s/ *$//' \
        | grep -E '^(lib|zlib)' || true
}

# Unpack systemtap-runtime and its library packages, recursively.
rt_deb=$(fetch systemtap-runtime)
dpkg-deb -x "$rt_deb" "$work/root"
: > "$work/pkgs"
basename "$rt_deb" >> "$work/pkgs"
todo=$(lib_depends "$rt_deb")
seen=" "
while [ -n "$todo" ]; do
    next=
    for p in $todo; do
        case "$seen" in *" $p "*) continue ;; esac
        seen="$seen$p "
        deb=$(fetch "$p")
        dpkg-deb -x "$deb" "$work/root"
        basename "$deb" >> "$work/pkgs"
        next="$next $(lib_depends "$deb")"
    done
    todo=$next
done

# find_lib SONAME: the file in the unpacked packages that provides it.
find_lib() {
    for d in lib/$triplet usr/lib/$triplet lib usr/lib; do
        if [ -e "$work/root/$d/$1" ]; then echo "$work/root/$d/$1"; return 0; fi
    done
    return 1
}

b=$work/bundle
mkdir -p "$b/bin" "$b/lib"
cp "$work/root/usr/bin/staprun" "$b/bin/staprun"
cp "$work/root/usr/lib/systemtap/stapio" "$b/bin/stapio"
chmod 0755 "$b/bin/staprun" "$b/bin/stapio"   # drop Debian's setuid bit

# Follow NEEDED recursively; copy each soname once, dereferenced.
needed() { "$readelf" -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
queue="$b/bin/staprun $b/bin/stapio"
while [ -n "$queue" ]; do
    next=
    for f in $queue; do
        for so in $(needed "$f"); do
            [ -e "$b/lib/$so" ] && continue
            src=$(find_lib "$so") || die "no package in the closure provides $so (needed by $(basename "$f"))"
            cp -L "$src" "$b/lib/$so"
            next="$next $b/lib/$so"
        done
    done
    queue=$next
done
if [ ! -e "$b/lib/$ld_so" ]; then
    src=$(find_lib "$ld_so") || die "no $ld_so in libc6:$arch"
    cp -L "$src" "$b/lib/$ld_so"
fi
chmod 0755 "$b/lib/$ld_so"

cat > "$b/run-staprun" <<EOF
#!/bin/sh
# whosent staprun bundle ($arch): runs the bundled staprun with the
# bundled loader and libraries.  Usage: run-staprun [staprun args...]
d=\$(cd "\$(dirname "\$0")" && pwd) || exit 1
# staprun execs \$SYSTEMTAP_STAPIO instead of /usr/lib/systemtap/stapio,
# and stapio runs "\$SYSTEMTAP_STAPRUN -d MODULE" through sh -c to
# unload, so both point into the bundle (no spaces allowed in \$d).
SYSTEMTAP_STAPIO=\$d/run-stapio
SYSTEMTAP_STAPRUN=\$d/run-staprun
export SYSTEMTAP_STAPIO SYSTEMTAP_STAPRUN
exec "\$d/lib/$ld_so" --library-path "\$d/lib" "\$d/bin/staprun" "\$@"
EOF
cat > "$b/run-stapio" <<EOF
#!/bin/sh
# Exec'd by the bundled staprun in place of /usr/lib/systemtap/stapio.
d=\$(cd "\$(dirname "\$0")" && pwd) || exit 1
exec "\$d/lib/$ld_so" --library-path "\$d/lib" "\$d/bin/stapio" "\$@"
EOF
chmod 0755 "$b/run-staprun" "$b/run-stapio"

{
    echo "whosent staprun bundle for $arch"
    echo "packages:"
    sed 's/^/  /' "$work/pkgs"
    echo "files:"
    (cd "$b" && find . -type f ! -name MANIFEST | sort | sed 's/^\.\//  /')
} > "$b/MANIFEST"

# Stable archive: sorted names, root-owned, fixed mtime.
(cd "$b" && find . -mindepth 1 | LC_ALL=C sort | sed 's/^\.\///' > "$work/list" \
    && tar --owner=0 --group=0 --numeric-owner --mtime=@0 --no-recursion \
           -cf - -T "$work/list") | gzip -9n > "$work/bundle.tar.gz"
mv "$work/bundle.tar.gz" "$out"
say "$(wc -c < "$out") bytes, $(du -sk "$b" | cut -f1) KiB unpacked, $(find "$b/lib" -type f | wc -l) libraries"
echo "$out"
