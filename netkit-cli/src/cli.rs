//! Command-line syntax: clap derive types only. Validation of values that
//! clap cannot express lives with the operations that use them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::netlink::links::{Mode, Policy, Scrub};

/// Create netkit device pairs and manage BPF programs on tcx and netkit hooks.
#[derive(Debug, Parser)]
#[command(name = "netkit", version, about, propagate_version = true)]
pub struct Cli {
    /// Run in the named network namespace (under /run/netns), like `ip -n`.
    #[arg(short = 'n', long, global = true, value_name = "NAME")]
    pub netns: Option<String>,

    /// Print JSON instead of tables.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,

    /// The bpffs directory this tool pins links under.
    #[arg(long, global = true, value_name = "DIR", default_value = "/sys/fs/bpf", env = "NETKIT_BPFFS")]
    pub bpffs: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run; boxing variants would only make the code noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report what this kernel and process support: tcx, netkit, bpffs,
    /// capabilities, BTF. Exits non-zero when something required is missing.
    Probe,
    /// Create, change, delete and list netkit device pairs.
    #[command(subcommand)]
    Device(DeviceCommand),
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Create a netkit pair (NAME is the primary).
    Add(DeviceAdd),
    /// Change the default policies of a live pair (through its primary).
    Set(DeviceSet),
    /// Delete a pair, named by either end (both ends go).
    Del {
        /// The primary or the peer.
        name: String,
    },
    /// List netkit devices in the namespace.
    List {
        /// List every device, not only netkit ones.
        #[arg(long)]
        all: bool,
    },
    /// Show one device in detail.
    Show {
        /// Device name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct DeviceAdd {
    /// Name of the primary device.
    pub name: String,
    /// Name of the peer device (default: the kernel picks nk<N>).
    #[arg(long)]
    pub peer: Option<String>,
    /// L3 (no MAC, no ARP; the kernel's default) or L2 (random MACs, ARP).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// The primary's default when no program is attached on its hook (kernel default: pass).
    #[arg(long, value_enum)]
    pub policy: Option<Policy>,
    /// The peer's default when no program is attached on its hook (kernel default: pass).
    /// `drop` keeps a pod silent until a program on the peer hook lets it out.
    #[arg(long, value_enum)]
    pub peer_policy: Option<Policy>,
    /// Clear skb mark/priority when crossing namespaces on the primary's side (Linux >= 6.13).
    #[arg(long, value_enum)]
    pub scrub: Option<Scrub>,
    /// The same for the peer's side (Linux >= 6.13).
    #[arg(long, value_enum)]
    pub peer_scrub: Option<Scrub>,
    /// Extra headroom the pair reserves in packets, in bytes (Linux >= 6.14).
    #[arg(long)]
    pub headroom: Option<u16>,
    /// Extra tailroom the pair reserves in packets, in bytes (Linux >= 6.14).
    #[arg(long)]
    pub tailroom: Option<u16>,
    /// MTU of both ends.
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Create the peer directly inside this named network namespace.
    #[arg(long, value_name = "NS")]
    pub peer_netns: Option<String>,
    /// Bring both ends up.
    #[arg(long)]
    pub up: bool,
}

#[derive(Debug, Args)]
pub struct DeviceSet {
    /// The primary of the pair.
    pub name: String,
    /// New default for the primary's hook.
    #[arg(long, value_enum)]
    pub policy: Option<Policy>,
    /// New default for the peer's hook.
    #[arg(long, value_enum)]
    pub peer_policy: Option<Policy>,
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
    pub mtu: Option<String>,
}
