#!/bin/sh
# board-smoke.sh [KO] [BUNDLE]
#
# End-to-end check of the SystemTap backend on an emulated aarch64
# board (scripts/board.sh): uploads the staprun bundle and the module,
# loads it with target_sig=9, kills a sleep, expects one "sig" line for
# it, stops stapio with SIGINT and expects the module gone from
# /proc/modules.  Always stops the board it started.
#
# KO defaults to the output of build-module.sh, BUNDLE to the output of
# staprun-bundle.sh (both are built if missing).  Exit 0 on success.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
board=$here/../board.sh
name=stap-smoke-$$
ko=${1:-$("$here/build-module.sh")}
bundle=${2:-$("$here/../staprun-bundle.sh")}

say() { echo "board-smoke: $*" >&2; }

"$board" up aarch64 --name "$name" >/dev/null
trap '"$board" down "$name" >/dev/null 2>&1 || true' EXIT INT TERM
bs() { "$board" ssh "$name" "$@"; }

bs 'rm -rf /tmp/stb && mkdir -p /tmp/stb && cd /tmp/stb && tar -xzf -' < "$bundle"
bs 'cat > /tmp/whosent_sig.ko' < "$ko"

out=$(bs 'sh -s' <<'EOF'
cd /tmp
/tmp/stb/run-staprun -b 1 /tmp/whosent_sig.ko target_sig=9 > out.txt 2> err.txt &
sp=$!
t0=$(cut -d' ' -f1 /proc/uptime)
i=0
while ! grep -q '	ready	' out.txt 2>/dev/null; do
    sleep 0.05; i=$((i+1))
    if [ $i -gt 400 ] || ! kill -0 $sp 2>/dev/null; then echo "NOT READY"; cat err.txt; exit 1; fi
done
t1=$(cut -d' ' -f1 /proc/uptime)
echo "load-to-ready $t0 $t1"
echo "loaded $(grep -c '^whosent_sig ' /proc/modules)"
sleep 1000 &
victim=$!
# Kill only after the exec: until then the child's comm is still "sh".
i=0; while [ "$(cat /proc/$victim/comm 2>/dev/null)" != sleep ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done
kill -9 $victim
echo "victim $victim shell $$"
sleep 0.5
kill -INT $sp
wait $sp
echo "stapio-exit $?"
sleep 0.3
echo "loaded-after $(grep -c '^whosent_sig ' /proc/modules)"
echo "--- out"; cat out.txt
echo "--- err"; cat err.txt
EOF
) || { echo "$out"; say "FAILED on the board"; exit 1; }
echo "$out"

victim=$(echo "$out" | sed -n 's/^victim \([0-9]*\) shell \([0-9]*\)$/\1/p')
shell=$(echo "$out" | sed -n 's/^victim \([0-9]*\) shell \([0-9]*\)$/\2/p')
# whosent 1 sig ts cpu ctx s_tid s_pid s_ppid s_uid s_comm t_tid t_pid t_comm sig errno code group result
line=$(printf '%s\n' "$out" | awk -F'\t' -v v="$victim" -v s="$shell" \
    '$1=="whosent" && $3=="sig" && $12==v && $8==s && $15==9 && $6=="task" && $14=="sleep"')
ok=1
[ -n "$line" ] || { say "no sig line for the kill of $victim by $shell"; ok=0; }
echo "$out" | grep -q '^loaded 1$' || { say "module was not in /proc/modules while live"; ok=0; }
echo "$out" | grep -q '^loaded-after 0$' || { say "module still loaded after SIGINT"; ok=0; }
echo "$out" | grep -q '^stapio-exit 0$' || { say "stapio did not exit 0"; ok=0; }
echo "$out" | grep -q '	end	' || { say "no end line"; ok=0; }
[ $ok = 1 ] || exit 1
say "ok: $line"
