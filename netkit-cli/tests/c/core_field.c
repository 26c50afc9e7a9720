// A program with a CO-RE relocation: whether the running kernel's struct
// sk_buff has a `mark` field is answered at load time from the kernel's BTF.
// Used to check that only such objects make a load read that BTF.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct sk_buff {
	__u32 mark;
} __attribute__((preserve_access_index));

SEC("tcx/ingress")
int core_field(struct __sk_buff *skb)
{
	return bpf_core_field_exists(struct sk_buff, mark) ? -1 /* TCX_NEXT */ : 2 /* TCX_DROP */;
}

char _license[] SEC("license") = "GPL";
