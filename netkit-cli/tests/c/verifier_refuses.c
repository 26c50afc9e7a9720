// A program the kernel's verifier must refuse: it reads packet data without
// checking the access against data_end. Used to test how a refused load is
// reported.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tcx/ingress")
int unchecked_read(struct __sk_buff *skb)
{
	unsigned char *data = (unsigned char *)(long)skb->data;

	return data[0] == 0x45 ? -1 : 0;
}

char _license[] SEC("license") = "GPL";
