//! What the planner reads of the node, behind one seam: [`Kernel`] asks the
//! kernel (rtnetlink, BPF_PROG_QUERY, the bpffs, the programs' maps); the
//! fuzz targets plan against a node with nothing on it.

use std::{collections::BTreeMap, net::IpAddr, path::Path};

use super::ApplyError;
use crate::{
    maps::{firewall::Firewall, redirect::Redirect},
    mprog::{self, Hook, HookRef, MprogError},
    netlink::{
        Netlink, NetlinkError,
        device::{DeviceError, Ends, PairSpec},
        links::Link,
    },
    pins,
    programs::{self, ProgSpec},
};

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
    /// The link pinned at `path`, when it is still attached to a device.
    fn attached_link(&self, path: &Path) -> Option<u32>;
    /// Whether anything is pinned at `path`.
    fn pinned(&self, path: &Path) -> bool;
    /// The id of the program a `pinned:PATH` spec names now.
    fn pinned_program(&self, prog: &ProgSpec) -> Result<u32, ApplyError>;
    /// The rules of the firewall program `prog_id`, as text, in order.
    fn rules(&self, prog_id: u32) -> Vec<String>;
    /// The entries of the redirect program `prog_id`.
    fn entries(&self, prog_id: u32) -> BTreeMap<IpAddr, u32>;
}

/// The node as the kernel of the calling thread's namespace has it.
pub(crate) struct Kernel<'a>(pub(crate) &'a Netlink);

impl Node for Kernel<'_> {
    async fn ends(&self, name: &str) -> Result<Option<Ends>, ApplyError> {
        Ok(self.0.ends(name).await?)
    }

    async fn link(&self, name: &str) -> Result<Option<Link>, NetlinkError> {
        self.0.link_by_name(name).await
    }

    async fn check_pair(&self, spec: &PairSpec) -> Result<(), DeviceError> {
        spec.validate_for_kernel().await
    }

    fn chain(&self, ifindex: u32, hook: Hook) -> Result<mprog::Chain, MprogError> {
        HookRef::new(ifindex, hook).query()
    }

    fn attached_link(&self, path: &Path) -> Option<u32> {
        let (_, info) = pins::open_link(path).ok()?;
        (info.ifindex != 0).then_some(info.id)
    }

    fn pinned(&self, path: &Path) -> bool {
        path.exists()
    }

    fn pinned_program(&self, prog: &ProgSpec) -> Result<u32, ApplyError> {
        pinned_now(prog)
    }

    fn rules(&self, prog_id: u32) -> Vec<String> {
        Firewall::open(prog_id)
            .and_then(|f| f.list())
            .map(|l| l.into_iter().filter(|r| r.id != 0).map(|r| r.rule).collect())
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

    fn attached_link(&self, _: &Path) -> Option<u32> {
        None
    }

    fn pinned(&self, _: &Path) -> bool {
        false
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
}
