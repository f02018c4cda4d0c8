/* whosent's eBPF program: signal:signal_generate, with the sender's
 * facts read in the kernel at the moment of the signal.
 *
 * No BTF and no CO-RE: a tracepoint program's context is the raw event
 * record (include/trace/perf.h, perf_trace_run_bpf_submit), laid out as
 * the event's `format` file says, and the loader patches those offsets
 * into the constants below (aya's EbpfLoader::set_global). Everything
 * else comes from helpers that need no kernel structure layout, so the
 * same object loads on any kernel from 5.2 (global data) on, 32- or
 * 64-bit, with or without CONFIG_DEBUG_INFO_BTF.
 *
 * Built twice by build.rs:
 *   -DWHOSENT_RINGBUF=1  events through a BPF ring buffer (5.8+), the
 *                        sender's namespace pid (5.7+), probe_read_kernel;
 *   -DWHOSENT_RINGBUF=0  a perf event array and bpf_probe_read, for
 *                        5.2 to 5.7.
 */
#include "bpf.h"
#include "event.h"

/* The record's first 8 bytes (common_type .. common_pid) are not the
 * header for BPF: perf_trace_run_bpf_submit stores a pt_regs pointer
 * there. So the interrupt context comes from the irq programs below,
 * not from common_flags. */

/* Offsets in the signal_generate record, from its format file. GROUP
 * and RESULT are 0 where the kernel has no such field (before 3.4); no
 * field is at offset 0. */
volatile const __u32 SIG_OFF = 8;
volatile const __u32 ERRNO_OFF = 12;
volatile const __u32 CODE_OFF = 16;
volatile const __u32 COMM_OFF = 20;
volatile const __u32 PID_OFF = 36;
volatile const __u32 GROUP_OFF = 40;
volatile const __u32 RESULT_OFF = 44;
/* task:task_newtask (pid, clone_flags); 0 when absent. */
volatile const __u32 NEWTASK_PID_OFF = 8;
volatile const __u32 NEWTASK_FLAGS_OFF = 32;
/* sched:sched_process_exit (pid). */
volatile const __u32 EXIT_PID_OFF = 24;
/* signal:signal_deliver (sig, the low 4 bytes of sa_handler). */
volatile const __u32 DELIVER_SIG_OFF = 8;
volatile const __u32 DELIVER_HANDLER_OFF = 24;

/* Wake the agent once this many bytes wait in the ring buffer; below
 * that it drains on its own timer (WAKE_MS in src/run.rs). In a storm a
 * wake-up per event (the default when the reader keeps up) costs the
 * sender more than the program does. Set by the loader. */
volatile const __u64 WAKE_BYTES = 1 << 16;

/* The query. SIGS has bit (sig - 1) for each signal asked for, 0 for
 * all; FILTERS says which of the maps and names apply. */
volatile const __u64 SIGS = 0;
volatile const __u32 FILTERS = 0;
volatile const char TARGET_COMM[16] = {0};
volatile const char SENDER_COMM[16] = {0};

/* Storm folding (#15, for #9's folded human output): 1 when the agent
 * asked for it. Set by the loader. */
volatile const __u32 FOLD = 0;

/* Target threads: tid -> tgid. Filled by the agent from /proc for
 * --pid, and kept current here as the targets start threads. */
struct bpf_map_def SEC("maps") targets = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 4096,
};

/* Every task's process: tid -> tgid, from /proc at the start and from
 * task_newtask after, so that a target that is gone by the time its
 * event is read (a SIGKILL, a hangup) still has its process. LRU: old
 * entries make room by themselves. */
struct bpf_map_def SEC("maps") tgids = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 32768,
};

/* Sender processes (--sender-pid), by tgid: every thread of them. */
struct bpf_map_def SEC("maps") senders = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 256,
};

/* The pid namespaces the agent knows of (dev, ino of /proc/PID/ns/pid):
 * the sender's own is found among them and gives its pid there. */
struct bpf_map_def SEC("maps") pidns = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(struct pidns_key),
	.max_entries = PIDNS_MAX,
};

/* Tasks past sched_process_exit: what they still send is the kernel's
 * doing on their way out (pdeath_signal, a pid namespace's teardown),
 * never a system call (whosent_proto::cause::Hints::running_exited).
 * LRU: entries of long-gone tasks make room by themselves. */
struct bpf_map_def SEC("maps") exited = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 1024,
};

/* Folded storms: (sender, target, sig, code, result) -> repeats and
 * their first and last time. A key's first signal is sent in full (the
 * agent needs its sender's facts, lineage and cause) and enters the map
 * with 0 repeats; each later one only counts. The agent reads the counts
 * and reports what grew since its last read (src/fold.rs); it never
 * deletes, so no repeat counted between a read and a delete is lost.
 * Full (FOLD_MAX keys): new keys are not folded, every signal of them
 * is sent. */
