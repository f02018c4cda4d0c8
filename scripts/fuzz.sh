#!/usr/bin/env bash
# Fuzzes whosent's parsers with cargo-fuzz (libFuzzer), each target for
# a bounded time, and fails on any crash.
#   scripts/fuzz.sh [--smoke] [SECONDS]
# --smoke: 30 s per target (CI); otherwise SECONDS per target (300).
# Targets (fuzz/fuzz_targets/): tracedat (the trace.dat reader), text
# (the ftrace text parser), stream (the capture stream decoder and
# the session behind it) and audit (the audit log reader), seeded from
# tests/fixtures and crates/whosent-audit/tests/fixtures each run. A crash
# leaves its input in fuzz/artifacts/TARGET/; fix it and add it as a
# regression test (crates/whosent-ftrace/tests/regression.rs for the
# ftrace parsers, the decoder's own tests for the stream).
#
# Installs what it needs, idempotently: cargo-fuzz from crates.io, and
# g++ (libfuzzer-sys compiles libFuzzer; also in scripts/setup.sh).
# Only the stable toolchain is needed: cargo-fuzz's flags (-Z sanitizer,
# sancov) are accepted by stable rustc with RUSTC_BOOTSTRAP=1.
# Each run holds /tmp/whosent-heavy.lock, so heavy jobs do not pile up.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
secs=300
case "${1:-}" in
--smoke) secs=30; shift ;;
-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
esac
if [ $# -gt 0 ]; then
	case "$1" in
	'' | *[!0-9]*) echo "fuzz: error: SECONDS must be a number, not '$1' (see --help)" >&2; exit 2 ;;
	esac
	secs=$1
fi

if ! command -v g++ > /dev/null; then
	echo "fuzz: installing g++" >&2
	apt-get install -y --no-install-recommends g++ > /dev/null
fi
if ! cargo fuzz --version 2> /dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
	echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
	cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

# seeds TARGET FILE...: a fresh seed directory from the fixtures.
seeds() {
	local dir=fuzz/seeds/$1
	shift
	rm -rf "$dir"
	mkdir -p "$dir"
	local f
	for f in "$@"; do
		# Several fixtures are called `trace`: name each by its path.
		cp "$f" "$dir/$(echo "${f#*tests/fixtures/}" | tr / _)"
	done
}
shopt -s globstar nullglob
seeds tracedat tests/fixtures/**/*.dat
seeds text tests/fixtures/**/trace*.txt tests/fixtures/**/trace tests/fixtures/**/trace_pipe
seeds stream tests/fixtures/**/*.wst
seeds audit crates/whosent-audit/tests/fixtures/**/*.log crates/whosent-audit/tests/fixtures/**/ausearch*.txt

status=0
for target in tracedat text stream audit; do
	mkdir -p "fuzz/corpus/$target"
	echo "fuzz: $target for ${secs}s" >&2
	start=$(date +%s)
	# No sanitizer: whosent-ftrace and its decompressors (miniz_oxide,
	# ruzstd) are safe Rust, so AddressSanitizer finds nothing there and
	# costs half the speed; debug assertions keep overflow checks on.
	# -max_len: the largest seed (a trace.dat of ~100 KiB), not libFuzzer's
	# 4 KiB default, or the seeds would be cut before their CPU data.
	if ! flock /tmp/whosent-heavy.lock \
		cargo fuzz run --fuzz-dir fuzz --sanitizer none --debug-assertions "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
		-max_total_time="$secs" -max_len=262144 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 2> "fuzz/$target.log"; then
		# The log ends with the input as a Debug dump: keep the short lines.
		grep -v '^[[:space:]]*\[' "fuzz/$target.log" | cut -c1-300 | tail -n 30 >&2
		echo "fuzz: error: $target crashed; the input is in fuzz/artifacts/$target/ (help: reproduce with \`RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz $target FILE\`)" >&2
		status=1
		continue
	fi
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/$target.log" | grep -o '[0-9]*$' || echo '?')
	echo "fuzz: $target: $runs runs in $(($(date +%s) - start))s, no crash" >&2
done
exit $status
