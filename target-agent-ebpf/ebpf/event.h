/* What the program sends for each signal, and its configuration flags.
 * The agent's src/event.rs mirrors these (#[repr(C)]); a test there
 * checks the size and offsets against this layout. */
#ifndef WHOSENT_EVENT_H
#define WHOSENT_EVENT_H

#define FILTER_TARGET_PID 1
#define FILTER_TARGET_COMM 2
#define FILTER_SENDER_PID 4
#define FILTER_SENDER_COMM 8

#define CONTEXT_TASK 0
#define CONTEXT_HARDIRQ 1
#define CONTEXT_SOFTIRQ 2

#define PIDNS_MAX 8

/* Storm folding: the keys the `folds` map holds. */
#define FOLD_MAX 16384

struct fold_key {
	__s32 sender; /* tgid */
	__s32 target; /* tgid */
	__s32 sig;
	__s32 code;
	__s32 result; /* -1 where the event has no result field */
};

struct fold_value {
	__u64 count; /* repeats after the first, which was sent */
	__u64 first; /* bpf_ktime_get_ns of the first */
	__u64 last;  /* of the last repeat */
};

struct pidns_key {
	__u64 dev;
	__u64 ino;
};

/* What each program sends: a header, then (for a signal) what the
 * program read of the running task, then the tracepoint's own record
 * as its format file lays it out. The agent turns the record into what
 * the ftrace backend reads from a ring-buffer page (its first 8 bytes,
 * which hold a pt_regs pointer for BPF, rewritten from the header) and
 * hands it to the same decoders and pipeline (whosent-analysis). */
#define KIND_SIGNAL 1
#define KIND_NEWTASK 2
#define KIND_RENAME 3
#define KIND_EXEC 4
#define KIND_EXIT 5
#define KIND_VICTIM 6
#define KIND_DELIVER 7
#define KIND_EXIT_GROUP 8

/* Bytes of the record copied: every fixed field of these events ends
 * below them (the agent checks each format file against them), and an
 * exec's filename gets the rest (longer ones are cut). */
#define REC_SIGNAL 64
#define REC_TASK 128
#define REC_EXEC 320

struct head {
	__u64 ts;       /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u64 pid_tgid; /* the running task: tgid << 32 | tid */
	__u32 kind;     /* KIND_* */
	__u32 cpu;
	__u32 context;  /* CONTEXT_* */
	__u32 size;     /* bytes of rec */
};

struct signal_event {
	struct head h;
	__u64 uid_gid;  /* the running task's real ids: gid << 32 | uid */
	__u64 cgroup;   /* its cgroup v2 id */
	__s32 target_tgid; /* 0 when unknown */
	__s32 ns_tgid;     /* in the running task's own pid namespace, 0 unknown */
	__s32 ns_tid;
	__u32 ns_index;    /* 1 + its index in the pidns map, 0 unknown */
	__u32 exited;      /* the running task had passed sched_process_exit */
	__u32 pad;
	char comm[16];
	__u8 rec[REC_SIGNAL];
};

struct task_event {
	struct head h;
	__u8 rec[REC_TASK];
};

struct exec_event {
	struct head h;
	__u8 rec[REC_EXEC];
};

#endif