struct bpf_map_def SEC("maps") folds = {
	.type = BPF_MAP_TYPE_HASH,
	.key_size = sizeof(struct fold_key),
	.value_size = sizeof(struct fold_value),
	.max_entries = FOLD_MAX,
};

/* Per CPU: hardirq and softirq depth (see the irq programs). */
struct irq_depth {
	__u32 hard;
	__u32 soft;
};
struct bpf_map_def SEC("maps") irq = {
	.type = BPF_MAP_TYPE_PERCPU_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(struct irq_depth),
	.max_entries = 1,
};

/* Per CPU: events the output had no room for. */
struct bpf_map_def SEC("maps") lost = {
	.type = BPF_MAP_TYPE_PERCPU_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 1,
};

#if WHOSENT_RINGBUF
/* max_entries (its size in bytes) is set by the loader. */
struct bpf_map_def SEC("maps") events = {
	.type = BPF_MAP_TYPE_RINGBUF,
	.max_entries = 1 << 22,
};
#define read_kernel bpf_probe_read_kernel
#else
/* max_entries (the number of CPUs) is set by the loader. */
struct bpf_map_def SEC("maps") events = {
	.type = BPF_MAP_TYPE_PERF_EVENT_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 1,
};
#define read_kernel bpf_probe_read
#endif

INLINE __s32 field_s32(void *ctx, __u32 off)
{
	__s32 v = 0;
	read_kernel(&v, sizeof(v), (char *)ctx + off);
	return v;
}

INLINE int same_comm(const char *a, const volatile char *b)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (a[i] != b[i])
			return 0;
		if (a[i] == 0)
			return 1;
	}
	return 1;
}

INLINE void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* The sender's pid and tid in its own pid namespace, if that namespace
 * is one the agent listed: bpf_get_ns_current_pid_tgid answers only for
 * the task's active namespace (kernel/bpf/helpers.c). */
INLINE void ns_pid(struct signal_event *e)
{
#if WHOSENT_RINGBUF
#pragma unroll
	for (__u32 i = 0; i < PIDNS_MAX; i++) {
		__u32 k = i;
		struct pidns_key *ns = bpf_map_lookup_elem(&pidns, &k);
		if (!ns || ns->ino == 0)
			break;
		struct bpf_pidns_info info = {};
		if (bpf_get_ns_current_pid_tgid(ns->dev, ns->ino, &info, sizeof(info)) == 0) {
			e->ns_tgid = info.tgid;
			e->ns_tid = info.pid;
			e->ns_index = i + 1;
			return;
		}
	}
#endif
}

INLINE __u32 context_now(void)
{
	__u32 zero = 0;
	struct irq_depth *d = bpf_map_lookup_elem(&irq, &zero);
	if (d && d->hard)
		return CONTEXT_HARDIRQ;
	if (d && d->soft)
		return CONTEXT_SOFTIRQ;
	return CONTEXT_TASK;
}

INLINE void head(struct head *h, __u32 kind, __u32 context, __u64 pid_tgid, __u32 size)
{
	h->ts = bpf_ktime_get_ns();
	h->pid_tgid = pid_tgid;
	h->kind = kind;
	h->cpu = bpf_get_smp_processor_id();
	h->context = context;
	h->size = size;
}

/* Reserving and sending one event of type T: from the ring buffer, or
 * built on the stack for the perf event array (the largest, an exec,
 * takes 352 of the 512 bytes). */
#if WHOSENT_RINGBUF
#define RESERVE(T, e)                                         \
	T *e = bpf_ringbuf_reserve(&events, sizeof(T), 0);    \
	if (!e) {                                             \
		count_lost();                                 \
		return 0;                                     \
	}
INLINE void submit(void *ctx, void *e, __u64 size)
{
	__u64 waiting = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, waiting >= WAKE_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}
#else
#define RESERVE(T, e) \
	T e##_buf = {}, *e = &e##_buf;
INLINE void submit(void *ctx, void *e, __u64 size)
{
	if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, size) != 0)
		count_lost();
}
#endif

/* A task or fate event: the header and the record, nothing filtered. */
INLINE int send_task(void *ctx, __u32 kind)
{
	RESERVE(struct task_event, e);
	head(&e->h, kind, context_now(), bpf_get_current_pid_tgid(), REC_TASK);
	read_kernel(e->rec, REC_TASK, ctx);
	submit(ctx, e, sizeof(*e));
	return 0;
}

