#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} ORDER SEC(".maps");

SEC("tc") int order(struct __sk_buff *skb)
{
	__u32 position = skb->mark + 1, k0 = 0, k1 = 1, *v;

	skb->mark = position;
	v = bpf_map_lookup_elem(&ORDER, &k0);
	if (v)
		*v = position;
	v = bpf_map_lookup_elem(&ORDER, &k1);
	if (v)
		*v += 1;
	return TCX_NEXT;
}
