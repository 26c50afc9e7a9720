//! netkit and veth pairs: create, change, delete, and describe them. Every
//! request is checked before the first netlink call, and a pair that cannot
//! be completed is removed again, never left half-made. `spec` checks a
//! request, `view` describes devices.

mod spec;
mod view;

pub(crate) use spec::AttrSupport;

pub use spec::PairSpec;

pub(crate) use spec::probe_attributes;
pub(crate) use view::PrimaryRef;
pub use view::{DeviceView, HookCounts, PeerRef};
pub(crate) use view::{Nsids, PrimaryAt};

use netlink_packet_route::link::{InfoData, InfoKind, InfoNetkit, InfoVeth, LinkMessage};
use rtnetlink::{LinkMessageBuilder, LinkNetkit, LinkUnspec};
use serde::Serialize;

use super::{
    Netlink, NetlinkError,
    attrs::{EndAttrs, Mac, Offload, Queues},
    ifname,
    links::{Counters, Link, Mode, NetkitAttrs, PairKind, PairSettings, Pairing, Policy, Role},
    read::Stats,
};
use crate::{
    os::netns,
    os::{
        caps::Capabilities,
        probe::{self, Feature, Support},
    },
};

/// Why a device could not be created, found, changed or deleted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The request is wrong (the message says what to change); nothing was created.
    #[error("{0}")]
    Invalid(String),
    /// The kernel has no netkit.
    #[error("this kernel has no netkit (needs {}); veth pairs work without it (`device add --kind veth`, `kind: veth` in a spec)", Feature::Netkit.requirement())]
    NoNetkit,
    /// The kernel has no veth.
    #[error("this kernel has no veth (CONFIG_VETH, module veth); nothing was created")]
    NoVeth,
    /// The kernel is older than an option needs.
    #[error("this kernel ({release}) does not support {option} (it came with Linux {}.{}); nothing was created", since.0, since.1)]
    TooOld {
        /// The option (flag) asked for.
        option: &'static str,
        /// The first (major, minor) release with it.
        since: (u32, u32),
        /// The running kernel release.
        release: String,
    },
    /// The name is taken.
    #[error("a device named `{name}` already exists in network namespace `{netns}`")]
    Exists {
        /// The name as given.
        name: String,
        /// The namespace, as shown to the user.
        netns: String,
    },
    /// No device of that name.
    #[error("no device named `{name}` in network namespace `{netns}`")]
    NotFound {
        /// The name as given.
        name: String,
        /// The namespace, as shown to the user.
        netns: String,
    },
    /// The device is not one end of a netkit or veth pair.
    #[error("`{name}` is not a netkit or veth device (it is {kind}); this command only manages pairs")]
    NotNetkit {
        /// The name as given.
        name: String,
        /// The type it has instead.
        kind: String,
    },
    #[error(
        "`{name}` is the peer end of a netkit pair; the kernel changes a pair's settings only through its primary{}",
        primary.as_ref().map(|p| format!(": {}, `{}` (--policy sets the primary's, --peer-policy the peer's)", p.describe(), p.command("device set", "..."))).unwrap_or_default()
    )]
    /// The device is a netkit peer where the primary is needed.
    PeerNotPrimary {
        /// The name as given.
        name: String,
        /// The pair's primary, when it could be found.
        primary: Option<PrimaryRef>,
    },
    /// The setting cannot be changed after creation (the message says which).
    #[error("{0}")]
    Immutable(String),
    /// The kernel refused for want of a capability.
    #[error("permission denied while {op}: needs {}", missing.join(" and "))]
    Permission {
        /// The operation, for messages.
        op: String,
        /// The capabilities this process lacks.
        missing: Vec<&'static str>,
    },
    /// Creating a pair failed part way; what was made is removed again.
    #[error("{step} failed: {cause}; removed the half-made pair `{name}` again")]
    RolledBack {
        /// The step that failed.
        step: String,
        /// What the system call answered.
        cause: String,
        /// The name as given.
        name: String,
    },
    /// Creating a pair failed part way, and removing what was made failed too.
    #[error(
        "{step} failed: {cause}; removing the half-made pair `{name}` also failed ({cleanup}): delete it with `netkit device del {name}`"
    )]
    RollbackFailed {
        /// The step that failed.
        step: String,
        /// What the system call answered.
        cause: String,
        /// The name as given.
        name: String,
        /// Why removing it failed.
        cleanup: String,
    },
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
}

