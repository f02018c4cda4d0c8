#!/usr/bin/env bash
# The main job, end to end on an emulated aarch64 board: boot the board
# (Debian kernel, busybox, dropbear on a loopback port), start a victim
# process inside it, run whosent-deploy against it, kill the victim from
# a short-lived shell inside the board, and show whosent's answer next
# to what the board itself says. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "demo: building whosent-deploy" >&2
cargo build --release --locked -q -p whosent-deploy
DEPLOY=target/release/whosent-deploy

name=demo-$$
out=$(mktemp -d)
cleanup() {
  [ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null || true
  scripts/board.sh down "$name" >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT

echo "demo: booting the emulated aarch64 board" >&2
eval "$(scripts/board.sh up aarch64 --name "$name")"
board() { ssh $BOARD_SSH_OPTS "$BOARD_USER@$BOARD_HOST" "$@"; }

victim=$(board 'sleep 600 </dev/null >/dev/null 2>&1 & echo $!')
echo "demo: inside the board, a victim: sleep, pid $victim" >&2

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

sender=$(board "sh -c 'kill -KILL $victim; echo \$\$'")
echo "demo: inside the board, sh (pid $sender) ran: kill -KILL $victim" >&2
status=0
wait "$dpid" || status=$?
dpid=
echo
echo "whosent's answer:"
cat "$out/answer"
echo
# The sender may be followed by its parents: `sh(171) <- dropbear(170) …`.
if grep -Eq "^SIGKILL: sh\($sender\)( <- .*)? -> sleep\($victim\) " "$out/answer"; then
  echo "demo: whosent named the sender the board knows (sh, pid $sender)."
else
  echo "demo: unexpected answer (exit status $status)" >&2
  exit 1
fi
