//! `counter`: counts packets and bytes per CPU, then hands the packet on (NEXT).
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{classifier, map},
    maps::PerCpuArray,
    programs::TcContext,
};
use netkit_common::{counter::Counters, verdict};

netkit_ebpf::license!();

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(1, 0);

#[classifier]
pub fn counter(ctx: TcContext) -> i32 {
    if let Some(c) = COUNTERS.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; no other program instance shares the map.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += u64::from(ctx.len());
        }
    }
    verdict::NEXT
}
