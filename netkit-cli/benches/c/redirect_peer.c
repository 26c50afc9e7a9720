#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} REDIR_V4 SEC(".maps");

struct v6 {
	__u8 a[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct v6);
	__type(value, __u32);
} REDIR_V6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} REDIR_STATS SEC(".maps");

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&REDIR_STATS, &stat);

	if (n)
		*n += 1;
}

SEC("tc") int redirect_peer(struct __sk_buff *skb)
{
	struct packet p;
	__u32 *ifindex;

	if (!parse(skb, &p))
		return TCX_NEXT;
	if (p.family == 4) {
		__u32 k;

		__builtin_memcpy(&k, p.dst, 4);
		ifindex = bpf_map_lookup_elem(&REDIR_V4, &k);
	} else {
		struct v6 k;

		__builtin_memcpy(k.a, p.dst, 16);
		ifindex = bpf_map_lookup_elem(&REDIR_V6, &k);
	}
	if (ifindex) {
		count(0);
		return bpf_redirect_peer(*ifindex, 0);
	}
	count(1);
	return TCX_NEXT;
}
