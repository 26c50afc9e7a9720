//! Link dumps decoded into plain structs, with the netkit attributes of
//! IFLA_INFO_DATA spelled out (read by `read`).

use netlink_packet_core::DefaultNla;
use netlink_packet_route::link::{InfoNetkit, NetkitMode, NetkitPolicy, NetkitScrub};
use serde::Serialize;

/// Which end of a netkit pair a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The end created first, in the namespace the pair was made in; it owns both ends' hooks.
    Primary,
    /// The other end (usually in a pod's namespace).
    Peer,
    /// A netkit device without a peer (PAIRING single, Linux 7.1).
    Single,
}

/// The device a pair is made of: netkit (BPF in the device's transmit
/// path, with its own primary and peer hooks) or veth (the kernel's oldest
/// pair, for kernels without netkit; its programs go on tcx).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairKind {
    /// A netkit pair (the default).
    #[default]
    Netkit,
    /// A veth pair.
    Veth,
}

impl PairKind {
    /// The kind of `link`, when it is one end of a pair of either kind.
    pub(crate) fn of(link: &Link) -> Option<Self> {
        match link.kind.as_deref() {
            Some("netkit") => Some(Self::Netkit),
            Some("veth") => Some(Self::Veth),
            _ => None,
        }
    }
}

impl std::fmt::Display for PairKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Netkit => "netkit",
            Self::Veth => "veth",
        })
    }
}

/// A device's default verdict when no program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
// The kernel adds cases (hooks, modes, scrub and pairing values).
#[non_exhaustive]
pub enum Policy {
    /// Let packets through.
    Pass,
    /// Drop packets.
    Drop,
}

/// Whether a netkit pair carries Ethernet frames or IP packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
// The kernel adds cases (hooks, modes, scrub and pairing values).
#[non_exhaustive]
pub enum Mode {
    /// Ethernet frames, with MAC addresses.
    L2,
    /// IP packets only (the kernel's default).
    L3,
}

/// Whether skb mark and priority are cleared when a packet crosses netns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
// The kernel adds cases (hooks, modes, scrub and pairing values).
#[non_exhaustive]
pub enum Scrub {
    /// Clear them (the kernel's default).
    Default,
    /// Keep them.
    None,
}

/// IFLA_NETKIT_PAIRING, which netlink-packet-route does not name yet.
pub(crate) const IFLA_NETKIT_PAIRING: u16 = 10;

/// Whether netkit creates a pair or a single device (Linux 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
// The kernel adds cases (hooks, modes, scrub and pairing values).
#[non_exhaustive]
pub enum Pairing {
    /// A pair of devices (the default).
    Pair,
    /// One device without a peer.
    Single,
}

impl Pairing {
    pub(crate) fn to_nl(self) -> InfoNetkit {
        let value: u32 = match self {
            Self::Pair => 0,
            Self::Single => 1,
        };
        InfoNetkit::Other(DefaultNla::new(IFLA_NETKIT_PAIRING, value.to_ne_bytes().to_vec()))
    }

    pub(crate) fn from_nl(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Pair),
            1 => Some(Self::Single),
            _ => None,
        }
    }
}

impl Policy {
    pub(crate) fn to_nl(self) -> NetkitPolicy {
        match self {
            Self::Pass => NetkitPolicy::Pass,
            Self::Drop => NetkitPolicy::Drop,
        }
    }
}

impl Mode {
    pub(crate) fn to_nl(self) -> NetkitMode {
        match self {
            Self::L2 => NetkitMode::L2,
            Self::L3 => NetkitMode::L3,
        }
    }
}

impl Scrub {
    pub(crate) fn to_nl(self) -> NetkitScrub {
        match self {
            Self::Default => NetkitScrub::Default,
            Self::None => NetkitScrub::None,
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pass => "pass",
            Self::Drop => "drop",
        })
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::L2 => "l2",
            Self::L3 => "l3",
        })
    }
}

impl std::fmt::Display for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pair => "pair",
            Self::Single => "single",
        })
    }
}

