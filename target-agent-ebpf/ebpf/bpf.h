/* The few BPF definitions signal.bpf.c uses, written out so that the
 * program builds with clang alone: no kernel or libbpf headers, no BTF.
 * Helper numbers are the positions in __BPF_FUNC_MAPPER
 * (include/uapi/linux/bpf.h); they never change once released. */
#ifndef WHOSENT_BPF_H
#define WHOSENT_BPF_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;

#define SEC(name) __attribute__((section(name), used))
#define INLINE static inline __attribute__((always_inline))

/* The legacy map definition (section "maps"), which aya reads without
 * BTF: type, key size, value size, max entries, flags. */
struct bpf_map_def {
	__u32 type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
	__u32 map_flags;
};

/* enum bpf_map_type */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PERF_EVENT_ARRAY 4
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_LRU_HASH 9 /* 4.10 */
#define BPF_MAP_TYPE_RINGBUF 27 /* 5.8 */

#define BPF_ANY 0
#define BPF_NOEXIST 1 /* include/uapi/linux/bpf.h */
#define BPF_F_CURRENT_CPU 0xffffffffULL

struct bpf_pidns_info {
	__u32 pid;
	__u32 tgid;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
/* Before 5.5 the only one; later kept only where kernel and user
 * addresses do not overlap (x86, arm64). */
static long (*bpf_probe_read)(void *dst, __u32 size, const void *src) = (void *)4;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static __u64 (*bpf_get_current_uid_gid)(void) = (void *)15;
static long (*bpf_get_current_comm)(void *buf, __u32 size) = (void *)16;
static long (*bpf_perf_event_output)(void *ctx, void *map, __u64 flags, void *data, __u64 size) = (void *)25;
static __u64 (*bpf_get_current_cgroup_id)(void) = (void *)80; /* 4.18 */
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *src) = (void *)113; /* 5.5 */
static long (*bpf_get_ns_current_pid_tgid)(__u64 dev, __u64 ino, struct bpf_pidns_info *nsdata, __u32 size) = (void *)120; /* 5.7 */
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131; /* 5.8 */
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;
static __u64 (*bpf_ringbuf_query)(void *ringbuf, __u64 flags) = (void *)134;

/* bpf_ringbuf_submit flags and bpf_ringbuf_query's question. */
#define BPF_RB_NO_WAKEUP 1
#define BPF_RB_FORCE_WAKEUP 2
#define BPF_RB_AVAIL_DATA 0

#endif
