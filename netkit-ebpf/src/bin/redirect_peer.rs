//! `redirect-peer`: for a host-side device's tcx ingress. Looks the
//! destination address up and, on a match, hands the packet straight to the
//! peer of the netkit pair whose primary has that ifindex
//! (bpf_redirect_peer: no second pass through the host stack). Anything
//! else goes on down the chain.
#![no_std]
#![no_main]

use aya_ebpf::{
    helpers::generated::bpf_redirect_peer,
    macros::{classifier, map},
    maps::{HashMap, PerCpuArray},
    programs::TcContext,
};
use netkit_common::{
    redirect::{MAX_ENTRIES, STAT_MISSED, STAT_REDIRECTED},
    verdict,
};
use netkit_ebpf::ip;

netkit_ebpf::license!();

// Keys hold the address bytes in packet order (u32 words: the same bytes as
// the [u8; 4] / [u8; 16] keys user space writes).
#[map(name = "REDIR_V4")]
static REDIR_V4: HashMap<u32, u32> = HashMap::with_max_entries(MAX_ENTRIES, 0);
#[map(name = "REDIR_V6")]
static REDIR_V6: HashMap<[u32; 4], u32> = HashMap::with_max_entries(MAX_ENTRIES, 0);
#[map(name = "REDIR_STATS")]
static REDIR_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

#[inline(always)]
fn count(stat: u32) {
    if let Some(n) = REDIR_STATS.get_ptr_mut(stat) {
        // SAFETY: this CPU's slot.
        unsafe { *n += 1 };
    }
}

#[classifier]
pub fn redirect_peer(ctx: TcContext) -> i32 {
    let Some(pkt) = ip(&ctx) else { return verdict::NEXT };
    // SAFETY: map lookups return pointers valid for this program run.
    let target = unsafe {
        if pkt.family == 4 {
            let Some(dst) = pkt.dst4(&ctx) else { return verdict::NEXT };
            REDIR_V4.get(&dst).copied()
        } else {
            let Some(dst) = pkt.dst(&ctx) else { return verdict::NEXT };
            REDIR_V6.get(&dst).copied()
        }
    };
    match target {
        Some(ifindex) => {
            count(STAT_REDIRECTED);
            // SAFETY: a helper call; it returns TC_ACT_REDIRECT (= TCX_REDIRECT).
            unsafe { bpf_redirect_peer(ifindex, 0) as i32 }
        }
        None => {
            count(STAT_MISSED);
            verdict::NEXT
        }
    }
}
