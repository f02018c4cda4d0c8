#!/usr/bin/env bash
# Record tracefs fixtures from a real Debian 6.1 kernel in an emulated board.
#   scripts/board/record-fixtures.sh aarch64 tests/fixtures/arm64-6.1
#   scripts/board/record-fixtures.sh armv7   tests/fixtures/armhf-6.1
# Boots ARCH (plain variant) under a private name, runs the recording script
# below inside it, unpacks the result into OUTDIR, writes OUTDIR/README.md and
# stops the board.  Files already in OUTDIR are replaced.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BOARD=$HERE/../board.sh
arch=${1:?usage: record-fixtures.sh ARCH OUTDIR}
out=${2:?usage: record-fixtures.sh ARCH OUTDIR}
name=fixtures-$arch-$$

# The script that runs on the board (busybox sh, as root).  It is also
# copied verbatim into README.md so the recording can be repeated by hand.
read -r -d '' REMOTE <<'EOF' || true
set -eu
T=/sys/kernel/tracing
I=$T/instances/fixture
O=/tmp/fixture
rm -rf "$O"
mkdir -p "$O/events/signal/signal_generate" "$O/events/signal/signal_deliver" \
    "$O/events/sched/sched_process_fork" "$O/events/sched/sched_process_exec" \
    "$O/events/sched/sched_process_exit" "$O/events/task/task_newtask" \
    "$O/events/task/task_rename" "$O/per_cpu/cpu0"
for f in events/header_page events/header_event \
    events/signal/signal_generate/format events/signal/signal_deliver/format \
    events/sched/sched_process_fork/format events/sched/sched_process_exec/format \
    events/sched/sched_process_exit/format events/task/task_newtask/format \
    events/task/task_rename/format; do
    cat "$T/$f" > "$O/$f"
done
uname -a > "$O/uname.txt"

