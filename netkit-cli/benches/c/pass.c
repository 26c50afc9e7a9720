#include "common.h"
SEC("tc") int pass(struct __sk_buff *skb) { return TCX_PASS; }
