//! What the planner reads of the node, behind one seam: [`Kernel`] asks the
//! kernel (rtnetlink, BPF_PROG_QUERY, the bpffs, the programs' maps); the
//! fuzz targets plan against a node with nothing on it.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::Path,
};

use super::ApplyError;
use crate::{
    maps::{firewall::Firewall, redirect::Redirect},
    mprog::{self, Hook, HookRef, MprogError},
    netlink::{
        Netlink, NetlinkError,
        device::{DeviceError, Ends, PairSpec},
        links::{Link, Role},
    },
    pins,
    programs::{self, ProgSpec},
};

/// What a path of the pin layout holds, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PinState {
    /// Nothing.
    Empty,
    /// A link: attached to some hook, or defunct (detached by another tool,
    /// or its device deleted: the kernel reports ifindex 0, and the pin alone
    /// keeps the object).
    Link {
        /// The link's id.
        id: u32,
        /// The program it runs.
        prog_id: u32,
        /// Whether it is on no hook.
        defunct: bool,
    },
    /// Something that is not a link (or cannot be read).
    Other,
}

/// The node as the planner sees it.
#[allow(async_fn_in_trait)] // used with concrete types inside the crate
pub(crate) trait Node {
    /// A pair's ends by the primary's name; None when there is no such
    /// device.
    async fn ends(&self, name: &str) -> Result<Option<Ends>, ApplyError>;
    /// A device by name.
    async fn link(&self, name: &str) -> Result<Option<Link>, NetlinkError>;
    /// Whether this kernel can create `spec`.
    async fn check_pair(&self, spec: &PairSpec) -> Result<(), DeviceError>;
    /// A hook's chain, in order.
    fn chain(&self, ifindex: u32, hook: Hook) -> Result<mprog::Chain, MprogError>;
    /// What is pinned at `path`.
    fn pin(&self, path: &Path) -> PinState;
    /// The id of the program a `pinned:PATH` spec names now.
    fn pinned_program(&self, prog: &ProgSpec) -> Result<u32, ApplyError>;
    /// The rules of the firewall program `prog_id`, as text, in order.
    fn rules(&self, prog_id: u32) -> Vec<String>;
    /// The entries of the redirect program `prog_id`.
    fn entries(&self, prog_id: u32) -> BTreeMap<IpAddr, u32>;
    /// None when `prog_id` runs the program `prog` loads with `set` (its
    /// pinned maps in `maps_dir`), else the difference in words.
    fn differs(&self, prog_id: u32, prog: &ProgSpec, set: &[String], maps_dir: &std::path::Path) -> Option<String>;
    /// The ids of the links the CNI plugin pinned under `layout`.
    fn cni_links(&self, layout: &pins::Layout) -> BTreeSet<u32>;
}

/// The node as the kernel of the calling thread's namespace has it; the
/// namespaces it names are learnt once for the reader's life (`fresh_after`:
/// [`Kernel::new`]).
pub(crate) struct Kernel<'a>(pub(crate) &'a Netlink, u64);

impl<'a> Kernel<'a> {
    /// The node as read from now on.
    pub(crate) fn new(nl: &'a Netlink) -> Self {
        Self(nl, nl.walks())
    }
}

