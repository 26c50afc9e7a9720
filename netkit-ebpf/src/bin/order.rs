//! `order`: shows where in the chain a program runs. Each instance adds one to
//! skb->mark and stores the result, i.e. its 1-based position in the chain for
//! the last packet it saw, in its own map; then it hands the packet on (NEXT).
//! The mark starts at 0 for local traffic and for packets that crossed a
//! namespace (the kernel scrubs it), so chained `order` instances record 1, 2, 3...
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{classifier, map},
    maps::Array,
    programs::TcContext,
};
use netkit_common::verdict;

netkit_ebpf::license!();

/// Index 0: the position seen on the last packet; index 1: packets seen.
#[map(name = "ORDER")]
static ORDER: Array<u32> = Array::with_max_entries(2, 0);

#[classifier]
pub fn order(ctx: TcContext) -> i32 {
    // SAFETY: the kernel hands sched_cls programs a valid __sk_buff.
    let position = unsafe { (*ctx.skb.skb).mark }.wrapping_add(1);
    ctx.set_mark(position);
    if let Some(slot) = ORDER.get_ptr_mut(0) {
        // SAFETY: a valid pointer into the map's value for index 0.
        unsafe { *slot = position };
    }
    if let Some(seen) = ORDER.get_ptr_mut(1) {
        // SAFETY: as above; a per-program counter, races only under load.
        unsafe { *seen = (*seen).wrapping_add(1) };
    }
    verdict::NEXT
}
