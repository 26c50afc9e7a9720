#include "common.h"

#define MAX_RULES 256
#define RULES_PER_PREFIX 4
#define MAX_PREFIX_LEVELS 8
#define ACTION_ALLOW 1
#define ACTION_DENY 2

struct rule_match {
	__u16 id;
	__u8 proto;
	__u8 action;
	__u16 port_lo;
	__u16 port_hi;
};

struct rule_set {
	__u32 prefix_len;
	__u32 count;
	struct rule_match rules[RULES_PER_PREFIX];
};

struct rule_entry {
	__u8 used, family, direction, prefix_len, proto, action;
	__u16 port_lo, port_hi;
	__u8 pad[6];
	__u8 addr[16];
};

struct key4 {
	__u32 prefix_len;
	__u8 addr[4];
};

struct key6 {
	__u32 prefix_len;
	__u8 addr[16];
};

#define TRIE(name, key_t)                                   \
	struct {                                            \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);        \
		__uint(max_entries, MAX_RULES);             \
		__uint(map_flags, BPF_F_NO_PREALLOC);       \
		__type(key, key_t);                         \
		__type(value, struct rule_set);             \
	} name SEC(".maps")

TRIE(FW_V4_DST, struct key4);
TRIE(FW_V4_SRC, struct key4);
TRIE(FW_V6_DST, struct key6);
TRIE(FW_V6_SRC, struct key6);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, struct rule_entry);
} FW_RULES SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, __u64);
} FW_HITS SEC(".maps");

const volatile __u8 DEFAULT_ACTION = ACTION_ALLOW;
const volatile __u8 KEEP_RULES_MAP = 0;

static __always_inline int first_match(struct rule_set *set, struct packet *p, __u16 *id, __u8 *action)
{
#pragma unroll
	for (int i = 0; i < RULES_PER_PREFIX; i++) {
		struct rule_match *r = &set->rules[i];

		if (i >= set->count)
			break;
		if (r->proto != 0 && r->proto != p->proto)
			continue;
		if (!(r->port_lo == 0 && r->port_hi == 0xffff)) {
			if ((p->proto != 6 && p->proto != 17) || p->dport < r->port_lo || p->dport > r->port_hi)
				continue;
		}
		*id = r->id;
		*action = r->action;
		return 1;
	}
	return 0;
}

#define WALK(trie, key_t, bits, from, n)                                        \
	({                                                                      \
		key_t key = { .prefix_len = bits };                             \
		int found = 0;                                                  \
		__builtin_memcpy(key.addr, from, n);                            \
		for (int lvl = 0; lvl < MAX_PREFIX_LEVELS; lvl++) {             \
			struct rule_set *set = bpf_map_lookup_elem(&trie, &key); \
			if (!set)                                               \
				break;                                          \
			if (first_match(set, p, id, action)) {                  \
				found = 1;                                      \
				break;                                          \
			}                                                       \
			if (set->prefix_len == 0)                               \
				break;                                          \
			key.prefix_len = set->prefix_len - 1;                   \
		}                                                               \
		found;                                                          \
	})

static __always_inline int decide(struct packet *p, __u16 *id, __u8 *action)
{
	if (p->family == 4)
		return WALK(FW_V4_DST, struct key4, 32, p->dst, 4) || WALK(FW_V4_SRC, struct key4, 32, p->src, 4);
	return WALK(FW_V6_DST, struct key6, 128, p->dst, 16) || WALK(FW_V6_SRC, struct key6, 128, p->src, 16);
}

SEC("tc") int firewall(struct __sk_buff *skb)
{
	struct packet p;
	__u16 id = 0;
	__u8 action = DEFAULT_ACTION;
	__u32 key;
	__u64 *hits;

	if (KEEP_RULES_MAP) {
		key = 0;
		bpf_map_lookup_elem(&FW_RULES, &key);
	}
	if (!parse(skb, &p))
		return TCX_NEXT;
	if (!decide(&p, &id, &action)) {
		id = 0;
		action = DEFAULT_ACTION;
	}
	key = id;
	hits = bpf_map_lookup_elem(&FW_HITS, &key);
	if (hits)
		*hits += 1;
	return action == ACTION_DENY ? TCX_DROP : TCX_NEXT;
}
