//! `firewall`: allow or deny IPv4/IPv6 packets by CIDR (LPM tries, most
//! specific prefix first, destination rules before source rules), optional
//! protocol and destination port range. Allowed packets go on down the chain
//! (NEXT), denied ones are dropped; unmatched ones get DEFAULT_ACTION. Hits
//! per rule id are counted per CPU (id 0: the default).
#![no_std]
#![no_main]

use aya_ebpf::{
    Global,
    macros::{classifier, map},
    maps::{Array, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::TcContext,
};
use netkit_common::{
    firewall::{ACTION_DENY, MAX_PREFIX_LEVELS, MAX_RULES, PROTO_ANY, RULES_PER_PREFIX, RuleEntry, RuleSet},
    verdict,
};
use netkit_ebpf::{IPPROTO_TCP, IPPROTO_UDP, ip};

/// What the rules look at.
struct Packet {
    proto: u8,
    dport: u16,
}

netkit_ebpf::license!();

/// ACTION_ALLOW (1) or ACTION_DENY (2), set at load time (`--set default=deny`).
#[unsafe(no_mangle)]
static DEFAULT_ACTION: Global<u8> = Global::new(netkit_common::firewall::ACTION_ALLOW);

/// Always 0. The branch it guards references FW_RULES, which only user space
/// reads: a map no instruction names would not be tied to the program, and
/// `netkit firewall` finds the maps through the program.
#[unsafe(no_mangle)]
static KEEP_RULES_MAP: Global<u8> = Global::new(0);

// Keys hold the address bytes in packet order; u32 words have the same
// layout as the [u8; 4] / [u8; 16] keys user space writes.
#[map(name = "FW_V4_DST")]
static FW_V4_DST: LpmTrie<u32, RuleSet> = LpmTrie::with_max_entries(MAX_RULES, 0);
#[map(name = "FW_V4_SRC")]
static FW_V4_SRC: LpmTrie<u32, RuleSet> = LpmTrie::with_max_entries(MAX_RULES, 0);
#[map(name = "FW_V6_DST")]
static FW_V6_DST: LpmTrie<[u32; 4], RuleSet> = LpmTrie::with_max_entries(MAX_RULES, 0);
#[map(name = "FW_V6_SRC")]
static FW_V6_SRC: LpmTrie<[u32; 4], RuleSet> = LpmTrie::with_max_entries(MAX_RULES, 0);
/// The rules as written, by id (read by `netkit firewall list`).
#[map(name = "FW_RULES")]
static FW_RULES: Array<RuleEntry> = Array::with_max_entries(MAX_RULES, 0);
#[map(name = "FW_HITS")]
static FW_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_RULES, 0);

/// An LPM key laid out like aya's `Key<K>` but naturally aligned, so the
/// prefix length can be changed in place between lookups instead of the
/// packed key being copied byte by byte.
#[repr(C)]
struct AlignedKey<K> {
    prefix_len: u32,
    data: K,
}

impl<K> AlignedKey<K> {
    #[inline(always)]
    fn as_key(&self) -> &Key<K> {
        // SAFETY: same fields in the same order; Key<K> is packed, so any
        // alignment satisfies it.
        unsafe { &*(self as *const Self as *const Key<K>) }
    }
}

#[inline(always)]
fn first_match(set: &RuleSet, pkt: &Packet) -> Option<(u16, u8)> {
    let has_ports = pkt.proto == IPPROTO_TCP || pkt.proto == IPPROTO_UDP;
    for i in 0..RULES_PER_PREFIX {
        if i as u32 >= set.count {
            break;
        }
        let r = &set.rules[i];
        if r.proto != PROTO_ANY && r.proto != pkt.proto {
            continue;
        }
        let any_port = r.port_lo == 0 && r.port_hi == u16::MAX;
        if !any_port && (!has_ports || pkt.dport < r.port_lo || pkt.dport > r.port_hi) {
            continue;
        }
        return Some((r.id, r.action));
    }
    None
}

/// Walks the prefixes of `data` in `trie` from the most specific one.
#[inline(always)]
fn walk<K: Copy>(trie: &LpmTrie<K, RuleSet>, data: K, bits: u32, pkt: &Packet) -> Option<(u16, u8)> {
    let mut key = AlignedKey { prefix_len: bits, data };
    for _ in 0..MAX_PREFIX_LEVELS {
        let set = trie.get(key.as_key())?;
        if let Some(hit) = first_match(set, pkt) {
            return Some(hit);
        }
        if set.prefix_len == 0 {
            return None;
        }
        // The next lookup finds the longest prefix shorter than this one.
        key.prefix_len = set.prefix_len - 1;
    }
    None
}

#[inline(always)]
fn decide(ctx: &TcContext) -> Option<Option<(u16, u8)>> {
    let ip = ip(ctx)?;
    let pkt = Packet { proto: ip.proto, dport: ip.ports(ctx).1 };
    let (src, dst) = (ip.src(ctx)?, ip.dst(ctx)?);
    Some(if ip.family == 4 {
        walk(&FW_V4_DST, dst[0], 32, &pkt).or_else(|| walk(&FW_V4_SRC, src[0], 32, &pkt))
    } else {
        walk(&FW_V6_DST, dst, 128, &pkt).or_else(|| walk(&FW_V6_SRC, src, 128, &pkt))
    })
}

#[classifier]
pub fn firewall(ctx: TcContext) -> i32 {
    if KEEP_RULES_MAP.load() != 0 {
        let _ = FW_RULES.get(0);
    }
    // Not IP (ARP, for one): not the firewall's business.
    let Some(decision) = decide(&ctx) else { return verdict::NEXT };
    let (id, action) = decision.unwrap_or((0, DEFAULT_ACTION.load()));
    if let Some(hits) = FW_HITS.get_ptr_mut(u32::from(id)) {
        // SAFETY: this CPU's slot.
        unsafe { *hits += 1 };
    }
    if action == ACTION_DENY { verdict::DROP } else { verdict::NEXT }
}
