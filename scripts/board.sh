#!/usr/bin/env bash
# whosent emulated boards: build an aarch64 / armv7 board (Debian kernel +
# busybox + dropbear initramfs) from Debian packages, boot it under qemu with
# SSH forwarded to 127.0.0.1, and stop it again.
#
#   scripts/board.sh deps
#   scripts/board.sh build ARCH [--variant V]
#   scripts/board.sh up ARCH [--variant V] [--port P] [--name NAME]
#   scripts/board.sh down NAME|--all
#   scripts/board.sh ssh NAME [cmd...]
#   scripts/board.sh env NAME        (re-print the BOARD_* lines)
#   scripts/board.sh list            (running boards)
#
# ARCH: aarch64 | armv7.  V: plain (default) | sftp | bare.
# See docs/boards.md.  Progress goes to stderr; `up` prints shell-evaluable
# BOARD_*=... lines on stdout.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPERS=$SCRIPT_DIR/board
CACHE=${WHOSENT_CACHE:-$HOME/.cache/whosent}
BOARDS=$CACHE/boards
DEBS=$CACHE/debs
RUN=${WHOSENT_RUN:-/tmp/whosent-boards}
BOOT_TIMEOUT=${WHOSENT_BOARD_TIMEOUT:-60}
KEY=$BOARDS/id_ed25519

PROG=board
# shellcheck source=lib/steps.sh
. "$SCRIPT_DIR/lib/steps.sh"
# Each progress line names the step that runs next, for the error line.
log() { step "$*"; printf 'board: %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

# ---------------------------------------------------------------- arch table

arch_config() {
    ARCH=$1
    case $ARCH in
    aarch64)
        DEBARCH=arm64
        QEMU_USER=qemu-aarch64-static
        QEMU_SYS=qemu-system-aarch64
        # pauth-impdef: plain `max` is ~3x slower under TCG (pointer auth).
        QEMU_MACHINE=(-M virt -cpu max,pauth-impdef=on)
        KERNEL_PIN=${WHOSENT_BOARD_KERNEL_AARCH64:-linux-image-6.1.0-56-arm64}
        KERNEL_FLAVOUR=arm64
        ;;
    armv7)
        DEBARCH=armhf
        QEMU_USER=qemu-arm-static
        QEMU_SYS=qemu-system-arm
        QEMU_MACHINE=(-M virt -cpu cortex-a15)
        # 6.1.0-50 is in bookworm main; the bookworm-security armhf index
        # failed its size check here, so newer ABIs may not be visible.
        KERNEL_PIN=${WHOSENT_BOARD_KERNEL_ARMV7:-linux-image-6.1.0-50-armmp-lpae}
        KERNEL_FLAVOUR=armmp-lpae
        ;;
    *) die "unknown ARCH '$ARCH' (want aarch64 or armv7)" ;;
    esac
}

check_variant() {
    case $1 in
    plain | sftp | bare) ;;
    *) die "unknown variant '$1' (want plain, sftp or bare)" ;;
    esac
}

# ---------------------------------------------------------------- deps

HOST_PKGS=(qemu-system-arm qemu-user-static cpio openssh-client binutils util-linux iproute2 gzip)
HOST_CMDS=(qemu-system-aarch64 qemu-system-arm qemu-aarch64-static qemu-arm-static cpio ssh ssh-keygen readelf flock gzip dpkg-deb apt-get)

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root for: $*"
    fi
}

