#!/usr/bin/env bash
# scripts/bench.sh [--smoke] [--out FILE] [--rev REV] [--no-board] [--no-stap]
#
# Benchmarks whosent (the ftrace agent, and the eBPF agent of issue #15)
# against trace-cmd record, a plain `cat trace_pipe`, bpftrace and the
# SystemTap backend on the same workloads (issue #7),
# in one run, and writes the table with the machine description:
#
#   full run   release builds; storms of 100k and 1M signals, 5k
#              short-lived senders, the storms again with background
#              noise; ready times locally and on an emulated aarch64
#              board; a 100k storm on that board traced over SSH (its
#              signal_storm cross-built for aarch64); agent sizes;
#              SystemTap builds and loads. Issue #11's rows: the
#              recorder alone (whosent-agent --stream into a file, then
#              decoded with whosent-deploy parse --json) and the whole
#              local pipeline (whosent-deploy --host local --json).
#              Writes docs/benchmarks.md (or --out FILE). ~6-9 minutes.
#   --smoke    small storms (2k), no board, no SystemTap, debug builds
#              (what `cargo build --workspace` already made): proves the
#              harness works in well under a minute. Prints the table on
#              stdout (or --out FILE); never touches docs/benchmarks.md.
#   --rev REV  measure a commit (e.g. HEAD) rather than the working tree:
#              it is exported with `git archive` into a temporary directory
#              and built there (target dir target/bench-rev, kept for the
#              next run), so edits in progress neither break nor colour
#              the figures. The harness itself is always the working tree's.
#
# Exit status: 0 when the harness worked, whatever the figures (a
# missed goal is a result, not an error); 1 when it broke; 2 on usage.
# Needs root (tracefs). The logic lives in crates/whosent-bench; this
# script builds, runs it and cleans up after it whatever happens: every
# ftrace instance it or a peer made (instances/wsbench-<pid>-*, an
# agent's whosent-<pid>-* if the agent was killed), its board, its
# temporary files.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

smoke=0
args=()
out=''
rev=''
while (($#)); do
    case $1 in
    --smoke) smoke=1; shift ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    --rev) rev=${2:?--rev needs a revision}; shift 2 ;;
    --no-board | --no-stap) args+=("$1"); shift ;;
    --only) args+=("$1" "${2:?--only needs runs, ready, board or stap}"); shift 2 ;; # for work on the harness
    -h | --help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "bench.sh: run as root (tracefs)" >&2; exit 2; }

say() { echo "bench.sh: $*" >&2; }

tag=wsbench-$$
work=$(mktemp -d "/tmp/$tag.XXXXXX")
export WSBENCH_TAG=$tag WSBENCH_PIDFILE=$work/pids
tracefs=/sys/kernel/tracing
[[ -d $tracefs/instances ]] || tracefs=/sys/kernel/debug/tracing
hpid=''

# The harness's process group: the harness and every tool it started
# (also when the harness itself died and left them running).
stop_group() {
    if [[ -n $hpid ]] && kill -0 -- "-$hpid" 2>/dev/null; then
        say "stopping the harness's processes (process group $hpid)"
        kill -TERM -- "-$hpid" 2>/dev/null || true
        sleep 1
        kill -KILL -- "-$hpid" 2>/dev/null || true
        wait "$hpid" 2>/dev/null || true
    fi
}

# shellcheck disable=SC2317 # called by the EXIT trap, not unreachable
cleanup() {
    local rc=$? d p
    trap - EXIT INT TERM
    stop_group
    # Instances of ours (and of peers we ran), then those of agents we
    # started that died without removing theirs.
    for d in "$tracefs/instances/$tag"-*; do
        [[ -d $d ]] || continue
        echo 0 >"$d/tracing_on" 2>/dev/null || true
        rmdir "$d" 2>/dev/null && say "removed leftover instance ${d##*/}"
    done
    if [[ -f $WSBENCH_PIDFILE ]]; then
        while read -r p _; do
            [[ $p =~ ^[0-9]+$ && $p != 0 ]] || continue
            [[ -d /proc/$p ]] && continue
            for d in "$tracefs/instances/whosent-$p"-*; do
                [[ -d $d ]] || continue
                echo 0 >"$d/tracing_on" 2>/dev/null || true
                rmdir "$d" 2>/dev/null && say "removed leftover instance ${d##*/}"
            done
        done <"$WSBENCH_PIDFILE"
    fi
    if [[ -d ${WHOSENT_RUN:-/tmp/whosent-boards}/$tag-board ]]; then
        say "taking the board down"
        scripts/board.sh down "$tag-board" >/dev/null 2>&1 || true
    fi
    rm -rf "$work" "/tmp/$tag-work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ((smoke)); then
    profile=debug flag=()
else
    profile=release flag=(--release)
    out=${out:-docs/benchmarks.md}
fi
say "building ($profile)"
cargo build --quiet "${flag[@]}" -p whosent-bench
harness=$repo/target/$profile/whosent-bench
if [[ -n $rev ]]; then
    src=$work/src
    mkdir "$src"
    git archive --format=tar "$rev" | tar -x -C "$src"
    WSBENCH_SOURCE_LABEL="$(git rev-parse --short "$rev") ($rev, built from a clean export; the working tree was not measured)"
    export WSBENCH_SOURCE_LABEL
    say "building $rev in $src"
    (cd "$src" && CARGO_TARGET_DIR=$repo/target/bench-rev cargo build --quiet --locked "${flag[@]}" \
        -p whosent-agent -p whosent-ebpf-agent -p whosent-deploy -p whosent-testbins)
    bin=$repo/target/bench-rev/$profile
else
    src=$repo
    cargo build --quiet "${flag[@]}" -p whosent-agent -p whosent-ebpf-agent -p whosent-deploy -p whosent-testbins
    bin=$repo/target/$profile
fi

# The board storm's sender (issue #11), cross-built for aarch64 with
# rust-lld and the musl target, as whosent-deploy builds the agent.
storm_arm=''
if ((!smoke)) && [[ " ${args[*]} " != *" --no-board "* ]]; then
    say "building signal_storm for aarch64"
    tdir=$repo/target
    [[ -n $rev ]] && tdir=$repo/target/bench-rev
    if (cd "$src" && CARGO_TARGET_DIR=$tdir CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
        cargo build --quiet --locked --release -p whosent-testbins --bin signal_storm \
        --target aarch64-unknown-linux-musl); then
        storm_arm=$tdir/aarch64-unknown-linux-musl/release/signal_storm
    else
        say "cannot build signal_storm for aarch64: no board storm"
    fi
fi

hargs=(--repo "$src" --bin-dir "$bin" --notes "$repo/scripts/bench/notes.md" "${args[@]}")
[[ -n $storm_arm ]] && hargs+=(--board-storm "$storm_arm")
((smoke)) && hargs+=(--smoke)
[[ -n $out ]] && hargs+=(--out "$out")

# Its own process group (job control), so that the trap can stop it
# and everything it started, by the group's id.
set -m
"$harness" "${hargs[@]}" &
hpid=$!
set +m
rc=0
wait "$hpid" || rc=$?
stop_group

left=()
for d in "$tracefs/instances"/*; do
    [[ -d $d ]] && left+=("${d##*/}")
done
for d in "${left[@]}"; do
    if [[ $d == "$tag"-* ]]; then
        say "error: an instance of this run is left: $d"
        rc=1
    fi
done
say "instances now: ${left[*]:-none}"
exit "$rc"