impl std::fmt::Display for Scrub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Default => "default",
            Self::None => "none",
        })
    }
}

/// The settings of a netkit pair. In a pair spec or a device view they are in
/// pair terms (`policy` is the primary's, `peer_policy` the peer's); in a dump
/// (`NetkitAttrs`) `policy` and `scrub` are the dumped device's own.
/// Settings the running kernel does not know are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PairSettings {
    /// L2 or L3.
    pub mode: Option<Mode>,
    /// The primary's default verdict.
    pub policy: Option<Policy>,
    /// The peer's default verdict.
    pub peer_policy: Option<Policy>,
    /// The primary's scrub setting (Linux >= 6.13).
    pub scrub: Option<Scrub>,
    /// The peer's scrub setting (Linux >= 6.13).
    pub peer_scrub: Option<Scrub>,
    /// Extra headroom in packets, in bytes (Linux >= 6.14).
    pub headroom: Option<u16>,
    /// Extra tailroom in packets, in bytes (Linux >= 6.14).
    pub tailroom: Option<u16>,
    /// A pair or a single device (Linux >= 7.1).
    pub pairing: Option<Pairing>,
}

impl PairSettings {
    /// The same settings seen from the other end.
    pub(crate) fn swapped(self) -> Self {
        Self {
            policy: self.peer_policy,
            peer_policy: self.policy,
            scrub: self.peer_scrub,
            peer_scrub: self.scrub,
            ..self
        }
    }
}

/// The netkit attributes of one device, as the kernel dumps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetkitAttrs {
    pub(crate) primary: bool,
    pub(crate) settings: PairSettings,
}

/// Packet counters (IFLA_STATS64) that matter for a pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    pub(crate) rx_bytes: u64,
    pub(crate) tx_bytes: u64,
    /// Packets dropped on receive.
    pub rx_dropped: u64,
    /// Packets dropped on send.
    pub tx_dropped: u64,
}

/// One device from a link dump.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// The ifindex.
    pub index: u32,
    /// The name.
    pub name: String,
    /// The link kind (IFLA_INFO_KIND), if it has one.
    pub kind: Option<String>,
    pub(crate) mtu: Option<u32>,
    pub(crate) operstate: String,
    pub(crate) address: Option<Vec<u8>>,
    /// IFLA_LINK: for netkit and veth, the other end's ifindex.
    pub(crate) link: Option<u32>,
    /// IFLA_LINK_NETNSID: set when the other end lives in another namespace.
    pub(crate) link_netnsid: Option<i32>,
    pub(crate) netkit: Option<NetkitAttrs>,
    pub(crate) counters: Counters,
    pub(crate) offload: super::attrs::Offload,
    pub(crate) queues: super::attrs::Queues,
    /// IFLA_PARENT_DEV_NAME: the bus device behind a physical device; none
    /// for virtual ones.
    pub(crate) parent: Option<String>,
    /// IFF_UP: administratively up.
    pub(crate) up: bool,
}

impl Link {
    pub(crate) fn is_netkit(&self) -> bool {
        self.kind.as_deref() == Some("netkit")
    }

    /// Whether it is one end of a veth pair.
    pub fn is_veth(&self) -> bool {
        PairKind::of(self) == Some(PairKind::Veth)
    }

    /// Whether it is one end of a netkit or a veth pair.
    pub(crate) fn is_pair(&self) -> bool {
        PairKind::of(self).is_some()
    }

    /// For a netkit device, which end it is.
    pub fn role(&self) -> Option<Role> {
        self.netkit.as_ref().map(|n| match (n.primary, n.settings.pairing) {
            (true, Some(Pairing::Single)) => Role::Single,
            (true, _) => Role::Primary,
            (false, _) => Role::Peer,
        })
    }

    /// The MAC address as text, when the device has one.
    pub fn mac(&self) -> Option<String> {
        let a = self.address.as_ref()?;
        (a.len() == 6).then(|| a.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
    }
}
