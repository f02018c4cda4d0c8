#!/usr/bin/env bash
# Self-test of the emulated boards: boots aarch64 plain/sftp/bare and armv7
# plain at the same time, checks what each variant promises, stops them all.
#   scripts/board/selftest.sh [BOARD...]    (default: all four)
# BOARD is ARCH-VARIANT, e.g. aarch64-sftp.  Ends with "N passed, N failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BOARD=$HERE/../board.sh
PREFIX=selftest-$$
boards=("$@")
((${#boards[@]})) || boards=(aarch64-plain aarch64-sftp aarch64-bare armv7-plain)

pass=0 fail=0
ok() { pass=$((pass + 1)); printf 'ok    %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL  %s\n' "$*"; }
check() { # description command...
    local d=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi
}
check_not() {
    local d=$1
    shift
    if "$@" >/dev/null 2>&1; then bad "$d"; else ok "$d"; fi
}

started=()
cleanup() {
    local n
    for n in "${started[@]+"${started[@]}"}"; do "$BOARD" down "$n" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# build first (sequentially, quiet when up to date), then boot them all
for b in "${boards[@]}"; do
    "$BOARD" build "${b%-*}" --variant "${b##*-}"
done

declare -A boot=() envs=()
for b in "${boards[@]}"; do
    name=$PREFIX-$b
    env=$("$BOARD" up "${b%-*}" --variant "${b##*-}" --name "$name") || { bad "$b boots"; continue; }
    started+=("$name")
    boot[$b]=$(cat "/tmp/whosent-boards/$name/boot-seconds" 2>/dev/null || echo '?')
    eval "$env"
    envs[$b]=$env
    ok "$b boots (boot to SSH ${boot[$b]}s, port $BOARD_PORT)"
done

tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT
head -c 3000000 /dev/urandom >"$tmp/blob"
want=$(sha256sum "$tmp/blob" | cut -d' ' -f1)

for b in "${boards[@]}"; do
    [[ -n ${envs[$b]:-} ]] || continue
    eval "${envs[$b]}"
    read -r -a O <<<"$BOARD_SSH_OPTS"
    R() { ssh "${O[@]}" root@127.0.0.1 "$@" </dev/null; }
    U() { ssh "${O[@]}" user@127.0.0.1 "$@" </dev/null; }
    arch=${b%-*} variant=${b##*-}
    m=$(R uname -m || true)
    case $arch in
    aarch64) [[ $m == aarch64 ]] && ok "$b uname -m = $m" || bad "$b uname -m = '$m'" ;;
    armv7) [[ $m == armv7l ]] && ok "$b uname -m = $m" || bad "$b uname -m = '$m'" ;;
    esac
    st=0
    R 'exit 7' || st=$?
    [[ $st == 7 ]] && ok "$b exit status comes back" || bad "$b exit status ($st)"
    if ssh "${O[@]}" root@127.0.0.1 'cat > /tmp/blob' <"$tmp/blob"; then
        ok "$b upload via cat > /tmp/blob"
    else
        bad "$b upload via cat"
    fi
    got=$(R 'sha256sum /tmp/blob 2>/dev/null || echo none' | cut -d' ' -f1)
    if [[ $variant == bare ]]; then
        [[ $got == none ]] && ok "$b has no sha256sum" || bad "$b has sha256sum"
        check_not "$b has no tar" R 'command -v tar'
        check_not "$b tracefs not mounted" R 'test -e /sys/kernel/tracing/events/signal/signal_generate/format'
        check "$b tracefs can be mounted by hand" R 'mount -t tracefs tracefs /sys/kernel/tracing && test -e /sys/kernel/tracing/events/signal/signal_generate/format && umount /sys/kernel/tracing'
    else
        [[ $got == "$want" ]] && ok "$b uploaded file intact" || bad "$b uploaded file sha256 '$got'"
        check "$b has applets sha256sum mktemp tar uname id df kill sleep sh" \
            R 'for a in sha256sum mktemp tar uname id df kill sleep sh; do command -v $a || exit 1; done'
        check "$b signal_generate format present" R 'test -r /sys/kernel/tracing/events/signal/signal_generate/format'
        check "$b df / works" R 'df -k /'
        check "$b tar -xzf keeps modes" R 'cd /tmp && mkdir -p t/d && echo x > t/d/f && chmod 751 t/d/f && tar -czf t.tgz -C t d && mkdir u && tar -xzf t.tgz -C u && test "$(stat -c %a u/d/f)" = 751'
    fi
    check_not "$b user cannot write tracefs" U 'echo 1 > /sys/kernel/tracing/tracing_on'
    check "$b user is uid 1000 without sudo" U 'test "$(id -u)" = 1000 && ! command -v sudo'
    if [[ $variant == sftp ]]; then
        check "$b scp -O upload" scp -O "${O[@]}" "$tmp/blob" root@127.0.0.1:/tmp/blob.scpO
        check "$b scp (sftp protocol) upload" scp "${O[@]}" "$tmp/blob" root@127.0.0.1:/tmp/blob.scp
        check "$b sftp put" sftp "${O[@]}" -b - root@127.0.0.1 <<<"put $tmp/blob /tmp/blob.sftp"
        got=$(R 'sha256sum /tmp/blob.scpO /tmp/blob.scp /tmp/blob.sftp' | cut -d' ' -f1 | sort -u)
        [[ $got == "$want" ]] && ok "$b scp/sftp copies intact" || bad "$b scp/sftp copies differ"
    else
        check_not "$b scp -O fails" scp -O "${O[@]}" "$tmp/blob" root@127.0.0.1:/tmp/blob.scpO
        check_not "$b scp fails" scp "${O[@]}" "$tmp/blob" root@127.0.0.1:/tmp/blob.scp
        check_not "$b sftp fails" sftp "${O[@]}" -b - root@127.0.0.1 <<<"put $tmp/blob /tmp/blob.sftp"
    fi
done

for n in "${started[@]+"${started[@]}"}"; do
    if "$BOARD" down "$n"; then ok "$n stops"; else bad "$n stops"; fi
done
started=()
if pgrep -f 'whosent-'"$PREFIX" >/dev/null; then bad "no qemu left"; else ok "no qemu left"; fi

echo
for b in "${boards[@]}"; do printf 'boot to SSH: %-14s %ss\n' "$b" "${boot[$b]:-?}"; done
echo "$pass passed, $fail failed"
((fail == 0))