impl Node for Kernel<'_> {
    async fn ends(&self, name: &str) -> Result<Option<Ends>, ApplyError> {
        Ok(self.0.ends(name, self.1).await?)
    }

    async fn link(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        self.0.link_by_name(name)
    }

    async fn check_pair(&self, spec: &PairSpec) -> Result<(), DeviceError> {
        spec.validate_for_kernel().await
    }

    fn chain(&self, ifindex: u32, hook: Hook) -> Result<mprog::Chain, MprogError> {
        HookRef::new(ifindex, hook).query()
    }

    fn pin(&self, path: &Path) -> PinState {
        match pins::open_link(path) {
            Ok((_, info)) => PinState::Link { id: info.id, prog_id: info.prog_id, defunct: info.ifindex == 0 },
            Err(_) if std::fs::symlink_metadata(path).is_err() => PinState::Empty,
            Err(_) => PinState::Other,
        }
    }

    fn pinned_program(&self, prog: &ProgSpec) -> Result<u32, ApplyError> {
        pinned_now(prog)
    }

    fn rules(&self, prog_id: u32) -> Vec<String> {
        Firewall::open(prog_id)
            .and_then(|f| f.rules())
            .map(|l| l.into_iter().map(|(_, r)| r.to_string()).collect())
            .unwrap_or_default()
    }

    fn entries(&self, prog_id: u32) -> BTreeMap<IpAddr, u32> {
        Redirect::open(prog_id)
            .and_then(|r| r.list())
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.ip, e.ifindex))
            .collect()
    }

    fn differs(&self, prog_id: u32, prog: &ProgSpec, set: &[String], maps_dir: &std::path::Path) -> Option<String> {
        programs::differs(prog_id, prog, set, maps_dir)
    }

    fn cni_links(&self, layout: &pins::Layout) -> BTreeSet<u32> {
        layout.cni_links()
    }
}

/// The hooks a device has: tcx ingress and egress, and a netkit primary's
/// two chains.
pub(crate) fn hooks_of(link: &Link) -> &'static [Hook] {
    if link.role() == Some(Role::Primary) { &Hook::ALL } else { &[Hook::Ingress, Hook::Egress] }
}

/// A link on the hooks of `link` among `cni` (the links the CNI plugin
/// pinned, see [`Node::cni_links`]: its pods' pairs are its own), if any.
pub(crate) fn cni_link_on(node: &(impl Node + ?Sized), cni: &BTreeSet<u32>, link: &Link) -> Option<u32> {
    hooks_of(link).iter().find_map(|&hook| {
        let chain = node.chain(link.index, hook).ok()?;
        chain.slots.iter().filter_map(|s| s.link_id).find(|l| cni.contains(l))
    })
}

/// The id of the program a `pinned:PATH` spec names now.
pub(crate) fn pinned_now(prog: &ProgSpec) -> Result<u32, ApplyError> {
    Ok(programs::load(prog, &Default::default())?.id())
}

/// A node with no devices, no pins, no programs and no network namespace
/// but its own, on a kernel that has every netkit attribute: what a spec meets on a fresh machine.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) struct Empty;

#[cfg(any(test, feature = "fuzzing"))]
impl Node for Empty {
    async fn ends(&self, _: &str) -> Result<Option<Ends>, ApplyError> {
        Ok(None)
    }

    async fn link(&self, _: &str) -> Result<Option<Link>, NetlinkError> {
        Ok(None)
    }

    async fn check_pair(&self, spec: &PairSpec) -> Result<(), DeviceError> {
        spec.check_request()?;
        if spec.peer_netns.is_some() {
            return Err(DeviceError::Invalid("the empty node has no other network namespace".into()));
        }
        spec.check_support(&crate::netlink::device::AttrSupport::newest())
    }

    fn chain(&self, _: u32, _: Hook) -> Result<mprog::Chain, MprogError> {
        Ok(Default::default())
    }

    fn pin(&self, _: &Path) -> PinState {
        PinState::Empty
    }

    fn pinned_program(&self, prog: &ProgSpec) -> Result<u32, ApplyError> {
        Err(ApplyError::Blocked(vec![format!("{prog}: nothing is pinned on an empty node")]))
    }

    fn rules(&self, _: u32) -> Vec<String> {
        Vec::new()
    }

    fn entries(&self, _: u32) -> BTreeMap<IpAddr, u32> {
        BTreeMap::new()
    }

    fn differs(&self, prog_id: u32, _: &ProgSpec, _: &[String], _: &std::path::Path) -> Option<String> {
        Some(format!("the empty node runs no program {prog_id}"))
    }

    fn cni_links(&self, _: &pins::Layout) -> BTreeSet<u32> {
        BTreeSet::new()
    }
}
