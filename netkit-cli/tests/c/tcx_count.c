// A libbpf-style program built by clang (-target bpf): counts packets in a
// BTF-defined array map and in a map pinned by name, adds a load-time
// constant per packet, and passes packets on. Section names as libbpf uses
// them.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

/* Pinned under the loader's map directory, shared by every instance. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared_packets SEC(".maps");

/* Set at load time: netkit attach ... --set step:u64=N */
const volatile __u64 step = 1;

static __always_inline int count(void)
{
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&packets, &key);

	if (n)
		__sync_fetch_and_add(n, step);
	n = bpf_map_lookup_elem(&shared_packets, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	return -1; /* TCX_NEXT */
}

SEC("tcx/ingress")
int count_ingress(struct __sk_buff *skb)
{
	return count();
}

SEC("tcx/egress")
int count_egress(struct __sk_buff *skb)
{
	return count();
}

SEC("netkit/primary")
int count_primary(struct __sk_buff *skb)
{
	return count();
}

SEC("netkit/peer")
int count_peer(struct __sk_buff *skb)
{
	return count();
}

SEC("tc")
int count_tc(struct __sk_buff *skb)
{
	return count();
}

SEC("xdp")
int not_for_tc(struct xdp_md *ctx)
{
	return 2; /* XDP_PASS */
}

char LICENSE[] SEC("license") = "GPL";
