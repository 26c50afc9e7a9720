#include "common.h"
SEC("tc") int next(struct __sk_buff *skb) { return TCX_NEXT; }
