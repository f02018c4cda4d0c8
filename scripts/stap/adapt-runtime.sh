#!/bin/sh
# adapt-runtime.sh SRC_RUNTIME DEST_DIR
#
# Copies a SystemTap runtime (e.g. /usr/share/systemtap/runtime) to
# DEST_DIR and teaches its stp_task_work.c about kernels where
# task_work_cancel(task, func) was renamed task_work_cancel_func().
# Use the copy with:  stap -R DEST_DIR -D STAPCONF_TASK_WORK_CANCEL_FUNC ...
# Prints DEST_DIR on stdout.
#
# Why: Linux commit 68cbd415dd4b ("task_work: s/task_work_cancel()/
# task_work_cancel_func()/", v6.11) renamed the function that cancels
# by callback and re-used the old name for a new
#     bool task_work_cancel(struct task_struct *, struct callback_head *);
# The pair was backported to stable 6.1.y (Debian's 6.1.192 has it:
# include/linux/task_work.h declares both).  SystemTap 4.8's
# stp_task_work.c still calls task_work_cancel(task, func) and looks
# the symbol "task_work_cancel" up with kallsyms_lookup_name(), so the
# module fails with -Werror=incompatible-pointer-types.  Making it
# compile is not enough: the kallsyms lookup must also name
# task_work_cancel_func, or the module would call the new function
# with a function pointer where it expects a callback_head.
#
# The adaptation is guarded by STAPCONF_TASK_WORK_CANCEL_FUNC, so the
# same adapted copy still builds for kernels without the rename (just
# leave the -D out there).  The name of the macro is the one later
# SystemTap releases use for the same purpose.
#
# Each edit must match exactly once in the source file; anything else
# (another SystemTap version) is an error, never a silent half patch.
# A runtime whose stp_task_work.c already mentions
# task_work_cancel_func (SystemTap with upstream support) is copied
# unchanged.
#
# Idempotent: an existing DEST_DIR with a matching .whosent-adapted
# stamp is left alone.
set -eu

die() { echo "adapt-runtime: error: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: adapt-runtime.sh SRC_RUNTIME DEST_DIR"
src=$1
dest=$2
file=stp_task_work.c
[ -f "$src/$file" ] || die "$src/$file not found (not a SystemTap runtime?)"

stamp="whosent-adapt v1 $(cksum < "$src/$file")"
if [ -f "$dest/.whosent-adapted" ] && [ "$(cat "$dest/.whosent-adapted")" = "$stamp" ]; then
    echo "$dest"
    exit 0
fi

tmp=$dest.tmp.$$
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$dest")"
cp -R "$src" "$tmp"
f=$tmp/$file

# once LINE: LINE must occur exactly once, as a whole line.
once() {
    n=$(grep -cxF -- "$1" "$f" || true)
    [ "$n" = 1 ] || die "expected exactly one line '$1' in $src/$file, found $n"
}

if grep -q 'task_work_cancel_func' "$f"; then
    echo "adapt-runtime: $src/$file already handles task_work_cancel_func; copied unchanged" >&2
else
    inc='#include "linux/task_work_compatibility.h"'
    l_typedef='typedef typeof(&task_work_cancel) task_work_cancel_fn;'
    l_define='#define task_work_cancel (* (task_work_cancel_fn)kallsyms_task_work_cancel)'
    l_lookup='        kallsyms_task_work_cancel = (void *)kallsyms_lookup_name("task_work_cancel");'
    l_error='		_stp_error("Can'"'"'t resolve task_work_cancel!");'
    l_call='	twork = task_work_cancel(task, func);'
    for l in "$inc" "$l_typedef" "$l_define" "$l_lookup" "$l_error" "$l_call"; do
        once "$l"
    done

    # 1. After the include: pick the kernel's name for cancel-by-func.
    # 2. typedef and kallsyms #define use that name (the #undef keeps
    #    -Werror from seeing a macro redefinition).
    # 3. kallsyms looks up that symbol.
    # 4. The error message names it (cosmetic).
    # 5. The wrapper calls it.
    sed -i \
        -e '\|^#include "linux/task_work_compatibility.h"$|a\
\
/* whosent: Linux 68cbd415dd4b (v6.11, backported to 6.1.y and others)\
 * renamed task_work_cancel(task, func) to task_work_cancel_func() and\
 * added an unrelated bool task_work_cancel(task, callback_head *). */\
#if defined(STAPCONF_TASK_WORK_CANCEL_FUNC)\
#define STP_TASK_WORK_CANCEL_FN task_work_cancel_func\
#define STP_TASK_WORK_CANCEL_SYM "task_work_cancel_func"\
#else\
#define STP_TASK_WORK_CANCEL_FN task_work_cancel\
#define STP_TASK_WORK_CANCEL_SYM "task_work_cancel"\
#endif' \
        -e 's|^typedef typeof(&task_work_cancel) task_work_cancel_fn;$|typedef typeof(\&STP_TASK_WORK_CANCEL_FN) task_work_cancel_fn;|' \
        -e 's|^#define task_work_cancel (\* (task_work_cancel_fn)kallsyms_task_work_cancel)$|#undef STP_TASK_WORK_CANCEL_FN\
#define STP_TASK_WORK_CANCEL_FN (* (task_work_cancel_fn)kallsyms_task_work_cancel)|' \
        -e 's|kallsyms_lookup_name("task_work_cancel");$|kallsyms_lookup_name(STP_TASK_WORK_CANCEL_SYM);|' \
        -e 's|_stp_error("Can.t resolve task_work_cancel!");$|_stp_error("Can'"'"'t resolve " STP_TASK_WORK_CANCEL_SYM "!");|' \
        -e 's|^\ttwork = task_work_cancel(task, func);$|\ttwork = STP_TASK_WORK_CANCEL_FN(task, func);|' \
        "$f"

    # The old lines are gone and the new ones are there.
    for l in "$l_typedef" "$l_define" "$l_lookup" "$l_error" "$l_call"; do
        ! grep -qxF -- "$l" "$f" || die "sed left '$l' in $f"
    done
    for l in '#define STP_TASK_WORK_CANCEL_SYM "task_work_cancel_func"' \
        'typedef typeof(&STP_TASK_WORK_CANCEL_FN) task_work_cancel_fn;' \
        '#undef STP_TASK_WORK_CANCEL_FN' \
        '        kallsyms_task_work_cancel = (void *)kallsyms_lookup_name(STP_TASK_WORK_CANCEL_SYM);' \
        '	twork = STP_TASK_WORK_CANCEL_FN(task, func);'; do
        once "$l"
    done
fi

echo "$stamp" > "$tmp/.whosent-adapted"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest"
