# shellcheck shell=bash
# One readable line per failure, for setup.sh, board.sh and demo.sh.
#
#   PROG=board; . scripts/lib/steps.sh
#   step "booting the board"        # names what runs next
#   die "qemu exited: <reason>"     # -> "board: error: booting the board: qemu exited: <reason>"
#   on_exit cleanup                 # run at exit; its failure never changes the status or the message
#
# A command that fails under `set -e` without a die() of its own gets
#   "board: error: step 'booting the board' failed: `cmd` exited 1 (board.sh line 42)".
# Only the first failure is printed, across nested scripts too (demo.sh runs
# board.sh runs setup steps): the first line written to $WHOSENT_ERR_MARK wins,
# so an outer script's "…exited 1" never buries the inner reason, and nothing
# a cleanup does afterwards (an unbound variable, a board already gone) shows.

set -E
STEP=${STEP:-starting}
if [ -z "${WHOSENT_ERR_MARK:-}" ] || [ ! -e "$WHOSENT_ERR_MARK" ]; then
    WHOSENT_ERR_MARK=$(mktemp "${TMPDIR:-/tmp}/whosent-err.XXXXXX")
    export WHOSENT_ERR_MARK
    STEPS_MARK_OWNER=1
fi
STEPS_EXIT_HOOKS=()

step() { STEP=$*; }

# report_once LINE: prints LINE unless a failure was already reported.
report_once() {
    [ -s "$WHOSENT_ERR_MARK" ] && return 0
    printf '%s\n' "$1" >>"$WHOSENT_ERR_MARK"
    printf '%s\n' "$1" >&2
}

die() {
    report_once "$PROG: error: $STEP: $*"
    exit 1
}

steps_on_err() {
    local rc=$1 line=$2 cmd=$3
    # Inside $(...) bash clears -e (no inherit_errexit) but still runs the
    # ERR trap: a failure there is the substitution's business, reported
    # where its status is used.
    [[ $- == *e* ]] || return 0
    report_once "$PROG: error: step '$STEP' failed: \`$cmd\` exited $rc (${0##*/} line $line)"
    exit "$rc"
}
trap 'steps_on_err $? $LINENO "$BASH_COMMAND"' ERR

# on_exit CMD...: runs CMD at exit (last registered first). With the
# status kept and, after a failure, its output discarded.
on_exit() { STEPS_EXIT_HOOKS+=("$*"); }

steps_on_exit() {
    local rc=$? i
    trap - ERR
    set +eu
    for ((i = ${#STEPS_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
        if [ "$rc" = 0 ]; then
            eval "${STEPS_EXIT_HOOKS[$i]}" || true
        else
            eval "${STEPS_EXIT_HOOKS[$i]}" >/dev/null 2>&1 || true
        fi
    done
    [ -n "${STEPS_MARK_OWNER:-}" ] && rm -f "$WHOSENT_ERR_MARK"
    exit "$rc"
}
trap steps_on_exit EXIT
