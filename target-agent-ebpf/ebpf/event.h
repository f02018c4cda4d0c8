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

struct pidns_key {
	__u64 dev;
	__u64 ino;
};

struct signal_event {
	__u64 ts;       /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u64 pid_tgid; /* the running task: tgid << 32 | tid */
	__u64 uid_gid;  /* its real ids: gid << 32 | uid */
	__u64 cgroup;   /* its cgroup v2 id */
	__u32 cpu;
	__s32 sig;
	__s32 err;
	__s32 code;
	__s32 target_tid;
	__s32 target_tgid; /* 0 when unknown */
	__s32 group;       /* -1 when the kernel has no such field */
	__s32 result;      /* -1 likewise */
	__u32 context;     /* CONTEXT_* */
	__s32 ns_tgid;     /* in the running task's own pid namespace, 0 unknown */
	__s32 ns_tid;
	__u32 ns_index;    /* 1 + its index in the pidns map, 0 unknown */
	__u32 exited;      /* the running task had passed sched_process_exit */
	__u32 pad;
	char comm[16];
	char target_comm[16];
};

#endif
