//! The four mprog hooks this tool manages and how the kernel names them.

use serde::Serialize;

use crate::bpf;

/// An attach point: tcx ingress/egress on any device, or a netkit pair's
/// primary/peer program chain (both managed through the primary's ifindex).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
// The kernel adds cases (hooks, modes, scrub and pairing values).
#[non_exhaustive]
pub enum Hook {
    /// tcx ingress of any device.
    Ingress,
    /// tcx egress of any device.
    Egress,
    /// netkit: programs run when the primary transmits (toward the peer).
    Primary,
    /// netkit: programs run when the peer transmits (toward the primary).
    Peer,
}

impl Hook {
    pub(crate) const ALL: [Hook; 4] = [Hook::Ingress, Hook::Egress, Hook::Primary, Hook::Peer];

    pub(crate) fn attach_type(self) -> u32 {
        match self {
            Self::Ingress => bpf::BPF_TCX_INGRESS,
            Self::Egress => bpf::BPF_TCX_EGRESS,
            Self::Primary => bpf::BPF_NETKIT_PRIMARY,
            Self::Peer => bpf::BPF_NETKIT_PEER,
        }
    }

    pub(crate) fn from_attach_type(t: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.attach_type() == t)
    }

    pub(crate) fn is_netkit(self) -> bool {
        matches!(self, Self::Primary | Self::Peer)
    }

    /// The hook this one names on a veth device, which has only tcx hooks:
    /// a pair's words name the device's own, `peer` (what the other end
    /// sends, arriving here) its ingress and `primary` (what is sent to the
    /// other end) its egress, as a netkit primary's hooks see the same
    /// packets.
    pub fn on_veth(self) -> Hook {
        match self {
            Self::Peer => Self::Ingress,
            Self::Primary => Self::Egress,
            h => h,
        }
    }

    /// The hook's command-line name (`ingress`, `egress`, `primary`, `peer`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
            Self::Primary => "primary",
            Self::Peer => "peer",
        }
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A hook name that is none of the four (the name as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hook `{0}`: expected ingress, egress (tcx) or primary, peer (netkit)")]
pub struct UnknownHook(pub String);

impl std::str::FromStr for Hook {
    type Err = UnknownHook;

    fn from_str(s: &str) -> Result<Self, UnknownHook> {
        Self::ALL.into_iter().find(|h| h.name() == s).ok_or_else(|| UnknownHook(s.to_string()))
    }
}
