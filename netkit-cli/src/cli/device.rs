//! The syntax of `netkit device`: a pair's attributes, per end, on creation
//! and change.

use super::*;

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum DeviceCommand {
    /// Create a netkit pair, or a veth pair with --kind veth (NAME is the primary, the host's end).
    #[command(after_long_help = examples::DEVICE_ADD)]
    Add(DeviceAdd),
    /// Change a live pair: a netkit pair's policies (through its primary), either kind's MACs and GSO/GRO limits.
    #[command(after_long_help = examples::DEVICE_SET)]
    Set(DeviceSet),
    /// Delete a netkit or veth pair, named by either end (both ends go).
    #[command(after_long_help = examples::DEVICE_DEL)]
    Del {
        /// The primary or the peer.
        #[arg(add = ArgValueCompleter::new(devices))]
        name: String,
    },
    /// List the netkit and veth devices in the namespace.
    #[command(after_long_help = examples::DEVICE_LIST)]
    List {
        /// List every device, not only the ends of pairs.
        #[arg(long)]
        all: bool,
    },
    /// Show one device in detail.
    #[command(after_long_help = examples::DEVICE_SHOW)]
    Show {
        /// Device name.
        #[arg(add = ArgValueCompleter::new(devices))]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct DeviceAdd {
    /// Name of the primary device.
    pub name: String,
    /// Name of the peer device (default: the first free nk<N>, veth<N> for
    /// veth, that is not the primary's name).
    #[arg(long)]
    pub peer: Option<String>,
    /// netkit (the default) or veth, for kernels without netkit. A veth
    /// pair takes none of the netkit settings (--mode, --policy,
    /// --peer-policy, --scrub, --peer-scrub, --headroom, --tailroom,
    /// --pairing).
    #[arg(long, value_parser = KINDS, default_value = "netkit")]
    pub kind: PairKind,
    /// L3 (no MAC, no ARP; the kernel's default) or L2 (random MACs, ARP).
    #[arg(long, value_parser = MODES)]
    pub mode: Option<Mode>,
    /// The primary's default when no program is attached on its hook (kernel default: pass).
    #[arg(long, value_parser = POLICIES)]
    pub policy: Option<Policy>,
    /// The peer's default when no program is attached on its hook (kernel default: pass).
    /// `drop` keeps a pod silent until a program on the peer hook lets it out.
    #[arg(long, value_parser = POLICIES)]
    pub peer_policy: Option<Policy>,
    /// Clear skb mark/priority when crossing namespaces on the primary's side (Linux >= 6.13).
    #[arg(long, value_parser = SCRUBS)]
    pub scrub: Option<Scrub>,
    /// The same for the peer's side (Linux >= 6.13).
    #[arg(long, value_parser = SCRUBS)]
    pub peer_scrub: Option<Scrub>,
    /// Extra headroom the pair reserves in packets, in bytes (Linux >= 6.14).
    #[arg(long)]
    pub headroom: Option<u16>,
    /// Extra tailroom the pair reserves in packets, in bytes (Linux >= 6.14).
    #[arg(long)]
    pub tailroom: Option<u16>,
    /// `single` creates one netkit device without a peer (Linux >= 7.1; its
    /// policy stays pass, it has no primary/peer hooks, and the peer options
    /// do not apply). Default: pair.
    #[arg(long, value_parser = PAIRINGS)]
    pub pairing: Option<Pairing>,
    /// MTU of both ends.
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Create the peer directly inside this network namespace: a name under
    /// /run/netns, an nsfs path or pid:PID.
    #[arg(long, value_name = "NETNS")]
    pub peer_netns: Option<NetnsRef>,
    /// Bring both ends up (the one device with --pairing single).
    #[arg(long)]
    pub up: bool,
    #[command(flatten)]
    pub this: EndArgs,
    #[command(flatten)]
    pub peer_end: PeerEndArgs,
}

// The primary's own attributes (the device's, with --pairing single).
#[derive(Debug, Args)]
pub struct EndArgs {
    /// The primary's MAC address (L2 only). Without one the kernel picks a
    /// random MAC, which systemd-udevd may then replace (MACAddressPolicy).
    #[arg(long, value_name = "MAC")]
    pub address: Option<Mac>,
    /// Largest GSO packet the stack builds for the primary, in bytes (576 to
    /// 524280; above 65536 it is IPv6 Big TCP).
    #[arg(long, value_name = "BYTES")]
    pub gso_max_size: Option<u32>,
    /// The same for IPv4 (IPv4 Big TCP; Linux >= 6.3).
    #[arg(long, value_name = "BYTES")]
    pub gso_ipv4_max_size: Option<u32>,
    /// Largest packet GRO builds on the primary, in bytes (1 to 524280).
    #[arg(long, value_name = "BYTES")]
    pub gro_max_size: Option<u32>,
    /// The same for IPv4 (Linux >= 6.3).
    #[arg(long, value_name = "BYTES")]
    pub gro_ipv4_max_size: Option<u32>,
    /// Most segments in one GSO packet on the primary (1 to 65535).
    #[arg(long, value_name = "N")]
    pub gso_max_segs: Option<u32>,
    /// Receive queues of the primary (1 to 4096; at creation only).
    #[arg(long, value_name = "N")]
    pub numrxqueues: Option<u32>,
    /// Transmit queues of the primary (1 to 4096; at creation only).
    #[arg(long, value_name = "N")]
    pub numtxqueues: Option<u32>,
}

// The peer's own attributes.
#[derive(Debug, Args)]
pub struct PeerEndArgs {
    /// The peer's MAC address (L2 only).
    #[arg(long, value_name = "MAC")]
    pub peer_address: Option<Mac>,
    /// --gso-max-size for the peer.
    #[arg(long, value_name = "BYTES")]
    pub peer_gso_max_size: Option<u32>,
    /// --gso-ipv4-max-size for the peer.
    #[arg(long, value_name = "BYTES")]
    pub peer_gso_ipv4_max_size: Option<u32>,
    /// --gro-max-size for the peer.
    #[arg(long, value_name = "BYTES")]
    pub peer_gro_max_size: Option<u32>,
    /// --gro-ipv4-max-size for the peer.
    #[arg(long, value_name = "BYTES")]
    pub peer_gro_ipv4_max_size: Option<u32>,
    /// --gso-max-segs for the peer.
    #[arg(long, value_name = "N")]
    pub peer_gso_max_segs: Option<u32>,
    /// Receive queues of the peer (1 to 4096; at creation only).
    #[arg(long, value_name = "N")]
    pub peer_numrxqueues: Option<u32>,
    /// Transmit queues of the peer (1 to 4096; at creation only).
    #[arg(long, value_name = "N")]
    pub peer_numtxqueues: Option<u32>,
}

impl EndArgs {
    /// The attributes asked for.
    pub fn attrs(&self) -> EndAttrs {
        EndAttrs {
            address: self.address,
            offload: Offload {
                gso_max_size: self.gso_max_size,
                gso_ipv4_max_size: self.gso_ipv4_max_size,
                gro_max_size: self.gro_max_size,
                gro_ipv4_max_size: self.gro_ipv4_max_size,
                gso_max_segs: self.gso_max_segs,
            },
            queues: Queues { num_rx_queues: self.numrxqueues, num_tx_queues: self.numtxqueues },
        }
    }
}

impl PeerEndArgs {
    /// The attributes asked for.
    pub fn attrs(&self) -> EndAttrs {
        EndAttrs {
            address: self.peer_address,
            offload: Offload {
                gso_max_size: self.peer_gso_max_size,
                gso_ipv4_max_size: self.peer_gso_ipv4_max_size,
                gro_max_size: self.peer_gro_max_size,
                gro_ipv4_max_size: self.peer_gro_ipv4_max_size,
                gso_max_segs: self.peer_gso_max_segs,
            },
            queues: Queues { num_rx_queues: self.peer_numrxqueues, num_tx_queues: self.peer_numtxqueues },
        }
    }
}

#[derive(Debug, Args)]
pub struct DeviceSet {
    /// The primary of the pair.
    #[arg(add = ArgValueCompleter::new(devices))]
    pub name: String,
    /// New default for the primary's hook.
    #[arg(long, value_parser = POLICIES)]
    pub policy: Option<Policy>,
    /// New default for the peer's hook.
    #[arg(long, value_parser = POLICIES)]
    pub peer_policy: Option<Policy>,
    #[command(flatten)]
    pub this: EndArgs,
    #[command(flatten)]
    pub peer_end: PeerEndArgs,
    // Settings the kernel fixes at creation: accepted only to explain that.
    #[arg(long, hide = true)]
    pub mode: Option<String>,
    #[arg(long, hide = true)]
    pub scrub: Option<String>,
    #[arg(long, hide = true)]
    pub peer_scrub: Option<String>,
    #[arg(long, hide = true)]
    pub headroom: Option<String>,
    #[arg(long, hide = true)]
    pub tailroom: Option<String>,
    #[arg(long, hide = true)]
    pub peer: Option<String>,
    #[arg(long, hide = true)]
    pub peer_netns: Option<String>,
    #[arg(long, hide = true)]
    pub pairing: Option<String>,
    #[arg(long, hide = true)]
    pub mtu: Option<String>,
}
