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
use netkit_ebpf::parse;

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
    match parse(&ctx) {
        Some(p) if p.family == 4 => {
            let (src, dst) = ([p.src[0], p.src[1], p.src[2], p.src[3]], [p.dst[0], p.dst[1], p.dst[2], p.dst[3]]);
            info!(&ctx, "proto {} {:i}:{} -> {:i}:{} len {}", p.proto, src, p.sport, dst, p.dport, len);
        }
        Some(p) => {
            info!(&ctx, "proto {} [{:i}]:{} -> [{:i}]:{} len {}", p.proto, p.src, p.sport, p.dst, p.dport, len);
        }
        None => info!(&ctx, "non-IP packet len {}", len),
    }
    verdict::NEXT
}