cmd_deps() {
    local missing=() p
    for p in "${HOST_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing host packages: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
            { as_root apt-get update -qq >&2 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
    fi
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        log "adding dpkg architecture arm64"
        as_root dpkg --add-architecture arm64
        as_root apt-get update -qq >&2
    fi
}

ensure_host_tools() {
    local c missing=()
    for c in "${HOST_CMDS[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) == 0 ]]; then
        log "missing host tools (${missing[*]}); running deps"
        cmd_deps
    else
        die "missing host tools: ${missing[*]}; run: scripts/board.sh deps"
    fi
}

# ---------------------------------------------------------------- apt (private state)
# Debian packages for the target arch are fetched with a private apt state
# (own lists, cache and empty status), the host's sources and keyrings, and
# APT::Architecture set to the target: the system's dpkg/apt state is never
# touched, and armhf works although it is not a dpkg architecture here.

apt_setup() {
    APT_DIR=$CACHE/apt/$DEBARCH
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
    [[ -f $APT_DIR/status ]] || : >"$APT_DIR/status"
    APT_OPTS=(
        -o "APT::Architecture=$DEBARCH" -o "APT::Architectures=$DEBARCH"
        -o "Dir::State=$APT_DIR" -o "Dir::State::Lists=$APT_DIR/lists"
        -o "Dir::State::status=$APT_DIR/status"
        -o "Dir::State::extended_states=$APT_DIR/extended_states"
        -o "Dir::Cache=$APT_DIR/cache" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
        -o Debug::NoLocking=1 -o Acquire::Languages=none -o quiet=1
    )
    [[ $(id -u) == 0 ]] && APT_OPTS+=(-o APT::Sandbox::User=root)
    APT_UPDATED=${APT_UPDATED:-0}
}

apt_update() {
    ((APT_UPDATED)) && return 0
    log "apt-get update (private $DEBARCH state in $APT_DIR)"
    # A single index failing (e.g. bookworm-security armhf size mismatch) is
    # not fatal: what matters is whether the packages are found afterwards.
    apt-get "${APT_OPTS[@]}" update >"$APT_DIR/update.log" 2>&1 ||
        log "apt-get update reported errors (see $APT_DIR/update.log); continuing"
    APT_UPDATED=1
}

apt_lists_present() { compgen -G "$APT_DIR/lists/*Packages*" >/dev/null; }

# newest cached .deb of package $1 (prints the path) or fail
cached_deb() {
    local p=$1 f best='' bestv='' v
    for f in "$DEBS/$DEBARCH/${p}"_*_"$DEBARCH".deb "$DEBS/$DEBARCH/${p}"_*_all.deb; do
        [[ -f $f ]] || continue
        v=$(dpkg-deb -f "$f" Version)
        if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$bestv"; then best=$f bestv=$v; fi
    done
    [[ -n $best ]] && printf '%s\n' "$best"
}

# Pick the kernel package: the pinned one if cached or downloadable, else the
# newest linux-image-6.1.0-N-<flavour> apt knows (with a warning).
resolve_kernel() {
    KERNEL_PKG=$KERNEL_PIN
    [[ -n $(cached_deb "$KERNEL_PKG") ]] && return 0
    apt_lists_present || apt_update
    if ! apt-cache "${APT_OPTS[@]}" show "$KERNEL_PKG" >/dev/null 2>&1; then
        apt_update
    fi
    apt-cache "${APT_OPTS[@]}" show "$KERNEL_PKG" >/dev/null 2>&1 && return 0
    local alt
    alt=$(apt-cache "${APT_OPTS[@]}" pkgnames linux-image-6.1.0- 2>/dev/null |
        grep -E "^linux-image-6\.1\.0-[0-9]+-${KERNEL_FLAVOUR}\$" | sort -V | tail -n1 || true)
    [[ -n $alt ]] || die "kernel package $KERNEL_PKG not available for $DEBARCH and no other 6.1 $KERNEL_FLAVOUR kernel found"
    log "warning: $KERNEL_PKG not available; using $alt instead"
    KERNEL_PKG=$alt
}

# fetch_debs PKG... : make sure a .deb of each is cached; sets DEB[pkg]=path
declare -A DEB=()
fetch_debs() {
    local p missing=()
    mkdir -p "$DEBS/$DEBARCH"
    if [[ ${WHOSENT_BOARD_REFRESH:-0} == 1 ]]; then
        missing=("$@")
    else
        for p; do [[ -n $(cached_deb "$p") ]] || missing+=("$p"); done
    fi
    if ((${#missing[@]})); then
        apt_lists_present || apt_update
        [[ ${WHOSENT_BOARD_REFRESH:-0} == 1 ]] && apt_update
        log "downloading ($DEBARCH): ${missing[*]}"
        if ! (cd "$DEBS/$DEBARCH" && apt-get "${APT_OPTS[@]}" download "${missing[@]}" >&2); then
            apt_update
            (cd "$DEBS/$DEBARCH" && apt-get "${APT_OPTS[@]}" download "${missing[@]}" >&2) ||
                die "apt-get download failed for: ${missing[*]} ($DEBARCH)"
        fi
    fi
    for p; do
        DEB[$p]=$(cached_deb "$p") || die "no .deb for $p ($DEBARCH) after download"
    done
}

# ---------------------------------------------------------------- kernel + modules

# Extract vmlinuz and the needed modules (with their depends= closure, read
# from each module's .modinfo section: the .deb has no modules.dep) into a
# per-kernel cache dir.  Sets KDIR, KVER, MODULE_ORDER (paths relative to
# lib/modules/KVER, dependencies first).
WANT_MODULES=(virtio_pci virtio_net virtio_rng)

kernel_prepare() {
    local deb=${DEB[$KERNEL_PKG]}
    KDIR=$CACHE/kernels/$(basename "$deb" .deb)
    if [[ ! -f $KDIR/.done ]]; then
        log "extracting kernel from $(basename "$deb")"
        rm -rf "$KDIR" && mkdir -p "$KDIR"
        dpkg-deb -c "$deb" | awk '{print $NF}' >"$KDIR/listing"
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$KDIR" --wildcards './boot/vmlinuz-*' './lib/modules/*/modules.builtin'
        touch "$KDIR/.done"
    fi
    local vm
    vm=$(compgen -G "$KDIR/boot/vmlinuz-*" | head -n1) || die "no vmlinuz in $deb"
    KVER=${vm##*/vmlinuz-}
    local mdir=lib/modules/$KVER

    # name (dashes as underscores) -> path in the package
    declare -A path_of=()
    local l n
    while read -r l; do
        [[ $l == ./$mdir/*.ko ]] || continue
        n=${l##*/}; n=${n%.ko}; n=${n//-/_}
        path_of[$n]=${l#./"$mdir"/}
    done <"$KDIR/listing"

    # breadth-first: extract what is missing, read depends=, repeat
    declare -A seen=() deps_of=()
    local queue=("${WANT_MODULES[@]}") next todo m d
    while ((${#queue[@]})); do
        todo=() next=()
        for m in "${queue[@]}"; do
            m=${m//-/_}
            [[ -n ${seen[$m]:-} ]] && continue
            seen[$m]=1
            if [[ -z ${path_of[$m]:-} ]]; then
                grep -q "/${m//_/[-_]}\.ko\$" "$KDIR/$mdir/modules.builtin" 2>/dev/null ||
                    die "module $m neither in $KERNEL_PKG nor built in"
                seen[$m]=builtin
                continue
            fi
            [[ -f $KDIR/$mdir/${path_of[$m]} ]] || todo+=("./$mdir/${path_of[$m]}")
        done
        if ((${#todo[@]})); then
            dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$KDIR" "${todo[@]}"
        fi
        for m in "${queue[@]}"; do
            m=${m//-/_}
            [[ ${seen[$m]} == builtin || -n ${deps_of[$m]+x} ]] && continue
            d=$(readelf -p .modinfo "$KDIR/$mdir/${path_of[$m]}" | sed -n 's/.*\] *depends=//p')
            deps_of[$m]=${d//,/ }
            for d in ${deps_of[$m]}; do next+=("$d"); done
        done
        queue=("${next[@]+"${next[@]}"}")
    done

    # topological order, dependencies first
    MODULE_ORDER=()
    declare -A placed=()
    _place() {
        local mm=${1//-/_} dd
        [[ -n ${placed[$mm]:-} || ${seen[$mm]} == builtin ]] && return 0
        placed[$mm]=1
        for dd in ${deps_of[$mm]}; do _place "$dd"; done
        MODULE_ORDER+=("${path_of[$mm]}")
    }
    for m in "${WANT_MODULES[@]}"; do _place "$m"; done
}

# ---------------------------------------------------------------- rootfs

# Copy ELF $1 (path inside $STAGE) plus its NEEDED closure from the unpacked
# packages in $UNPACK into the rootfs $ROOT (libraries to /lib/<triplet>).
declare -A COPIED=()
find_lib() {
    local name=$1 d
    for d in "$UNPACK"/lib/*-linux-gnu* "$UNPACK"/usr/lib/*-linux-gnu* "$UNPACK"/lib "$UNPACK"/usr/lib; do
        if [[ -e $d/$name ]]; then printf '%s\n' "$d/$name"; return 0; fi
    done
    return 1
}
copy_needed() {
    local elf=$1 lib src
    for lib in $(readelf -d "$elf" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [[ -n ${COPIED[$lib]:-} ]] && continue
        COPIED[$lib]=1
        src=$(find_lib "$lib") || die "shared library $lib (needed by ${elf##*/}) not in the unpacked packages"
        cp -L "$src" "$ROOT/lib/$TRIPLET/$lib"
        copy_needed "$ROOT/lib/$TRIPLET/$lib"
    done
}
install_bin() { # src-in-UNPACK dest-in-ROOT
    mkdir -p "$(dirname "$ROOT/$2")"
    cp -L "$UNPACK/$1" "$ROOT/$2"
    chmod 0755 "$ROOT/$2"
    copy_needed "$ROOT/$2"
}

ensure_key() {
    mkdir -p "$BOARDS"
    (
        flock 9
        if [[ ! -f $KEY ]]; then
            log "generating test key $KEY"
            ssh-keygen -q -t ed25519 -N '' -C whosent-board-test -f "$KEY"
        fi
    ) 9>"$BOARDS/.key.lock"
}

# host keys: generated once per board build dir with the target dropbearkey
# under qemu-user, so the guest never waits for entropy and known_hosts stays
# stable across rebuilds.
ensure_host_keys() {
    local hk=$OUT/hostkeys t
    mkdir -p "$hk"
    for t in ed25519 ecdsa rsa; do
        if [[ ! -f $hk/dropbear_${t}_host_key ]]; then
            log "generating $t host key (dropbearkey under $QEMU_USER)"
            local extra=()
            [[ $t == rsa ]] && extra=(-s 2048)
            QEMU_LD_PREFIX=$ROOT "$QEMU_USER" "$ROOT/usr/bin/dropbearkey" -t "$t" "${extra[@]}" \
                -f "$hk/dropbear_${t}_host_key.tmp" >/dev/null 2>&1 || die "dropbearkey -t $t failed"
            mv "$hk/dropbear_${t}_host_key.tmp" "$hk/dropbear_${t}_host_key"
        fi
    done
    if [[ ! -s $hk/host_keys.pub ]]; then
        : >"$hk/host_keys.pub.tmp"
        for t in ed25519 ecdsa rsa; do
            QEMU_LD_PREFIX=$ROOT "$QEMU_USER" "$ROOT/usr/bin/dropbearkey" -y -f "$hk/dropbear_${t}_host_key" 2>/dev/null |
                awk '/^(ssh-|ecdsa-)/ { print $1, $2 }' >>"$hk/host_keys.pub.tmp"
        done
        [[ $(wc -l <"$hk/host_keys.pub.tmp") == 3 ]] || die "could not read host public keys"
        mv "$hk/host_keys.pub.tmp" "$hk/host_keys.pub"
    fi
}

build_packages() {
    PKGS=("$KERNEL_PKG" busybox-static dropbear-bin libc6 zlib1g libcrypt1 libtomcrypt1 libtommath1 libgmp10)
    [[ $VARIANT == sftp ]] && PKGS+=(openssh-sftp-server openssh-client)
    return 0
}

cmd_build() {
    local arch='' variant=plain
    while (($#)); do
        case $1 in
        --variant) variant=${2:?--variant needs a value}; shift 2 ;;
        --variant=*) variant=${1#*=}; shift ;;
        -h | --help) usage 0 ;;
        -*) die "build: unknown option $1" ;;
        *) [[ -z $arch ]] || die "build: extra argument $1"; arch=$1; shift ;;
        esac
    done
    [[ -n $arch ]] || die "build: ARCH missing (aarch64 or armv7)"
    build_board "$arch" "$variant"
}

# build_board ARCH VARIANT: sets OUT (board build dir with vmlinuz, initramfs)
build_board() {
    arch_config "$1"
    VARIANT=$2
    check_variant "$VARIANT"
    ensure_host_tools
    ensure_key
    OUT=$BOARDS/$ARCH-$VARIANT
    mkdir -p "$OUT" "$CACHE"
    exec 8>"$CACHE/.build-$DEBARCH.lock"
    flock 8
    apt_setup
    resolve_kernel
    build_packages
    fetch_debs "${PKGS[@]}"

    # inputs: package files, this script, the helper files, the test key
    local stamp p
    stamp=$(
        {
            echo "$ARCH $VARIANT"
            for p in "${PKGS[@]}"; do basename "${DEB[$p]}"; done
            sha256sum "${BASH_SOURCE[0]}" "$HELPERS/init" "$HELPERS/inittab" "$KEY.pub" | awk '{print $1}'
        } | sha256sum | awk '{print $1}'
    )
    if [[ -f $OUT/stamp && $(<"$OUT/stamp") == "$stamp" && -f $OUT/vmlinuz && -f $OUT/initramfs.cpio.gz && -s $OUT/hostkeys/host_keys.pub ]]; then
        log "$ARCH-$VARIANT is up to date ($OUT)"
        exec 8>&-
        return 0
    fi
    local t0
    t0=$(now)
    log "building $ARCH-$VARIANT in $OUT"
    kernel_prepare

    local work
    work=$(mktemp -d "$OUT/.work.XXXXXX")
    on_exit "rm -rf '$work'"
    UNPACK=$work/unpack ROOT=$work/root
    mkdir -p "$UNPACK" "$ROOT"
    for p in "${PKGS[@]}"; do
        [[ $p == "$KERNEL_PKG" ]] && continue
        dpkg-deb -x "${DEB[$p]}" "$UNPACK"
    done

    # layout (not merged-/usr: busybox's --list-full wants bin, sbin, usr/bin, usr/sbin)
    local d
    for d in bin sbin usr/bin usr/sbin usr/lib etc/dropbear dev proc sys tmp run root/.ssh home/user/.ssh var/log mnt; do
        mkdir -p "$ROOT/$d"
    done
    TRIPLET=$(basename "$(compgen -G "$UNPACK/usr/lib/*-linux-gnu*" | head -n1)")
    [[ -n $TRIPLET ]] || die "cannot find the multiarch triplet in libc6"
    mkdir -p "$ROOT/lib/$TRIPLET"
    chmod 1777 "$ROOT/tmp"

    # busybox + applet links
    install_bin bin/busybox bin/busybox
    if [[ $VARIANT == bare ]]; then
        # Debian's busybox-static has FEATURE_SH_STANDALONE: its sh runs any
        # applet by name even without a link, so leaving out the links is not
        # enough.  Rename the two applets in busybox's sorted applet-name table
        # (same length, sort order kept): tar -> taj, sha256sum -> sha2_6sum.
        perl -0777 -pi -e '
            $n = s/\0tail\0tar\0taskset\0/\0tail\0taj\0taskset\0/g;
            $m = s/\0sha1sum\0sha256sum\0sha3sum\0/\0sha1sum\0sha2_6sum\0sha3sum\0/g;
            die "busybox applet table not found ($n, $m)\n" unless $n == 1 && $m == 1;
        ' "$ROOT/bin/busybox" || die "cannot remove tar/sha256sum from busybox"
    fi
    local a
    while read -r a; do
        [[ $a == bin/busybox || $a == linuxrc || -z $a ]] && continue
        if [[ $VARIANT == bare ]]; then
            case ${a##*/} in tar | sha256sum) continue ;; esac
        fi
        mkdir -p "$ROOT/$(dirname "$a")"
        ln -sf "$(realpath -s -m --relative-to="$(dirname "/$a")" /bin/busybox)" "$ROOT/$a"
    done < <("$QEMU_USER" "$UNPACK/bin/busybox" --list-full)
    [[ -L $ROOT/bin/sh && -L $ROOT/sbin/init ]] || die "busybox applet links missing (sh/init)"

    # dropbear (server and dropbearkey; no scp, no sftp-server: like dropbear-bin)
    install_bin usr/sbin/dropbear usr/sbin/dropbear
    install_bin usr/bin/dropbearkey usr/bin/dropbearkey
    if [[ $VARIANT == sftp ]]; then
        install_bin usr/lib/openssh/sftp-server usr/lib/openssh/sftp-server
        ln -s openssh/sftp-server "$ROOT/usr/lib/sftp-server"
        install_bin usr/bin/scp usr/bin/scp
    fi
    # dynamic loader at its PT_INTERP path
    local interp
    interp=$(readelf -l "$ROOT/usr/sbin/dropbear" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
    [[ -n $interp ]] || die "cannot read dropbear's interpreter"
    if [[ ! -e $ROOT$interp ]]; then
        [[ -e $ROOT/lib/$TRIPLET/${interp##*/} ]] || cp -L "$(find_lib "${interp##*/}")" "$ROOT/lib/$TRIPLET/${interp##*/}"
        mkdir -p "$ROOT$(dirname "$interp")"
        ln -s "$(realpath -s -m --relative-to="$(dirname "$interp")" "/lib/$TRIPLET/${interp##*/}")" "$ROOT$interp"
    fi

    # users: root and user, public key only
    cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$ROOT/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
user:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
    chmod 0600 "$ROOT/etc/shadow"
    cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
tty:x:5:
user:x:1000:
nogroup:x:65534:
EOF
    printf '/bin/sh\n/bin/ash\n' >"$ROOT/etc/shells"
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' >"$ROOT/etc/nsswitch.conf"
    printf '127.0.0.1 localhost\n10.0.2.15 whosent-board\n' >"$ROOT/etc/hosts"
    echo whosent-board >"$ROOT/etc/hostname"
    ln -s /proc/mounts "$ROOT/etc/mtab"
    cp "$KEY.pub" "$ROOT/root/.ssh/authorized_keys"
    cp "$KEY.pub" "$ROOT/home/user/.ssh/authorized_keys"
    chmod 0700 "$ROOT/root" "$ROOT/root/.ssh" "$ROOT/home/user" "$ROOT/home/user/.ssh"
    chmod 0600 "$ROOT/root/.ssh/authorized_keys" "$ROOT/home/user/.ssh/authorized_keys"

    ensure_host_keys
    cp "$OUT"/hostkeys/dropbear_*_host_key "$ROOT/etc/dropbear/"
    chmod 0600 "$ROOT"/etc/dropbear/*

    # kernel modules
    local m
    for m in "${MODULE_ORDER[@]}"; do
        mkdir -p "$ROOT/lib/modules/$KVER/$(dirname "$m")"
        cp "$KDIR/lib/modules/$KVER/$m" "$ROOT/lib/modules/$KVER/$m"
    done

    # init + settings
    cp "$HELPERS/init" "$ROOT/init" && chmod 0755 "$ROOT/init"
    cp "$HELPERS/inittab" "$ROOT/etc/inittab"
    local tracefs=yes
    [[ $VARIANT == bare ]] && tracefs=no
    cat >"$ROOT/etc/whosent-board" <<EOF
BOARD_ARCH=$ARCH
BOARD_VARIANT=$VARIANT
BOARD_KVER=$KVER
BOARD_TRACEFS=$tracefs
BOARD_MODULES="${MODULE_ORDER[*]}"
EOF
    {
        echo "arch=$ARCH variant=$VARIANT kernel=$KVER"
        for p in "${PKGS[@]}"; do basename "${DEB[$p]}"; done
    } >"$ROOT/etc/whosent-board.packages"

    # archive: everything root-owned (user's home is chowned by /init)
    (cd "$ROOT" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
        cpio --null -o -H newc -R 0:0 --quiet) | gzip -n -6 >"$work/initramfs.cpio.gz"
    cp "$(compgen -G "$KDIR/boot/vmlinuz-*" | head -n1)" "$work/vmlinuz"
    mv -f "$work/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
    mv -f "$work/vmlinuz" "$OUT/vmlinuz"
    {
        echo "ARCH=$ARCH"
        echo "VARIANT=$VARIANT"
        echo "KVER=$KVER"
        echo "KERNEL_PKG=$KERNEL_PKG"
        echo "KERNEL_DEB=$(basename "${DEB[$KERNEL_PKG]}")"
    } >"$OUT/info"
    cp "$ROOT/etc/whosent-board.packages" "$OUT/packages"
    echo "$stamp" >"$OUT/stamp"
    rm -rf "$work"
    exec 8>&-
    log "built $ARCH-$VARIANT (kernel $KVER, initramfs $(du -h "$OUT/initramfs.cpio.gz" | cut -f1)) in $(elapsed "$t0")s"
}

# ---------------------------------------------------------------- run state

# start_detached CMD...: runs CMD (qemu -daemonize) with every descriptor
# above 2 closed. A daemonized qemu lives for the whole test run, and would
# otherwise keep whatever the caller had open: a `flock FILE cmd` lock (held
# for hours by a board left up), or a test harness's pipe (its reader then
# never sees EOF).
start_detached() {
    (
        local f n
        for f in /proc/self/fd/*; do
            n=${f##*/}
            ((n > 2)) && eval "exec $n>&-" 2>/dev/null
        done
        exec "$@"
    )
}

# qemu_alive PID: running and not a zombie (a -daemonize'd qemu can linger as
# a zombie after exit, so kill -0 proves nothing).
qemu_alive() {
    local pid=$1 st
    [[ -n $pid && -r /proc/$pid/stat ]] || return 1
    st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ $st != Z && $st != X ]] || return 1
    grep -qa qemu-system "/proc/$pid/cmdline" 2>/dev/null
}

board_pid() { [[ -f $1/qemu.pid ]] && tr -dc '0-9' <"$1/qemu.pid" || true; }

ssh_opts() { # DIR PORT -> SSH_OPTS array
    SSH_OPTS=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes
        -o "UserKnownHostsFile=$1/known_hosts" -o GlobalKnownHostsFile=/dev/null
        -o IdentitiesOnly=yes -o "IdentityFile=$KEY" -o ConnectTimeout=5
        -o LogLevel=ERROR -o "Port=$2")
}

port_in_use() {
    if command -v ss >/dev/null; then
        [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

pick_port() {
    local i p
    for i in $(seq 1 50); do
        p=$((20000 + (RANDOM * 32768 + RANDOM + $$) % 40000))
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "no free port found"
}

print_env() { # DIR
    local dir=$1
    cat "$dir/env"
}

write_env() { # DIR NAME ARCH VARIANT PORT
    local dir=$1 kv
    ssh_opts "$dir" "$5"
    {
        for kv in "BOARD_NAME=$2" "BOARD_ARCH=$3" "BOARD_VARIANT=$4" "BOARD_HOST=127.0.0.1" \
            "BOARD_PORT=$5" "BOARD_USER=root" "BOARD_KEY=$KEY" "BOARD_KNOWN_HOSTS=$dir/known_hosts" \
            "BOARD_DIR=$dir" "BOARD_SSH_OPTS=${SSH_OPTS[*]}"; do
            printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"
        done
    } >"$dir/env"
}

cmd_up() {
    local arch='' variant=plain port='' name=''
    while (($#)); do
        case $1 in
        --variant) variant=${2:?}; shift 2 ;;
        --variant=*) variant=${1#*=}; shift ;;
        --port) port=${2:?}; shift 2 ;;
        --port=*) port=${1#*=}; shift ;;
        --name) name=${2:?}; shift 2 ;;
        --name=*) name=${1#*=}; shift ;;
        -h | --help) usage 0 ;;
        -*) die "up: unknown option $1" ;;
        *) [[ -z $arch ]] || die "up: extra argument $1"; arch=$1; shift ;;
        esac
    done
    [[ -n $arch ]] || die "up: ARCH missing (aarch64 or armv7)"
    arch_config "$arch"
    check_variant "$variant"
    name=${name:-$arch-$variant}
    [[ $name =~ ^[A-Za-z0-9._-]+$ ]] || die "bad board name '$name'"
    local dir=$RUN/$name
    mkdir -p "$RUN"

    # already running? then just report it (idempotent)
    if [[ -d $dir ]]; then
        local pid
        pid=$(board_pid "$dir")
        if qemu_alive "$pid" && [[ -f $dir/env ]]; then
            [[ $(cat "$dir/board" 2>/dev/null) == "$ARCH $variant" ]] ||
                die "a board named $name is running as '$(cat "$dir/board" 2>/dev/null)', not '$ARCH $variant'; pick another --name"
            # shellcheck disable=SC1091
            local bp
            bp=$(<"$dir/port")
            ssh_opts "$dir" "$bp"
            if timeout 15 ssh "${SSH_OPTS[@]}" root@127.0.0.1 true </dev/null 2>/dev/null; then
                log "$name already running on 127.0.0.1:$bp"
                print_env "$dir"
                return 0
            fi
            die "board $name is running (pid $pid) but SSH fails; run: scripts/board.sh down $name"
        fi
        log "removing stale state of $name"
        rm -rf "$dir"
    fi

    build_board "$arch" "$variant"
    mkdir "$dir" || die "cannot create $dir (another 'up $name' racing?)"

    local qemu_args t0 try pid=''
    ((${#port})) && { [[ $port =~ ^[0-9]+$ ]] || die "bad port '$port'"; }
    for try in 1 2 3 4 5; do
        local p=${port:-$(pick_port)}
        rm -f "$dir/qemu.pid" "$dir/serial.log"
        qemu_args=("${QEMU_MACHINE[@]}" -m 512M -smp 2
            -kernel "$OUT/vmlinuz" -initrd "$OUT/initramfs.cpio.gz"
            -append "console=ttyAMA0 rdinit=/init panic=-1 quiet cryptomgr.notests ${WHOSENT_BOARD_CMDLINE:-}"
            -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$p-:22"
            # romfile=: no iPXE option ROM (efi-virtio.rom is in ipxe-qemu,
            # only a Recommends of qemu-system-arm); -kernel boots need none.
            -device virtio-net-pci,netdev=n0,romfile= -device virtio-rng-pci
            -display none -monitor none -serial "file:$dir/serial.log"
            -no-reboot -daemonize -pidfile "$dir/qemu.pid" -name "whosent-$name")
        t0=$(now)
        if start_detached "$QEMU_SYS" "${qemu_args[@]}" 2>"$dir/qemu.stderr"; then
            port=$p
            break
        fi
        if [[ -n $port ]] || ! grep -qi 'host forwarding\|address already in use' "$dir/qemu.stderr"; then
            local why
            why=$(grep -v '^\s*$' "$dir/qemu.stderr" | head -n 2 | tr '\n' ' ')
            rm -rf "$dir"
            die "qemu failed to start $name: ${why:-no message}"
        fi
        log "port $p busy, retrying"
    done
    [[ -f $dir/qemu.pid ]] || { rm -rf "$dir"; die "qemu did not start (ports busy?)"; }
    pid=$(board_pid "$dir")
    echo "$port" >"$dir/port"
    echo "$name" >"$dir/name"
    cp "$OUT/info" "$dir/info"
    printf '%s %s\n' "$ARCH" "$VARIANT" >"$dir/board"
    sed "s/^/[127.0.0.1]:$port /" "$OUT/hostkeys/host_keys.pub" >"$dir/known_hosts"
    write_env "$dir" "$name" "$ARCH" "$VARIANT" "$port"
    log "booting $name ($QEMU_SYS, pid $pid, ssh on 127.0.0.1:$port)"

    local deadline ready=0
    deadline=$(awk -v a="$t0" -v t="$BOOT_TIMEOUT" 'BEGIN { printf "%d", a + t }')
    fail() {
        local last
        last=$(grep -av '^\s*$' "$dir/serial.log" 2>/dev/null | tail -n 1 | tr -cd '[:print:]' | cut -c1-120 || true)
        cp "$dir/serial.log" "$RUN/$name.failed-serial.log" 2>/dev/null || true
        stop_board "$dir" quiet || true
        die "$name did not come up: $1 (last serial line: '${last:-none}'; whole log: $RUN/$name.failed-serial.log)"
    }
    # 1. dropbear's line on the serial console (an earlier SSH probe is
    #    accepted by slirp and then stalls ~3 s in TCP retransmit)
    until grep -q 'whosent-board: dropbear started' "$dir/serial.log" 2>/dev/null; do
        qemu_alive "$pid" || fail "qemu exited during boot"
        (($(date +%s) < deadline)) || fail "no dropbear start line within ${BOOT_TIMEOUT}s"
        sleep 0.1
    done
    # 2. an SSH login with the test key
    ssh_opts "$dir" "$port"
    while :; do
        if timeout 10 ssh "${SSH_OPTS[@]}" root@127.0.0.1 true </dev/null 2>"$dir/ssh-probe.err"; then
            ready=1
            break
        fi
        qemu_alive "$pid" || fail "qemu exited during boot"
        (($(date +%s) < deadline)) || fail "SSH not answering within ${BOOT_TIMEOUT}s ($(tail -n 1 "$dir/ssh-probe.err" 2>/dev/null))"
        sleep 0.2
    done
    local took
    took=$(elapsed "$t0")
    echo "$took" >"$dir/boot-seconds"
    log "$name is up: ssh -p $port root@127.0.0.1 (boot to SSH ${took}s)"
    print_env "$dir"
}

# stop_board DIR [quiet]
stop_board() {
    local dir=$1 pid port name i
    name=$(basename "$dir")
    pid=$(board_pid "$dir")
    port=$(cat "$dir/port" 2>/dev/null || true)
    if qemu_alive "$pid"; then
        if [[ -n $port && -f $dir/known_hosts && ${2:-} != quiet ]]; then
            ssh_opts "$dir" "$port"
            timeout 10 ssh "${SSH_OPTS[@]}" root@127.0.0.1 poweroff </dev/null >/dev/null 2>&1 || true
        fi
        for i in $(seq 1 100); do
            qemu_alive "$pid" || break
            sleep 0.1
        done
        if qemu_alive "$pid"; then
            [[ ${2:-} == quiet ]] || log "$name: qemu still running after poweroff; killing $pid"
            kill -TERM "$pid" 2>/dev/null || true
            for i in $(seq 1 30); do
                qemu_alive "$pid" || break
                sleep 0.1
            done
            qemu_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    qemu_alive "$pid" && die "$name: could not stop qemu (pid $pid)"
    rm -rf "$dir"
    [[ ${2:-} == quiet ]] || log "$name stopped"
}

cmd_down() {
    (($#)) || die "down: NAME... or --all"
    local n dirs=() pids=() rc=0 p
    if [[ $1 == --all ]]; then
        [[ -d $RUN ]] || return 0
        for n in "$RUN"/*/; do
            [[ -d $n ]] && dirs+=("${n%/}")
        done
    else
        for n; do
            [[ $n =~ ^[A-Za-z0-9._-]+$ ]] || die "bad board name '$n'"
            if [[ -d $RUN/$n ]]; then dirs+=("$RUN/$n"); else log "$n: not running"; fi
        done
    fi
    # stop them in parallel: poweroff takes ~2.5 s each
    for n in "${dirs[@]+"${dirs[@]}"}"; do
        stop_board "$n" &
        pids+=($!)
    done
    for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" || rc=1; done
    return $rc
}

cmd_ssh() {
    (($#)) || die "ssh: NAME missing"
    local dir=$RUN/$1
    shift
    [[ -f $dir/port ]] || die "board $(basename "$dir") is not running (scripts/board.sh list)"
    ssh_opts "$dir" "$(<"$dir/port")"
    local user=root
    if [[ ${1:-} == --user ]]; then user=${2:?}; shift 2; fi
    # Not exec, so the EXIT hooks (scripts/lib/steps.sh) run; the
    # command's status is passed through without an error line.
    local rc=0
    ssh "${SSH_OPTS[@]}" "$user@127.0.0.1" "$@" || rc=$?
    exit "$rc"
}

cmd_env() {
    (($#)) || die "env: NAME missing"
    [[ -f $RUN/$1/env ]] || die "board $1 is not running"
    print_env "$RUN/$1"
}

cmd_list() {
    local d pid st
    [[ -d $RUN ]] || return 0
    for d in "$RUN"/*/; do
        [[ -d $d ]] || continue
        d=${d%/}
        pid=$(board_pid "$d")
        st=dead
        qemu_alive "$pid" && st=running
        printf '%s\t%s\tport=%s\tpid=%s\t%s\n' "$(basename "$d")" "$(cat "$d/board" 2>/dev/null)" \
            "$(cat "$d/port" 2>/dev/null)" "$pid" "$st"
    done
}

main() {
    (($#)) || usage
    local cmd=$1
    shift
    case $cmd in
    deps) cmd_deps "$@" ;;
    build) cmd_build "$@" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    ssh) cmd_ssh "$@" ;;
    env) cmd_env "$@" ;;
    list | ls) cmd_list ;;
    -h | --help | help) usage 0 ;;
    *) die "unknown command '$cmd'" ;;
    esac
}

main "$@"