fn cap_error(op: &str) -> DeviceError {
    let caps = Capabilities::effective();
    let mut missing = Vec::new();
    if !caps.cap_net_admin {
        missing.push("CAP_NET_ADMIN");
    }
    if missing.is_empty() {
        missing.push("CAP_NET_ADMIN in the device's network namespace (this process has it only elsewhere)");
    }
    DeviceError::Permission { op: op.into(), missing }
}

/// An rtnetlink failure of a step, its causes spelled out (the step names
/// itself in the message it goes into).
fn rt_error(e: rtnetlink::Error) -> String {
    crate::os::errno::error_chain(&NetlinkError::from_rtnetlink("", e))
}

/// Through the fault seam (`crate::fault`): the removal of a half-made pair
/// is tested against a real kernel, which never refuses to bring a fresh
/// netkit end up on demand.
fn injected_fault(step: &str) -> Result<(), crate::fault::Injected> {
    crate::fault::check(crate::fault::Scope::Device, step)
}

/// Both ends of a pair as they are now.
#[derive(Debug, Clone)]
pub(crate) struct Ends {
    pub(crate) primary: Link,
    /// The peer, when it could be read.
    pub(crate) peer: Option<Link>,
    /// The peer's namespace when it is not the caller's.
    pub(crate) peer_netns: Option<netns::NsRef>,
    /// The pair has a peer this tool cannot reach.
    pub(crate) peer_unreachable: bool,
}

/// What `device set` changes on a live pair; `None` and empty leave a
/// setting as it is.
#[derive(Debug, Clone, Default)]
pub struct PairChange {
    /// New default for the primary's hook.
    pub policy: Option<Policy>,
    /// New default for the peer's hook.
    pub peer_policy: Option<Policy>,
    /// The primary's new MAC and offload limits (queues cannot change).
    pub this: EndAttrs,
    /// The peer's new MAC and offload limits.
    pub peer: EndAttrs,
}

impl PairChange {
    /// Whether it changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.policy.is_none() && self.peer_policy.is_none() && self.this.is_empty() && self.peer.is_empty()
    }
}

fn policies_message(index: u32, policy: Option<Policy>, peer_policy: Option<Policy>) -> LinkMessage {
    let mut data = Vec::new();
    data.extend(policy.map(|p| InfoNetkit::Policy(p.to_nl())));
    data.extend(peer_policy.map(|p| InfoNetkit::PeerPolicy(p.to_nl())));
    LinkMessageBuilder::<LinkNetkit>::new_with_info_kind(InfoKind::Netkit)
        .index(index)
        .set_info_data(InfoData::Netkit(data))
        .build()
}

/// What `link` has now of what `like` asks for, to undo a change.
pub(crate) fn current_of(link: &Link, like: &EndAttrs) -> EndAttrs {
    let pick = |want: Option<u32>, have: Option<u32>| want.and(have);
    let (o, now) = (&like.offload, &link.offload);
    EndAttrs {
        address: like.address.and(link.address.as_deref().and_then(|a| a.try_into().ok()).map(Mac)),
        offload: Offload {
            gso_max_size: pick(o.gso_max_size, now.gso_max_size),
            gso_ipv4_max_size: pick(o.gso_ipv4_max_size, now.gso_ipv4_max_size),
            gro_max_size: pick(o.gro_max_size, now.gro_max_size),
            gro_ipv4_max_size: pick(o.gro_ipv4_max_size, now.gro_ipv4_max_size),
            gso_max_segs: pick(o.gso_max_segs, now.gso_max_segs),
        },
        queues: Queues::default(),
    }
}

fn end_message(index: u32, attrs: &EndAttrs) -> LinkMessage {
    let mut msg = LinkUnspec::new_with_index(index);
    for attr in attrs.attributes() {
        msg = msg.append_extra_attribute(attr);
    }
    msg.build()
}

/// Explains why settings other than the policies cannot change on a live pair.
pub fn immutable(option: &str) -> DeviceError {
    DeviceError::Immutable(format!(
        "{option} cannot be changed on a live netkit pair (the kernel fixes it at creation; the policies, MAC addresses and GSO/GRO limits are what can change): delete the pair and create it again"
    ))
}

