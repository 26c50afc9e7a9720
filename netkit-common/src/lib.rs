//! Types and constants shared by the eBPF programs (netkit-ebpf) and the
//! user-space library (netkit). Everything here is `repr(C)` so both sides
//! agree on the layout of map keys, values and read-only globals.
#![no_std]

/// Verdicts a program on a tcx or netkit hook returns (the kernel's
/// `TCX_*`/`NETKIT_*` values; both hooks share them).
pub mod verdict {
    /// Run the next program in the chain; after the last one the packet passes
    /// (on netkit too, whatever the device's policy).
    pub const NEXT: i32 = -1;
    /// Stop the chain and let the packet through.
    pub const PASS: i32 = 0;
    /// Stop the chain and drop the packet.
    pub const DROP: i32 = 2;
    /// Stop the chain; the packet goes where a `bpf_redirect*` helper sent it.
    pub const REDIRECT: i32 = 7;
}

/// `counter`: packets and bytes, one per-CPU slot (map `COUNTERS`, index 0).
pub mod counter {
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Counters {
        pub packets: u64,
        pub bytes: u64,
    }
}

/// `firewall`: rules in LPM tries keyed by CIDR (destination and source, IPv4
/// and IPv6), each prefix holding up to [`RULES_PER_PREFIX`](firewall::RULES_PER_PREFIX) rules checked in
/// order; the most specific prefix is consulted first, destination rules
/// before source rules. Hits per rule id in `FW_HITS` (id 0: the default).
pub mod firewall {
    /// Rule ids run from 1 to `MAX_RULES - 1`; index 0 of `FW_HITS` counts
    /// packets that matched no rule and got the default action.
    pub const MAX_RULES: u32 = 256;
    /// Rules sharing one prefix (same CIDR, same direction).
    pub const RULES_PER_PREFIX: usize = 4;
    /// Nested prefixes a lookup walks, most specific first.
    pub const MAX_PREFIX_LEVELS: usize = 8;

    pub const ACTION_ALLOW: u8 = 1;
    pub const ACTION_DENY: u8 = 2;
    /// Any IP protocol.
    pub const PROTO_ANY: u8 = 0;

    pub const DIR_DST: u8 = 0;
    pub const DIR_SRC: u8 = 1;

    /// A rule as the fast path checks it.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RuleMatch {
        pub id: u16,
        pub proto: u8,
        pub action: u8,
        /// Destination port range, inclusive; 0..=65535 for any port. A
        /// narrower range only matches TCP and UDP.
        pub port_lo: u16,
        pub port_hi: u16,
    }

    /// The value of one prefix in an LPM trie.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RuleSet {
        /// The prefix length of this entry (to walk to shorter prefixes).
        pub prefix_len: u32,
        pub count: u32,
        pub rules: [RuleMatch; RULES_PER_PREFIX],
    }

    /// A rule as written, in `FW_RULES` at its id, for listing.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RuleEntry {
        pub used: u8,
        /// 4 or 6.
        pub family: u8,
        pub direction: u8,
        pub prefix_len: u8,
        pub proto: u8,
        pub action: u8,
        pub port_lo: u16,
        pub port_hi: u16,
        pub _pad: [u8; 6],
        pub addr: [u8; 16],
    }
}

/// `redirect-peer`: destination address -> ifindex of a netkit primary whose
/// peer gets the packet (`REDIR_V4`, `REDIR_V6`); `REDIR_STATS` counts per CPU.
pub mod redirect {
    pub const MAX_ENTRIES: u32 = 4096;
    pub const STAT_REDIRECTED: u32 = 0;
    pub const STAT_MISSED: u32 = 1;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain repr(C) data without padding-sensitive invariants.
    unsafe impl aya::Pod for super::counter::Counters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::firewall::RuleMatch {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::firewall::RuleSet {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::firewall::RuleEntry {}
}
