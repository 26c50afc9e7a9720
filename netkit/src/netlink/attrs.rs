//! Attributes each end of a pair has on its own, as any device does: the MAC
//! address, the GSO/GRO limits (Big TCP) and the queue counts. Parsed and
//! range-checked here, before any netlink call, and turned into rtnetlink
//! attributes.

use std::{fmt, str::FromStr};

use netlink_packet_route::link::LinkAttribute;
use serde::Serialize;

/// The kernel's GSO_MAX_SIZE and GRO_MAX_SIZE (Big TCP): 8 * 65535.
pub const MAX_OFFLOAD_SIZE: u32 = 524_280;
/// The kernel's GSO_MAX_SEGS.
pub const MAX_GSO_SEGS: u32 = 65_535;
/// This tool's floor for GSO sizes. The kernel's own is MAX_TCP_HEADER + 1,
/// which depends on its configuration (321 on x86_64 Debian kernels); 576,
/// the smallest datagram every IPv4 host accepts, is above it everywhere.
pub const MIN_GSO_SIZE: u32 = 576;
/// The kernel's limit on queues per device (rtnl_create_link).
pub const MAX_QUEUES: u32 = 4096;

/// The command-line flag `name` of the primary, or its `--peer-` twin.
fn flag(peer: bool, name: &str) -> String {
    if peer { format!("--peer-{name}") } else { format!("--{name}") }
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;

    /// Six hex bytes separated by ':' (`02:00:00:00:00:01`); a unicast,
    /// non-zero address (a device cannot have a multicast one).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a MAC address: write six hex bytes, e.g. 02:00:00:00:00:01");
        let bytes: Vec<u8> = s
            .split(':')
            .map(|b| if b.len() == 2 { u8::from_str_radix(b, 16).ok() } else { None })
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let mac = Mac(bytes.try_into().map_err(|_| bad())?);
        if mac.0[0] & 1 != 0 {
            return Err(format!("{s} is a multicast address; a device needs a unicast one (even first byte)"));
        }
        if mac.0 == [0; 6] {
            return Err(format!("{s} is the zero address; a device needs a real one"));
        }
        Ok(mac)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The GSO/GRO limits of one device (Big TCP and its IPv4 twin). In a request
/// `None` leaves the kernel's value; in a view every value the kernel reports
/// is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Offload {
    /// Largest GSO packet the stack builds for the device, in bytes
    /// (IFLA_GSO_MAX_SIZE; above 65536 it is Big TCP for IPv6).
    pub gso_max_size: Option<u32>,
    /// The same for IPv4 (IFLA_GSO_IPV4_MAX_SIZE, Linux >= 6.3).
    pub gso_ipv4_max_size: Option<u32>,
    /// Largest packet GRO aggregates, in bytes (IFLA_GRO_MAX_SIZE).
    pub gro_max_size: Option<u32>,
    /// The same for IPv4 (IFLA_GRO_IPV4_MAX_SIZE, Linux >= 6.3).
    pub gro_ipv4_max_size: Option<u32>,
    /// Most segments in one GSO packet (IFLA_GSO_MAX_SEGS).
    pub gso_max_segs: Option<u32>,
}

impl Offload {
    /// (flag, requested value, allowed range), flags named for `end`.
    fn limits(&self, peer: bool) -> [(String, Option<u32>, std::ops::RangeInclusive<u32>); 5] {
        let flag = |name: &str| flag(peer, name);
        [
            (flag("gso-max-size"), self.gso_max_size, MIN_GSO_SIZE..=MAX_OFFLOAD_SIZE),
            (flag("gso-ipv4-max-size"), self.gso_ipv4_max_size, MIN_GSO_SIZE..=MAX_OFFLOAD_SIZE),
            (flag("gro-max-size"), self.gro_max_size, 1..=MAX_OFFLOAD_SIZE),
            (flag("gro-ipv4-max-size"), self.gro_ipv4_max_size, 1..=MAX_OFFLOAD_SIZE),
            (flag("gso-max-segs"), self.gso_max_segs, 1..=MAX_GSO_SEGS),
        ]
    }

