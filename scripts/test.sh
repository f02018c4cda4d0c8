#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, builds the
# workspace (the agent, the host tool and the test programs), then runs
# every test, including those on the real kernel (root, tracefs), under
# qemu-user, and against emulated boards and a local sshd. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "== setup check (every outside file comes from a package setup.sh names)" >&2
scripts/setup.sh --check >/dev/null
echo "== build" >&2
cargo build --workspace --all-targets --locked
echo "== tests" >&2
# Tests that touch the kernel filter on their own pids, so they run in
# parallel; two threads match this kind of machine.
cargo test --workspace --locked --no-fail-fast -- --test-threads=2
echo "== fuzz smoke (each parser 30 s from the fixtures; a crash fails)" >&2
scripts/fuzz.sh --smoke
echo "== benchmark smoke (small storms; proves the harness, not the figures)" >&2
scripts/bench.sh --smoke