impl Netlink {
    /// One end of a netkit or veth pair by name, or the reason it cannot be managed.
    async fn pair_by_name(&self, name: &str) -> Result<Link, DeviceError> {
        ifname::check(name).map_err(DeviceError::Invalid)?;
        let link = self
            .link_by_name(name)?
            .ok_or_else(|| DeviceError::NotFound { name: name.into(), netns: netns::current_name() })?;
        if !link.is_pair() {
            return Err(DeviceError::NotNetkit {
                name: name.into(),
                kind: link
                    .kind
                    .clone()
                    .map(|k| format!("a {k} device"))
                    .unwrap_or_else(|| "a device without a kind".into()),
            });
        }
        Ok(link)
    }
    /// The name for a peer the caller did not name, in this namespace: the
    /// first free `nk<N>` (`veth<N>` for veth), as the kernel would pick
    /// it, but never `primary`. Left to the kernel, a peer (registered
    /// first) takes the primary's own name when that is the first free one
    /// (`device add nk0`), and the primary's creation then fails.
    async fn unnamed_peer(&self, primary: &str, kind: PairKind) -> Result<String, DeviceError> {
        let taken: std::collections::HashSet<String> = self.links()?.into_iter().map(|l| l.name).collect();
        let prefix = match kind {
            PairKind::Netkit => "nk",
            PairKind::Veth => "veth",
        };
        for name in (0u32..).map(|n| format!("{prefix}{n}")).filter(|n| n != primary && !taken.contains(n)) {
            // A lookup by name also finds alternative names (altname).
            if self.link_by_name(&name)?.is_none() {
                return Ok(name);
            }
        }
        unreachable!("the names nk<N> run out")
    }
    /// Creates a netkit or veth pair; returns the primary's view.
    pub async fn add_pair(&self, spec: &PairSpec) -> Result<DeviceView, DeviceError> {
        let support = if spec.wants_optional_attributes() { probe_attributes().await } else { AttrSupport::assumed() };
        spec.validate(&support)?;
        let here = netns::current_name();
        let peer_fd = spec.peer_netns.as_ref().map(netns::NetnsRef::open).transpose()?;
        if self.link_by_name(&spec.name)?.is_some() {
            return Err(DeviceError::Exists { name: spec.name.clone(), netns: here });
        }
        let named;
        let spec = if spec.peer.is_none() && spec.peer_netns.is_none() && !spec.is_single() {
            named = PairSpec { peer: Some(self.unnamed_peer(&spec.name, spec.kind).await?), ..spec.clone() };
            &named
        } else {
            spec
        };
        // Where the peer's name must be free: its connection and namespace.
        let peer_at = match &spec.peer {
            Some(peer) => {
                let (conn, ns) = match &spec.peer_netns {
                    Some(ns) => (Netlink::connect_to(ns)?, ns.layout_name()?),
                    None => (self.clone(), here.clone()),
                };
                if conn.link_by_name(peer)?.is_some() {
                    return Err(DeviceError::Exists { name: peer.clone(), netns: ns });
                }
                Some((peer, conn, ns))
            }
            None => None,
        };

        let msg = spec.message(peer_fd.as_ref());
        if let Err(e) = self.handle.link().add(msg).execute().await {
            let e = NetlinkError::from_rtnetlink(format!("creating {} pair {}", spec.kind, spec.name), e);
            return Err(match e.errno() {
                Some(libc::EOPNOTSUPP) if spec.kind == PairKind::Veth => DeviceError::NoVeth,
                Some(libc::EOPNOTSUPP) if probe::probe(Feature::Netkit) == Support::Unsupported => {
                    DeviceError::NoNetkit
                }
                // A name was taken between the checks and the create (the
                // kernel removed its half-made pair): say which.
                Some(libc::EEXIST) => match peer_at {
                    Some((peer, conn, ns))
                        if !matches!(self.link_by_name(&spec.name), Ok(Some(_)))
                            && matches!(conn.link_by_name(peer), Ok(Some(_))) =>
                    {
                        DeviceError::Exists { name: peer.clone(), netns: ns }
                    }
                    _ => DeviceError::Exists { name: spec.name.clone(), netns: here },
                },
                // Seen on 7.x kernels (netkit with queue leasing): several
                // receive queues are fine, more than one transmit queue is not.
                Some(libc::EOPNOTSUPP) if spec.wants_tx_queues() && spec.kind == PairKind::Netkit => {
                    DeviceError::Invalid(format!(
                        "the kernel ({}) refused more than one transmit queue: its netkit takes one per device (--numtxqueues 1; receive queues may be several); nothing was created",
                        probe::kernel_release()
                    ))
                }
                Some(libc::EPERM) => cap_error(&format!("creating a {} pair", spec.kind)),
                _ => e.into(),
            });
        }

        // From here on the pair exists: any failure removes it again.
        let name = spec.name.clone();
        match self.finish_pair(spec).await {
            Ok(view) => Ok(view),
            Err((step, cause)) => {
                let cleanup = match self.link_by_name(&name) {
                    Ok(Some(l)) => self.handle.link().del(l.index).execute().await.map_err(|e| e.to_string()),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e.to_string()),
                };
                Err(match cleanup {
                    Ok(()) => DeviceError::RolledBack { step, cause, name },
                    Err(cleanup) => DeviceError::RollbackFailed { step, cause, name, cleanup },
                })
            }
        }
    }
    /// Checks that the kernel applied what was asked and brings the ends up.
    async fn finish_pair(&self, spec: &PairSpec) -> Result<DeviceView, (String, String)> {
        let fail = |step: &str, e: &dyn std::fmt::Display| (step.to_string(), e.to_string());
        let primary = self
            .link_by_name(&spec.name)
            .map_err(|e| fail("reading the new pair back", &e))?
            .ok_or_else(|| fail("reading the new pair back", &"the primary is gone"))?;
        let nk = primary.netkit.clone().unwrap_or_default();
        // A kernel that does not know an attribute ignores it silently; the
        // dump shows whether it was applied.
        let checks: [(&str, bool, bool); 5] = [
            ("--scrub", spec.settings.scrub.is_some(), nk.settings.scrub == spec.settings.scrub),
            ("--peer-scrub", spec.settings.peer_scrub.is_some(), nk.settings.peer_scrub == spec.settings.peer_scrub),
            ("--headroom", spec.settings.headroom.is_some(), nk.settings.headroom.is_some()),
            ("--tailroom", spec.settings.tailroom.is_some(), nk.settings.tailroom.is_some()),
            ("--pairing single", spec.is_single(), nk.settings.pairing == Some(Pairing::Single)),
        ];
        for (option, wanted, applied) in checks {
            if wanted && !applied {
                return Err(fail(
                    &format!("applying {option}"),
                    &"the kernel ignored it (this kernel does not know the attribute)",
                ));
            }
        }
        let not_taken = "the kernel did not apply it (the device reports another value)";
        if let Some(flag) = spec.attrs.unmet(primary.address.as_deref(), &primary.offload, &primary.queues, false) {
            return Err(fail(&format!("applying {flag}"), &not_taken));
        }
        let peer_conn = match &spec.peer_netns {
            Some(ns) => {
                self.remember_namespace(ns);
                Netlink::connect_to(ns).map_err(|e| fail("reaching the peer's namespace", &e))?
            }
            None => self.clone(),
        };
        if !spec.peer_attrs.is_empty() {
            let peer = match primary.link {
                Some(index) => peer_conn.link_by_index(index).ok().flatten(),
                None => None,
            }
            .ok_or_else(|| fail("reading the new peer back", &"the peer is not to be found"))?;
            if let Some(flag) = spec.peer_attrs.unmet(peer.address.as_deref(), &peer.offload, &peer.queues, true) {
                return Err(fail(&format!("applying {flag}"), &not_taken));
            }
        }
        let up = |index| LinkUnspec::new_with_index(index).up().build();
        if spec.up {
            self.handle
                .link()
                .change(up(primary.index))
                .execute()
                .await
                .map_err(|e| fail(&format!("bringing {} up", spec.name), &rt_error(e)))?;
        }
        if spec.up && !spec.is_single() {
            let peer_index = primary.link.ok_or_else(|| fail("finding the peer", &"the primary names no peer"))?;
            injected_fault("peer-up").map_err(|e| fail("bringing the peer up", &e))?;
            peer_conn
                .handle
                .link()
                .change(up(peer_index))
                .execute()
                .await
                .map_err(|e| fail("bringing the peer up", &rt_error(e)))?;
        }
        // Bringing the ends up changed their state: read it again.
        let primary =
            if spec.up { self.link_named(&spec.name, Stats::With).ok().flatten().unwrap_or(primary) } else { primary };
        self.view(&primary).await.map_err(|e| fail("describing the new pair", &e))
    }
    /// Changes a live pair, through its primary: the policies, and each
    /// end's MAC and offload limits. Everything is checked first; if the
    /// kernel refuses a step, the steps already made are undone, so the pair
    /// is as it was.
    pub async fn set(&self, name: &str, change: &PairChange) -> Result<DeviceView, DeviceError> {
        if change.is_empty() {
            return Err(DeviceError::Invalid(
                "nothing to change: give --policy, --peer-policy, --address, --peer-address or a GSO/GRO limit (what a live pair can change)"
                    .into(),
            ));
        }
        let link = self.pair_by_name(name).await?;
        let nk = link.netkit.clone().unwrap_or_default();
        if !link.is_netkit() && (change.policy.is_some() || change.peer_policy.is_some()) {
            return Err(DeviceError::Invalid(format!(
                "`{name}` is a veth device: a veth pair has no default verdicts (--policy and --peer-policy are netkit's); with no program on its tcx hooks, packets pass"
            )));
        }
        match link.role() {
            Some(Role::Peer) => {
                let primary = self.primary_of(&link).await;
                return Err(DeviceError::PeerNotPrimary { name: name.into(), primary });
            }
            Some(Role::Single) if change.policy.is_some() || change.peer_policy.is_some() => {
                return Err(DeviceError::Immutable(format!(
                    "`{name}` is a single netkit device: the kernel keeps its policy at pass and it has no peer, so there is nothing to set"
                )));
            }
            Some(Role::Single) if !change.peer.is_empty() => {
                return Err(DeviceError::Invalid(format!(
                    "`{name}` is a single netkit device: it has no peer, so the --peer-... options do not apply"
                )));
            }
            _ => {}
        }
        if !change.this.queues.is_empty() || !change.peer.queues.is_empty() {
            return Err(immutable("the queue counts (--numrxqueues, --numtxqueues)"));
        }
        let l2 = !link.is_netkit() || nk.settings.mode == Some(Mode::L2);
        change.this.check(false, l2).map_err(DeviceError::Invalid)?;
        change.peer.check(true, l2).map_err(DeviceError::Invalid)?;
        let peer = if change.peer.is_empty() { None } else { Some(self.reach_peer(&link).await?) };

        // Apply, remembering how to undo each step that succeeded.
        let mut undo: Vec<(Netlink, LinkMessage)> = Vec::new();
        let result = async {
            if change.policy.is_some() || change.peer_policy.is_some() {
                let old = nk.settings;
                self.apply(policies_message(link.index, change.policy, change.peer_policy), name).await?;
                undo.push((self.clone(), policies_message(link.index, old.policy, old.peer_policy)));
            }
            if !change.this.is_empty() {
                self.apply(end_message(link.index, &change.this), name).await?;
                undo.push((self.clone(), end_message(link.index, &current_of(&link, &change.this))));
            }
            if let Some((conn, peer)) = &peer {
                injected_fault("set-peer")
                    .map_err(|e| DeviceError::Invalid(format!("changing {} failed: {e}", peer.name)))?;
                conn.apply(end_message(peer.index, &change.peer), &peer.name).await?;
            }
            Ok::<(), DeviceError>(())
        }
        .await;
        if let Err(e) = result {
            for (conn, msg) in undo.into_iter().rev() {
                let _ = conn.handle.link().change(msg).execute().await;
            }
            return Err(e);
        }
        let link = self.link_indexed(link.index, Stats::With)?.unwrap_or(link);
        self.view(&link).await
    }

    /// Both ends of the pair whose primary is `name`, as apply compares
    /// them with a spec; None when no device has that name. Namespaces
    /// learnt by walks numbered above `fresh_after` (see [`Self::walks`])
    /// are taken as they are: a planner reading many pairs passes the
    /// number from before its first.
    pub(crate) async fn ends(&self, name: &str, fresh_after: u64) -> Result<Option<Ends>, DeviceError> {
        let Some(primary) = self.link_by_name(name)? else { return Ok(None) };
        let other = if primary.is_pair() { self.other_end_among(&primary, &[], fresh_after).await? } else { None };
        let (peer, peer_netns, peer_unreachable) = match other {
            None => (None, None, false),
            Some(o) => {
                let unreachable = o.link.is_none();
                (o.link, o.netns, unreachable)
            }
        };
        Ok(Some(Ends { primary, peer, peer_netns, peer_unreachable }))
    }

    /// Sets the MTU and the up/down state of each end of the pair `name`
    /// (`None` leaves a value); the peer is reached in its namespace.
    pub(crate) async fn set_mtu_state(
        &self,
        name: &str,
        primary: (Option<u32>, Option<bool>),
        peer: (Option<u32>, Option<bool>),
    ) -> Result<(), DeviceError> {
        let link = self.pair_by_name(name).await?;
        let message = |index, (mtu, up): (Option<u32>, Option<bool>)| {
            let mut m = LinkUnspec::new_with_index(index);
            if let Some(mtu) = mtu {
                m = m.mtu(mtu);
            }
            m = match up {
                Some(true) => m.up(),
                Some(false) => m.down(),
                None => m,
            };
            m.build()
        };
        if peer != (None, None) {
            let (conn, p) = self.reach_peer(&link).await?;
            conn.apply(message(p.index, peer), &p.name).await?;
        }
        if primary != (None, None) {
            self.apply(message(link.index, primary), name).await?;
        }
        Ok(())
    }

    /// Moves the peer of the pair `name` into the namespace `to`, from
    /// wherever it is now; it keeps its name and, as every device moved
    /// between namespaces, comes out down.
    pub(crate) async fn move_peer(&self, name: &str, to: &netns::NetnsRef) -> Result<(), DeviceError> {
        use std::os::fd::AsRawFd as _;
        let link = self.pair_by_name(name).await?;
        let (conn, p) = self.reach_peer(&link).await?;
        let fd = to.open()?;
        conn.apply(LinkUnspec::new_with_index(p.index).setns_by_fd(fd.as_raw_fd()).build(), &p.name).await
    }

    /// The peer of `primary`, with a connection in its namespace.
    pub(crate) async fn reach_peer(&self, primary: &Link) -> Result<(Netlink, Link), DeviceError> {
        let unreachable = || {
            DeviceError::Invalid(format!(
                "the peer of `{}` is in a namespace this tool cannot reach (no name, no process in it): change it from inside with `ip link`",
                primary.name
            ))
        };
        let other = self.other_end(primary).await?.ok_or_else(unreachable)?;
        let conn = match (&other.netns, &other.netns_label) {
            (Some(ns), _) => Netlink::connect_in(&ns.open().map_err(NetlinkError::Socket)?)?,
            (None, None) => self.clone(),
            (None, Some(_)) => return Err(unreachable()),
        };
        Ok((conn, other.link.ok_or_else(unreachable)?))
    }

    /// Sends one change to device `name`, explaining a refusal.
    async fn apply(&self, msg: LinkMessage, name: &str) -> Result<(), DeviceError> {
        self.handle.link().change(msg).execute().await.map_err(|e| {
            let e = NetlinkError::from_rtnetlink(format!("changing {name}"), e);
            match e.errno() {
                Some(libc::EPERM) => cap_error("changing a pair"),
                Some(libc::EACCES) => DeviceError::PeerNotPrimary { name: name.into(), primary: None },
                Some(libc::EBUSY) => DeviceError::Invalid(format!(
                    "the kernel refused to change the MAC of `{name}` while it is up: bring it down first (`ip link set dev {name} down`)"
                )),
                Some(libc::EINVAL) => DeviceError::Invalid(format!(
                    "the kernel refused a value for `{name}` as invalid (a GSO limit above what the device supports?); nothing was changed"
                )),
                _ => e.into(),
            }
        })
    }

    /// Deletes a pair, named by either end; returns the names removed and
    /// the pair's kind.
    pub async fn delete_pair(&self, name: &str) -> Result<(String, Option<String>, PairKind), DeviceError> {
        let link = self.pair_by_name(name).await?;
        let kind = PairKind::of(&link).unwrap_or_default();
        let other = self.other_end(&link).await.ok().flatten().and_then(|o| o.link.map(|l| l.name));
        if let Err(e) = self.handle.link().del(link.index).execute().await {
            let e = NetlinkError::from_rtnetlink(format!("deleting {name}"), e);
            return Err(match e.errno() {
                Some(libc::EPERM) => cap_error("deleting a pair"),
                _ => e.into(),
            });
        }
        Ok((name.to_string(), other, kind))
    }
}
