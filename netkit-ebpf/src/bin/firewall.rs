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
use netkit_ebpf::{IPPROTO_TCP, IPPROTO_UDP, Packet, parse};

netkit_ebpf::license!();

/// ACTION_ALLOW (1) or ACTION_DENY (2), set at load time (`--set default=deny`).
#[unsafe(no_mangle)]
static DEFAULT_ACTION: Global<u8> = Global::new(netkit_common::firewall::ACTION_ALLOW);

#[map(name = "FW_V4_DST")]
static FW_V4_DST: LpmTrie<[u8; 4], RuleSet> = LpmTrie::with_max_entries(MAX_RULES, 0);
#[map(name = "FW_V4_SRC")]
static FW_V4_SRC: LpmTrie<[u8; 4], RuleSet> = LpmTrie::with_max_entries(MAX_RULES, 0);
#[map(name = "FW_V6_DST")]
static FW_V6_DST: LpmTrie<[u8; 16], RuleSet> = LpmTrie::with_max_entries(MAX_RULES, 0);
#[map(name = "FW_V6_SRC")]
static FW_V6_SRC: LpmTrie<[u8; 16], RuleSet> = LpmTrie::with_max_entries(MAX_RULES, 0);
/// The rules as written, by id (read by `netkit firewall list`).
#[map(name = "FW_RULES")]
static FW_RULES: Array<RuleEntry> = Array::with_max_entries(MAX_RULES, 0);
#[map(name = "FW_HITS")]
static FW_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_RULES, 0);

#[inline(always)]
fn first_match(set: &RuleSet, pkt: &Packet) -> Option<(u16, u8)> {
    for i in 0..RULES_PER_PREFIX {
        if i as u32 >= set.count {
            break;
        }
        let r = &set.rules[i];
        if r.proto != PROTO_ANY && r.proto != pkt.proto {
            continue;
        }
        let any_port = r.port_lo == 0 && r.port_hi == u16::MAX;
        if !any_port {
            let has_ports = pkt.proto == IPPROTO_TCP || pkt.proto == IPPROTO_UDP;
            if !has_ports || pkt.dport < r.port_lo || pkt.dport > r.port_hi {
                continue;
            }
        }
        return Some((r.id, r.action));
    }
    None
}

macro_rules! walk {
    ($trie:expr, $addr:expr, $bits:expr, $pkt:expr) => {{
        let mut found = None;
        let mut len: u32 = $bits;
        for _ in 0..MAX_PREFIX_LEVELS {
            let Some(set) = $trie.get(Key::new(len, $addr)) else { break };
            if let Some(hit) = first_match(set, $pkt) {
                found = Some(hit);
                break;
            }
            if set.prefix_len == 0 {
                break;
            }
            // The next lookup finds the longest prefix shorter than this one.
            len = set.prefix_len - 1;
        }
        found
    }};
}

#[inline(always)]
fn decide(pkt: &Packet) -> Option<(u16, u8)> {
    if pkt.family == 4 {
        let dst = [pkt.dst[0], pkt.dst[1], pkt.dst[2], pkt.dst[3]];
        let src = [pkt.src[0], pkt.src[1], pkt.src[2], pkt.src[3]];
        walk!(FW_V4_DST, dst, 32, pkt).or_else(|| walk!(FW_V4_SRC, src, 32, pkt))
    } else {
        walk!(FW_V6_DST, pkt.dst, 128, pkt).or_else(|| walk!(FW_V6_SRC, pkt.src, 128, pkt))
    }
}

/// Always 0. The branch it guards references FW_RULES, which only user space
/// reads: a map no instruction names would not be tied to the program, and
/// `netkit firewall` finds the maps through the program.
#[unsafe(no_mangle)]
static KEEP_RULES_MAP: Global<u8> = Global::new(0);

#[classifier]
pub fn firewall(ctx: TcContext) -> i32 {
    if KEEP_RULES_MAP.load() != 0 {
        let _ = FW_RULES.get(0);
    }
    // Not IP (ARP, for one): not the firewall's business.
    let Some(pkt) = parse(&ctx) else { return verdict::NEXT };
    let (id, action) = decide(&pkt).unwrap_or((0, DEFAULT_ACTION.load()));
    if let Some(hits) = FW_HITS.get_ptr_mut(u32::from(id)) {
        // SAFETY: this CPU's slot.
        unsafe { *hits += 1 };
    }
    if action == ACTION_DENY { verdict::DROP } else { verdict::NEXT }
}