# wait until PID has exec'd COMM (between fork and exec the child still
# carries the parent's comm)
wait_comm() { n=0; while [ "$(cat /proc/$1/comm 2>/dev/null)" != "$2" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done; }

[ -d "$I" ] && rmdir "$I"
mkdir "$I"
echo 64 > "$I/buffer_size_kb"
echo 1 > "$I/events/signal/signal_generate/enable"
echo 1 > "$I/tracing_on"

# round 1 -> trace, trace_pipe (text)
sleep 100 & p=$!
wait_comm $p sleep
kill -TERM $p
wait $p || true
sh -c 'trap "" USR1; exec sleep 100' & q=$!
wait_comm $q sleep
kill -USR1 $q
kill -KILL $q
wait $q || true
sleep 0.2
cat "$I/trace" > "$O/trace"
timeout 2 cat "$I/trace_pipe" > "$O/trace_pipe" || true

# round 2, everything pinned to cpu0 -> one raw page of cpu0's buffer.
# This shell moves to cpu1 first, so that the exits of its own later
# children (sleep, cat, dd: SIGCHLD to it) are not recorded on cpu0.
taskset -p 0x2 $$ >/dev/null
taskset 0x1 sh -c '
    wait_comm() { n=0; while [ "$(cat /proc/$1/comm 2>/dev/null)" != "$2" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done; }
    sleep 100 & p=$!
    wait_comm $p sleep
    kill -TERM $p
    wait $p || true
    sh -c "trap \"\" USR1; exec sleep 100" & q=$!
    wait_comm $q sleep
    kill -USR1 $q
    kill -HUP $q
    wait $q || true
'
sleep 0.2
cat "$I/per_cpu/cpu0/trace" > "$O/per_cpu/cpu0/trace"
dd if="$I/per_cpu/cpu0/trace_pipe_raw" of="$O/per_cpu/cpu0/trace_pipe_raw" bs=4096 count=1 2>/dev/null

echo 0 > "$I/tracing_on"
echo 0 > "$I/events/signal/signal_generate/enable"
rmdir "$I"
cd "$O" && tar -cf - .
EOF

cleanup() { "$BOARD" down "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
eval "$("$BOARD" up "$arch" --name "$name")"
read -r -a O <<<"$BOARD_SSH_OPTS"
deb=$(sed -n 's/^KERNEL_DEB=//p' "$BOARD_DIR/info")

mkdir -p "$out"
tmp=$(mktemp -d)
ssh "${O[@]}" root@127.0.0.1 "$REMOTE" </dev/null >"$tmp/fixture.tar"
rm -rf "$out/events" "$out/per_cpu" "$out/trace" "$out/trace_pipe" "$out/uname.txt"
tar -xf "$tmp/fixture.tar" -C "$out" --no-same-owner
rm -rf "$tmp"
"$BOARD" down "$name" >&2
trap - EXIT

release=$(cut -d' ' -f3 <"$out/uname.txt")
id=$(sed -n 's/^ID: //p' "$out/events/signal/signal_generate/format")
rawsize=$(wc -c <"$out/per_cpu/cpu0/trace_pipe_raw")
ngen=$(grep -c 'signal_generate:' "$out/trace_pipe" || true)
nraw=$(grep -c 'signal_generate:' "$out/per_cpu/cpu0/trace" || true)
{
    cat <<EOF
# Fixtures from a real Debian $release kernel ($arch)

Recorded inside the emulated board of \`scripts/board.sh\` (variant \`plain\`,
qemu TCG, 2 vCPUs) by

    scripts/board/record-fixtures.sh $arch $out

- kernel: \`$(cat "$out/uname.txt")\`
- Debian package: \`$deb\`
- signal_generate event ID on this kernel: **$id** (read it from the format file;
  it differs per kernel)

## Files

| file | what |
| --- | --- |
| \`events/header_page\`, \`events/header_event\` | copied from /sys/kernel/tracing |
| \`events/signal/signal_generate/format\` | idem |
| \`events/signal/signal_deliver/format\` | idem |
| \`events/sched/sched_process_{fork,exec,exit}/format\` | idem |
| \`events/task/task_{newtask,rename}/format\` | idem |
| \`trace\` | text of the private instance \`instances/fixture\` (signal_generate only), round 1, read with \`cat trace\` (with the \`#\` header) |
| \`trace_pipe\` | the same events read right after from \`trace_pipe\` (\`timeout 2 cat trace_pipe\`); $ngen signal_generate lines |
| \`per_cpu/cpu0/trace\` | text of what cpu0's buffer held after round 2 (round 2 runs pinned to cpu0 with busybox \`taskset 0x1\`; the recording shell itself moved to cpu1), read from \`per_cpu/cpu0/trace\` just before the raw page; a line or two left over from round 1 may come first |
| \`per_cpu/cpu0/trace_pipe_raw\` | one binary ring-buffer page ($rawsize bytes): \`dd if=per_cpu/cpu0/trace_pipe_raw bs=4096 count=1\`; the same $nraw events as \`per_cpu/cpu0/trace\`, in the same order |
| \`uname.txt\` | \`uname -a\` |

What the rounds do (see the script below): \`sleep 100 &\`, wait until its comm
is \`sleep\`, \`kill -TERM\` it (delivered: result=0, and the kernel's SIGCHLD to
the shell follows); then \`sh -c 'trap "" USR1; exec sleep 100' &\` and
\`kill -USR1\` it (ignored: result=1), then \`kill -KILL\` (round 1) or
\`kill -HUP\` (round 2) it.  The sending shell's comm is \`sh\`.  Pids are
whatever the board gave.

The raw page is the kernel's ring-buffer page for the target's layout
(little-endian, $( [[ $arch == aarch64 ]] && echo '8-byte' || echo '4-byte') longs — see \`events/header_page\`): a
page header (timestamp, commit) followed by event records.

## The script run on the board (as root, busybox sh)

\`\`\`sh
$REMOTE
\`\`\`
EOF
} >"$out/README.md"
echo "fixtures written to $out (kernel $release, signal_generate ID $id, $ngen lines)" >&2
