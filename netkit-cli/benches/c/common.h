/* Shared by the C twins of netkit's bundled programs: the same parsing as
 * netkit-ebpf/src/lib.rs (direct packet access, Ethernet + IPv4/IPv6 +
 * TCP/UDP ports), so benchmarks compare like with like. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define TCX_NEXT (-1)
#define TCX_PASS 0
#define TCX_DROP 2
#define ETH_HLEN 14

struct packet {
	__u8 family;
	__u8 proto;
	__u8 src[16];
	__u8 dst[16];
	__u16 sport;
	__u16 dport;
};

static __always_inline void *ptr_at(struct __sk_buff *skb, __u32 off, __u32 size)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (data + off + size > end)
		return 0;
	return data + off;
}

static __always_inline void ports(struct __sk_buff *skb, struct packet *p, __u32 l4)
{
	__u16 *pp;

	if (p->proto != 6 && p->proto != 17)
		return;
	pp = ptr_at(skb, l4, 4);
	if (!pp)
		return;
	p->sport = __builtin_bswap16(pp[0]);
	p->dport = __builtin_bswap16(pp[1]);
}

static __always_inline int parse(struct __sk_buff *skb, struct packet *p)
{
	__u16 *proto = ptr_at(skb, 12, 2);
	__u8 *b;

	__builtin_memset(p, 0, sizeof(*p));
	if (!proto)
		return 0;
	if (*proto == __builtin_bswap16(0x0800)) {
		__u8 *vihl = ptr_at(skb, ETH_HLEN, 1);
		__u16 *frag;
		__u32 ihl;

		if (!vihl)
			return 0;
		ihl = (*vihl & 0x0f) * 4;
		if (ihl < 20)
			return 0;
		frag = ptr_at(skb, ETH_HLEN + 6, 2);
		b = ptr_at(skb, ETH_HLEN + 9, 1);
		if (!frag || !b)
			return 0;
		p->family = 4;
		p->proto = *b;
		b = ptr_at(skb, ETH_HLEN + 12, 8);
		if (!b)
			return 0;
		__builtin_memcpy(p->src, b, 4);
		__builtin_memcpy(p->dst, b + 4, 4);
		if ((__builtin_bswap16(*frag) & 0x1fff) == 0)
			ports(skb, p, ETH_HLEN + ihl);
		return 1;
	}
	if (*proto == __builtin_bswap16(0x86dd)) {
		b = ptr_at(skb, ETH_HLEN + 6, 1);
		if (!b)
			return 0;
		p->family = 6;
		p->proto = *b;
		b = ptr_at(skb, ETH_HLEN + 8, 32);
		if (!b)
			return 0;
		__builtin_memcpy(p->src, b, 16);
		__builtin_memcpy(p->dst, b + 16, 16);
		ports(skb, p, ETH_HLEN + 40);
		return 1;
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