SEC("tracepoint/signal/signal_generate")
int signal_generate(void *ctx)
{
	__s32 sig = field_s32(ctx, SIG_OFF);
	if (SIGS && (sig < 1 || sig > 64 || !(SIGS & (1ULL << (sig - 1)))))
		return 0;
	__u32 tid = field_s32(ctx, PID_OFF);
	__u32 *tgid = bpf_map_lookup_elem(&targets, &tid);
	if ((FILTERS & FILTER_TARGET_PID) && !tgid)
		return 0;
	if (FILTERS & FILTER_TARGET_COMM) {
		char tcomm[16] = {};
		read_kernel(tcomm, sizeof(tcomm), (char *)ctx + COMM_OFF);
		if (!same_comm(tcomm, TARGET_COMM))
			return 0;
	}

	__u32 context = context_now();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	char comm[16] = {};
	bpf_get_current_comm(comm, sizeof(comm));
	/* Sender filters apply in task context only: in an interrupt the
	 * running task sent nothing (whosent_proto::query::Query::matches). */
	if (FILTERS & FILTER_SENDER_PID) {
		__u32 stgid = pid_tgid >> 32;
		if (context != CONTEXT_TASK || !bpf_map_lookup_elem(&senders, &stgid))
			return 0;
	}
	if ((FILTERS & FILTER_SENDER_COMM) && (context != CONTEXT_TASK || !same_comm(comm, SENDER_COMM)))
		return 0;

	if (!tgid)
		tgid = bpf_map_lookup_elem(&tgids, &tid);
	__s32 target_tgid = tgid ? *tgid : 0;
	/* Only in task context, to a target whose process is known: the
	 * key is then what the host folds by (host/src/fold.rs). Never a
	 * SIGKILL: the kill the user looks for, and an OOM kill's needs
	 * its mark_victim record. */
	if (FOLD && context == CONTEXT_TASK && target_tgid && sig != 9) {
		struct fold_key k = {
			.sender = pid_tgid >> 32,
			.target = target_tgid,
			.sig = sig,
			.code = field_s32(ctx, CODE_OFF),
			.result = RESULT_OFF ? field_s32(ctx, RESULT_OFF) : -1,
		};
		struct fold_value *v = bpf_map_lookup_elem(&folds, &k);
		if (v) {
			__sync_fetch_and_add(&v->count, 1);
			v->last = bpf_ktime_get_ns();
			return 0;
		}
		struct fold_value first = {.count = 0};
		first.first = bpf_ktime_get_ns();
		first.last = first.first;
		/* Fails when full (sent then, and its repeats too) or when
		 * another CPU added the key just now (both sent in full). */
		bpf_map_update_elem(&folds, &k, &first, BPF_NOEXIST);
	}

	RESERVE(struct signal_event, e);
	head(&e->h, KIND_SIGNAL, context, pid_tgid, REC_SIGNAL);
	e->uid_gid = bpf_get_current_uid_gid();
	e->cgroup = bpf_get_current_cgroup_id();
	e->target_tgid = target_tgid;
	e->ns_tgid = 0;
	e->ns_tid = 0;
	e->ns_index = 0;
	__u32 running = (__u32)pid_tgid;
	e->exited = bpf_map_lookup_elem(&exited, &running) != 0;
	e->pad = 0;
	ns_pid(e);
	__builtin_memcpy(e->comm, comm, 16);
	read_kernel(e->rec, REC_SIGNAL, ctx);
	submit(ctx, e, sizeof(*e));
	return 0;
}

/* A target's new thread is a target too (CLONE_THREAD, in the creating
 * thread's context: kernel/fork.c, copy_process). A new task reusing
 * the tid of one that exited has not. Sent on for the process table. */
SEC("tracepoint/task/task_newtask")
int task_newtask(void *ctx)
{
	__u32 child = field_s32(ctx, NEWTASK_PID_OFF);
	bpf_map_delete_elem(&exited, &child);
	/* The low 4 bytes of an unsigned long or u64 (little-endian). */
	__u32 flags = field_s32(ctx, NEWTASK_FLAGS_OFF);
	int thread = flags & 0x00010000 /* CLONE_THREAD */;
	__u32 process = thread ? bpf_get_current_pid_tgid() >> 32 : child;
	bpf_map_update_elem(&tgids, &child, &process, BPF_ANY);
	if ((FILTERS & FILTER_TARGET_PID) && thread) {
		__u32 parent = (__u32)bpf_get_current_pid_tgid();
		__u32 *tgid = bpf_map_lookup_elem(&targets, &parent);
		if (tgid) {
			__u32 value = *tgid;
			bpf_map_update_elem(&targets, &child, &value, BPF_ANY);
		}
	}
	return send_task(ctx, KIND_NEWTASK);
}

