#!/usr/bin/env bash
# The main job, end to end on an emulated aarch64 board: boot the board
# (Debian kernel, busybox, dropbear on a loopback port), start a victim
# process inside it, run whosent-deploy against it, kill the victim from
# a short-lived shell inside the board, and show whosent's answer next
# to what the board itself says. Run as root on Debian 12.
#
# First run on a fresh machine: about 4-6 minutes (packages, the first
# release build, the board's Debian packages and initramfs, the agent's
# cross-build); later runs: about 30 s. A failed step prints one line
# saying which step and why.
set -euo pipefail
cd "$(dirname "$0")/.."
PROG=demo
# shellcheck source=lib/steps.sh
. scripts/lib/steps.sh

say() { echo "demo: $*" >&2; }

step "installing what the demo needs (scripts/setup.sh)"
scripts/setup.sh
step "building whosent-deploy (cargo build --release)"
say "building whosent-deploy (first time: about 2 min)"
cargo build --release --locked -q -p whosent-deploy
DEPLOY=target/release/whosent-deploy

name=demo-$$
out=$(mktemp -d)
dpid=
on_exit 'rm -rf "$out"'
on_exit 'scripts/board.sh down "$name" >/dev/null 2>&1'
on_exit '[ -n "$dpid" ] && kill "$dpid" 2>/dev/null'

step "booting the emulated aarch64 board (scripts/board.sh up)"
say "booting the emulated aarch64 board (first time: builds it from Debian packages, about 1 min)"
# Not `eval "$(…)"`: eval of an empty string succeeds, which hid a failed boot.
board_env=$(scripts/board.sh up aarch64 --name "$name") || die "scripts/board.sh up failed (its error is above)"
eval "$board_env"
[ -n "${BOARD_SSH_OPTS:-}" ] || die "scripts/board.sh up printed no BOARD_SSH_OPTS"
board() { ssh $BOARD_SSH_OPTS "$BOARD_USER@$BOARD_HOST" "$@"; }

step "starting the victim inside the board"
victim=$(board 'sleep 600 </dev/null >/dev/null 2>&1 & echo $!')
[[ $victim =~ ^[0-9]+$ ]] || die "the board gave no victim pid (got '$victim')"
say "inside the board, a victim: sleep, pid $victim"

step "starting whosent-deploy against the board"
set -x
"$DEPLOY" --target aarch64 --host "$BOARD_USER@$BOARD_HOST" -p "$BOARD_PORT" \
  -i "$BOARD_KEY" --known-hosts "$BOARD_KNOWN_HOSTS" \
  --sig KILL --pid "$victim" --count 1 >"$out/answer" 2>"$out/progress" &
{ set +x; } 2>/dev/null
dpid=$!
for _ in $(seq 1 600); do
  grep -q "waiting for signals" "$out/progress" 2>/dev/null && break
  kill -0 "$dpid" 2>/dev/null || break
  sleep 0.1
done
cat "$out/progress" >&2
grep -q "waiting for signals" "$out/progress" ||
  die "whosent-deploy did not start tracing: $(grep -m1 'error' "$out/progress" || tail -n 1 "$out/progress")"

step "killing the victim from a shell inside the board"
sender=$(board "sh -c 'kill -KILL $victim; echo \$\$'")
say "inside the board, sh (pid $sender) ran: kill -KILL $victim"
status=0
wait "$dpid" || status=$?
dpid=
echo
echo "whosent's answer:"
cat "$out/answer"
echo
step "comparing whosent's answer with the board"
# The sender may be followed by its parents: `sh(171) <- dropbear(170) …`.
if grep -Eq "^SIGKILL: sh\($sender\)( <- .*)? -> sleep\($victim\) " "$out/answer"; then
  echo "demo: whosent named the sender the board knows (sh, pid $sender)."
else
  die "whosent's answer does not name sh($sender) -> sleep($victim) (whosent-deploy exit status $status)"
fi
