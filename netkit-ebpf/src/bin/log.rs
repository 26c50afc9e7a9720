//! `log`: one aya-log line for every SAMPLE-th packet on this CPU (protocol,
//! addresses, ports, length), then hands the packet on (NEXT). SAMPLE is set
//! at load time (`--set sample=100`).
#![no_std]
#![no_main]

use aya_ebpf::{
    Global,
    macros::{classifier, map},
    maps::PerCpuArray,
    programs::TcContext,
};
use aya_log_ebpf::info;
use netkit_common::verdict;
use netkit_ebpf::ip;

netkit_ebpf::license!();

#[unsafe(no_mangle)]
static SAMPLE: Global<u32> = Global::new(1);

/// Packets seen, per CPU.
#[map(name = "LOG_SEEN")]
static LOG_SEEN: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[classifier]
pub fn log(ctx: TcContext) -> i32 {
    let Some(seen) = LOG_SEEN.get_ptr_mut(0) else { return verdict::NEXT };
    // SAFETY: this CPU's slot.
    let n = unsafe {
        *seen += 1;
        *seen
    };
    let sample = u64::from(SAMPLE.load());
    if sample > 1 && n % sample != 0 {
        return verdict::NEXT;
    }
    let len = ctx.len();
    let parsed = ip(&ctx).and_then(|p| Some((p, p.src(&ctx)?, p.dst(&ctx)?, p.ports(&ctx))));
    match parsed {
        Some((p, src, dst, (sport, dport))) if p.family == 4 => {
            let (src, dst) = (src[0].to_ne_bytes(), dst[0].to_ne_bytes());
            info!(&ctx, "proto {} {:i}:{} -> {:i}:{} len {}", p.proto, src, sport, dst, dport, len);
        }
        Some((p, src, dst, (sport, dport))) => {
            // SAFETY: [u32; 4] and [u8; 16] have the same size; the words hold
            // the address bytes in packet order.
            let (src, dst): ([u8; 16], [u8; 16]) = unsafe { (core::mem::transmute(src), core::mem::transmute(dst)) };
            info!(&ctx, "proto {} [{:i}]:{} -> [{:i}]:{} len {}", p.proto, src, sport, dst, dport, len);
        }
        None => info!(&ctx, "non-IP packet len {}", len),
    }
    verdict::NEXT
}
