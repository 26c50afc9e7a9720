// A user program that sends every packet into a pair's peer through a
// subprogram calling bpf_redirect_peer: the kernel honours that helper at
// tc ingress only, so the tool refuses the object on every other hook.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Set at load time: netkit attach ... --set target:u32=IFINDEX */
const volatile __u32 target = 1;

static __attribute__((noinline)) int to_peer(__u32 ifindex)
{
	return bpf_redirect_peer(ifindex, 0);
}

SEC("tcx/ingress")
int into_peer(struct __sk_buff *skb)
{
	return to_peer(target);
}

char __license[] SEC("license") = "GPL";