/* do_exit fires this before exit_notify (kernel/exit.c), in the
 * exiting task's context. A thread that ended is no target either: its
 * tid may be reused. */
SEC("tracepoint/sched/sched_process_exit")
int sched_process_exit(void *ctx)
{
	__u32 tid = field_s32(ctx, EXIT_PID_OFF);
	__u32 one = 1;
	bpf_map_update_elem(&exited, &tid, &one, BPF_ANY);
	if (FILTERS & FILTER_TARGET_PID)
		bpf_map_delete_elem(&targets, &tid);
	return send_task(ctx, KIND_EXIT);
}

SEC("tracepoint/task/task_rename")
int task_rename(void *ctx) { return send_task(ctx, KIND_RENAME); }

/* The program a process runs, for its lineage: the filename is a
 * __data_loc string after the fixed fields, within the copied bytes. */
SEC("tracepoint/sched/sched_process_exec")
int sched_process_exec(void *ctx)
{
	RESERVE(struct exec_event, e);
	head(&e->h, KIND_EXEC, CONTEXT_TASK, bpf_get_current_pid_tgid(), REC_EXEC);
	read_kernel(e->rec, REC_EXEC, ctx);
	submit(ctx, e, sizeof(*e));
	return 0;
}

/* The OOM killer's choice, right after its SIGKILL to the same task
 * (mm/oom_kill.c, __oom_kill_process): what makes that SIGKILL `oom`. */
SEC("tracepoint/oom/mark_victim")
int mark_victim(void *ctx) { return send_task(ctx, KIND_VICTIM); }

/* A signal taken with its default, fatal action (kernel/signal.c,
 * get_signal): what a watched process died of. The agent decodes the
 * handler in full; here only the deliveries that cannot be fatal are
 * dropped (ignored or stopping by default, or a handler whose low 4
 * bytes are not 0). */
SEC("tracepoint/signal/signal_deliver")
int signal_deliver(void *ctx)
{
	__s32 sig = field_s32(ctx, DELIVER_SIG_OFF);
	if (sig < 1 || sig > 64 || (sig >= 17 && sig <= 23) || sig == 28)
		return 0;
	if (field_s32(ctx, DELIVER_HANDLER_OFF) != 0)
		return 0;
	return send_task(ctx, KIND_DELIVER);
}

/* The exit status a process asked for (CONFIG_FTRACE_SYSCALLS). */
SEC("tracepoint/syscalls/sys_enter_exit_group")
int exit_group(void *ctx) { return send_task(ctx, KIND_EXIT_GROUP); }

/* Interrupt context, per CPU. Device interrupts (irq_handler_*), timer
 * callbacks (hrtimer_expire_*: it_real_fn, the tick's CPU-time timers)
 * and softirqs; an exit seen without its entry (attached in between) is
 * ignored. A soft hrtimer runs in a softirq and is counted as hardirq:
 * either way nobody sent the signal.
 *
 * These are raw tracepoints, not perf ones like the rest: they need no
 * field of the record, and a raw tracepoint program guards only against
 * itself (prog->active, __bpf_trace_run in kernel/trace/bpf_trace.c).
 * A perf tracepoint program runs only if no other perf/kprobe program is
 * running on the CPU (bpf_prog_active, trace_call_bpf): a timer
 * interrupt that lands in softirq_entry's program would skip the
 * signal_generate of the SIGALRM it sends (docs/ebpf.md, "Signals sent
 * in a hardirq": the task programs still can). */
INLINE int irq_step(int hard, int delta)
{
	__u32 zero = 0;
	struct irq_depth *d = bpf_map_lookup_elem(&irq, &zero);
	if (!d)
		return 0;
	__u32 *n = hard ? &d->hard : &d->soft;
	if (delta > 0)
		*n += 1;
	else if (*n > 0)
		*n -= 1;
	return 0;
}

SEC("raw_tracepoint/irq_handler_entry")
int irq_entry(void *ctx) { return irq_step(1, 1); }
SEC("raw_tracepoint/irq_handler_exit")
int irq_exit(void *ctx) { return irq_step(1, -1); }
SEC("raw_tracepoint/hrtimer_expire_entry")
int hrtimer_entry(void *ctx) { return irq_step(1, 1); }
SEC("raw_tracepoint/hrtimer_expire_exit")
int hrtimer_exit(void *ctx) { return irq_step(1, -1); }
SEC("raw_tracepoint/softirq_entry")
int softirq_entry(void *ctx) { return irq_step(0, 1); }
SEC("raw_tracepoint/softirq_exit")
int softirq_exit(void *ctx) { return irq_step(0, -1); }

char LICENSE[] SEC("license") = "GPL";
