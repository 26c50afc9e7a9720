#include "common.h"
SEC("tc") int drop(struct __sk_buff *skb) { return TCX_DROP; }