    /// Every requested value in its range; `peer` names the flags `--peer-...`.
    pub(crate) fn check(&self, peer: bool) -> Result<(), String> {
        for (flag, value, range) in self.limits(peer) {
            if let Some(v) = value
                && !range.contains(&v)
            {
                return Err(format!("{flag} {v}: must be between {} and {}", range.start(), range.end()));
            }
        }
        Ok(())
    }

    /// The first requested value `got` does not have, as its flag.
    pub(crate) fn unmet(&self, got: &Offload, peer: bool) -> Option<String> {
        let have = got.limits(peer);
        self.limits(peer)
            .into_iter()
            .zip(have)
            .find(|((_, want, _), (_, have, _))| want.is_some() && want != have)
            .map(|((flag, _, _), _)| flag)
    }

    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The rtnetlink attributes asking for these values.
    pub(crate) fn attributes(&self) -> Vec<LinkAttribute> {
        [
            self.gso_max_size.map(LinkAttribute::GsoMaxSize),
            self.gso_ipv4_max_size.map(LinkAttribute::GsoIpv4MaxSize),
            self.gro_max_size.map(LinkAttribute::GroMaxSize),
            self.gro_ipv4_max_size.map(LinkAttribute::GroIpv4MaxSize),
            self.gso_max_segs.map(LinkAttribute::GsoMaxSegs),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The queue counts of one device, fixed when it is created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Queues {
    /// Receive queues (IFLA_NUM_RX_QUEUES).
    pub num_rx_queues: Option<u32>,
    /// Transmit queues (IFLA_NUM_TX_QUEUES).
    pub num_tx_queues: Option<u32>,
}

impl Queues {
    /// Both counts, when given, between 1 and 4096 (the kernel's limit).
    pub(crate) fn check(&self, peer: bool) -> Result<(), String> {
        let flag = |name: &str| flag(peer, name);
        for (name, value) in [("numrxqueues", self.num_rx_queues), ("numtxqueues", self.num_tx_queues)] {
            if let Some(v) = value
                && !(1..=MAX_QUEUES).contains(&v)
            {
                return Err(format!("{} {v}: must be between 1 and {MAX_QUEUES}", flag(name)));
            }
        }
        Ok(())
    }

    /// The first requested count `got` does not have, as its flag.
    pub(crate) fn unmet(&self, got: &Queues, peer: bool) -> Option<String> {
        let flag = |name: &str| flag(peer, name);
        if self.num_rx_queues.is_some() && self.num_rx_queues != got.num_rx_queues {
            return Some(flag("numrxqueues"));
        }
        (self.num_tx_queues.is_some() && self.num_tx_queues != got.num_tx_queues).then(|| flag("numtxqueues"))
    }

    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The rtnetlink attributes asking for these counts.
    pub(crate) fn attributes(&self) -> Vec<LinkAttribute> {
        [self.num_rx_queues.map(LinkAttribute::NumRxQueues), self.num_tx_queues.map(LinkAttribute::NumTxQueues)]
            .into_iter()
            .flatten()
            .collect()
    }
}

/// What one end of a pair is asked to have besides the pair's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndAttrs {
    /// Its MAC address (L2 pairs only).
    pub address: Option<Mac>,
    /// Its GSO/GRO limits.
    pub offload: Offload,
    /// Its queue counts (at creation only).
    pub queues: Queues,
}

impl EndAttrs {
    /// Ranges, and the MAC only where the pair carries Ethernet frames.
    pub(crate) fn check(&self, peer: bool, l2: bool) -> Result<(), String> {
        if let Some(mac) = self.address
            && !l2
        {
            let flag = flag(peer, "address");
            return Err(format!(
                "{flag} {mac}: an L3 netkit pair has no MAC addresses (the kernel refuses them); use --mode l2"
            ));
        }
        self.offload.check(peer)?;
        self.queues.check(peer)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.address.is_none() && self.offload.is_empty() && self.queues.is_empty()
    }

    /// The first thing asked for that a dump of the device (its `address`,
    /// `offload` and `queues`) does not show, as its flag.
    pub(crate) fn unmet(
        &self,
        address: Option<&[u8]>,
        offload: &Offload,
        queues: &Queues,
        peer: bool,
    ) -> Option<String> {
        if let Some(mac) = self.address
            && address != Some(&mac.0[..])
        {
            return Some(flag(peer, "address"));
        }
        self.offload.unmet(offload, peer).or_else(|| self.queues.unmet(queues, peer))
    }

    /// The rtnetlink attributes asking for all of it.
    pub(crate) fn attributes(&self) -> Vec<LinkAttribute> {
        let mut out: Vec<LinkAttribute> =
            self.address.map(|m| LinkAttribute::Address(m.0.to_vec())).into_iter().collect();
        out.extend(self.offload.attributes());
        out.extend(self.queues.attributes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_print_back_and_must_be_unicast() {
        let m: Mac = "02:00:0A:ff:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:0a:ff:00:01");
        for bad in
            ["", "02:00:00:00:00", "02:00:00:00:00:01:02", "02-00-00-00-00-01", "2:0:0:0:0:1", "zz:00:00:00:00:01"]
        {
            assert!(bad.parse::<Mac>().unwrap_err().contains("not a MAC address"), "{bad:?}");
        }
        assert!("01:00:5e:00:00:01".parse::<Mac>().unwrap_err().contains("multicast"));
        assert!("00:00:00:00:00:00".parse::<Mac>().unwrap_err().contains("zero"));
    }

    #[test]
    fn limits_are_range_checked_with_the_flag_of_their_end() {
        let ok = Offload {
            gso_max_size: Some(196_608),
            gro_max_size: Some(MAX_OFFLOAD_SIZE),
            gso_max_segs: Some(64),
            ..Default::default()
        };
        assert!(ok.check(false).is_ok());
        let e = Offload { gso_max_size: Some(MAX_OFFLOAD_SIZE + 1), ..Default::default() }.check(true).unwrap_err();
        assert!(e.starts_with("--peer-gso-max-size 524281: must be between 576 and 524280"), "{e}");
        let e = Offload { gso_max_segs: Some(0), ..Default::default() }.check(false).unwrap_err();
        assert!(e.starts_with("--gso-max-segs 0"), "{e}");
        let e = Queues { num_tx_queues: Some(4097), ..Default::default() }.check(false).unwrap_err();
        assert!(e.contains("--numtxqueues 4097") && e.contains("4096"), "{e}");
        let l3 = EndAttrs { address: Some("02:00:00:00:00:01".parse().unwrap()), ..Default::default() };
        assert!(l3.check(true, false).unwrap_err().contains("--peer-address 02:00:00:00:00:01: an L3"));
        assert!(l3.check(true, true).is_ok());
    }

    #[test]
    fn unmet_names_the_first_value_the_kernel_did_not_take() {
        let want = Offload { gro_max_size: Some(100_000), gso_max_segs: Some(10), ..Default::default() };
        let got = Offload {
            gro_max_size: Some(100_000),
            gso_max_segs: Some(65_535),
            gso_max_size: Some(65_536),
            ..Default::default()
        };
        assert_eq!(want.unmet(&got, true).as_deref(), Some("--peer-gso-max-segs"));
        assert_eq!(want.unmet(&Offload { gso_max_segs: Some(10), ..got }, true), None);
        let q = Queues { num_rx_queues: Some(4), num_tx_queues: None };
        assert_eq!(
            q.unmet(&Queues { num_rx_queues: Some(1), num_tx_queues: Some(1) }, false).as_deref(),
            Some("--numrxqueues")
        );
    }
}
