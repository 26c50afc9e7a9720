#include "common.h"

/* The program is named like the bundled one; it is no libm log(). */
#pragma clang diagnostic ignored "-Wincompatible-library-redeclaration"

/* The same information the bundled log program records, written to a ring
 * buffer of the same size as aya-log's. */
struct record {
	__u32 len;
	__u8 family;
	__u8 proto;
	__u16 sport;
	__u16 dport;
	__u16 pad;
	__u8 src[16];
	__u8 dst[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 17);
} LOG_RING SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} LOG_SEEN SEC(".maps");

const volatile __u32 SAMPLE = 1;

SEC("tc") int log(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *seen = bpf_map_lookup_elem(&LOG_SEEN, &key), n;
	struct packet p;
	struct record r = {};

	if (!seen)
		return TCX_NEXT;
	n = ++*seen;
	if (SAMPLE > 1 && n % SAMPLE != 0)
		return TCX_NEXT;
	r.len = skb->len;
	if (parse(skb, &p)) {
		r.family = p.family;
		r.proto = p.proto;
		r.sport = p.sport;
		r.dport = p.dport;
		__builtin_memcpy(r.src, p.src, 16);
		__builtin_memcpy(r.dst, p.dst, 16);
	}
	bpf_ringbuf_output(&LOG_RING, &r, sizeof(r), 0);
	return TCX_NEXT;
}
