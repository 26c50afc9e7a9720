//! netkit pairs: create, change policies, delete, and describe them. Every
//! request is checked before the first netlink call, and a pair that cannot
//! be completed is removed again, never left half-made.

use netlink_packet_route::link::{InfoData, InfoKind, InfoNetkit, LinkMessage};
use rtnetlink::{LinkMessageBuilder, LinkNetkit, LinkUnspec};
use serde::Serialize;

use super::{
    Netlink, NetlinkError, ifname,
    links::{Counters, Link, Mode, NetkitAttrs, PairSettings, Pairing, Policy, Role},
};
use crate::{
    os::netns,
    os::{
        caps::Capabilities,
        probe::{self, Feature, Support},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{0}")]
    Invalid(String),
    #[error("this kernel has no netkit (needs {})", Feature::Netkit.requirement())]
    NoNetkit,
    #[error("this kernel ({release}) does not support {option} (it came with Linux {}.{}); nothing was created", since.0, since.1)]
    TooOld { option: &'static str, since: (u32, u32), release: String },
    #[error("a device named `{name}` already exists in network namespace `{netns}`")]
    Exists { name: String, netns: String },
    #[error("no device named `{name}` in network namespace `{netns}`")]
    NotFound { name: String, netns: String },
    #[error("`{name}` is not a netkit device (it is {kind}); this command only manages netkit pairs")]
    NotNetkit { name: String, kind: String },
    #[error(
        "`{name}` is the peer end of a netkit pair; the kernel changes a pair's settings only through its primary{}",
        primary.as_ref().map(|p| format!(": {}, `{}` (--policy sets the primary's, --peer-policy the peer's)", p.describe(), p.command("device set", "..."))).unwrap_or_default()
    )]
    PeerNotPrimary { name: String, primary: Option<PrimaryRef> },
    #[error("{0}")]
    Immutable(String),
    #[error("permission denied while {op}: needs {}", missing.join(" and "))]
    Permission { op: String, missing: Vec<&'static str> },
    #[error("{step} failed: {cause}; removed the half-made pair `{name}` again")]
    RolledBack { step: String, cause: String, name: String },
    #[error(
        "{step} failed: {cause}; removing the half-made pair `{name}` also failed ({cleanup}): delete it with `netkit device del {name}`"
    )]
    RollbackFailed { step: String, cause: String, name: String, cleanup: String },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
}

/// The upstream release that brought an option, for messages. Support itself
/// is probed (distribution kernels backport these).
const SCRUB_SINCE: (u32, u32) = (6, 13);
const ROOM_SINCE: (u32, u32) = (6, 14);
const PAIRING_SINCE: (u32, u32) = (7, 0);

/// ETH_MIN_MTU and netkit's max_mtu (ETH_MAX_MTU).
const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

/// A netkit pair to create.
#[derive(Debug, Clone, Default)]
pub struct PairSpec {
    pub name: String,
    /// The peer's name; the kernel picks `nk<N>` when absent.
    pub peer: Option<String>,
    /// What to ask for; `None` leaves the kernel's default.
    pub settings: PairSettings,
    pub mtu: Option<u32>,
    /// Create the peer directly inside this named namespace.
    pub peer_netns: Option<String>,
    pub up: bool,
}

impl PairSpec {
    /// Everything that can be checked without changing anything: names, MTU,
    /// namespaces, and whether the running kernel knows each requested option
    /// (`support`, from [`probe_attributes`]).
    pub fn validate(&self, support: &AttrSupport) -> Result<(), DeviceError> {
        ifname::check(&self.name).map_err(DeviceError::Invalid)?;
        if let Some(peer) = &self.peer {
            ifname::check(peer).map_err(|e| DeviceError::Invalid(format!("--peer: {e}")))?;
            if *peer == self.name && self.peer_netns.is_none() {
                return Err(DeviceError::Invalid(format!(
                    "the peer cannot have the primary's name `{peer}` in the same network namespace"
                )));
            }
        }
        if let Some(mtu) = self.mtu
            && !MTU_RANGE.contains(&mtu)
        {
            return Err(DeviceError::Invalid(format!(
                "--mtu {mtu}: must be between {} and {}",
                MTU_RANGE.start(),
                MTU_RANGE.end()
            )));
        }
        if self.is_single() {
            self.check_single()?;
        }
        if let Some(ns) = &self.peer_netns {
            netns::open(ns).map_err(DeviceError::from)?;
        }
        let gates = [
            ("--scrub", self.settings.scrub.is_some(), support.scrub, SCRUB_SINCE),
            ("--peer-scrub", self.settings.peer_scrub.is_some(), support.scrub, SCRUB_SINCE),
            ("--headroom", self.settings.headroom.is_some(), support.headroom, ROOM_SINCE),
            ("--tailroom", self.settings.tailroom.is_some(), support.tailroom, ROOM_SINCE),
            ("--pairing single", self.is_single(), support.pairing, PAIRING_SINCE),
        ];
        for (option, wanted, supported, since) in gates {
            if wanted && !supported {
                return Err(DeviceError::TooOld { option, since, release: support.release.clone() });
            }
        }
        Ok(())
    }

    fn is_single(&self) -> bool {
        self.settings.pairing == Some(Pairing::Single)
    }

    /// A single device has no peer, and the kernel keeps its policy at pass.
    fn check_single(&self) -> Result<(), DeviceError> {
        let peer_options = [
            ("--peer", self.peer.is_some()),
            ("--peer-netns", self.peer_netns.is_some()),
            ("--peer-policy", self.settings.peer_policy.is_some()),
            ("--peer-scrub", self.settings.peer_scrub.is_some()),
        ];
        if let Some((option, _)) = peer_options.iter().find(|(_, given)| *given) {
            return Err(DeviceError::Invalid(format!(
                "{option} does not apply to --pairing single: a single netkit device has no peer (leave out --pairing for a pair)"
            )));
        }
        if self.settings.scrub.is_some() {
            // The kernel answers EOPNOTSUPP: scrubbing happens when a packet
            // crosses from one end of a pair to the other.
            return Err(DeviceError::Invalid(
                "--scrub does not apply to --pairing single: scrubbing happens where a pair crosses namespaces, and a single device has no peer"
                    .into(),
            ));
        }
        if self.settings.policy == Some(Policy::Drop) {
            return Err(DeviceError::Invalid(
                "--policy drop does not apply to --pairing single: the kernel keeps a single netkit device's policy at pass"
                    .into(),
            ));
        }
        Ok(())
    }

    fn wants_optional_attributes(&self) -> bool {
        self.is_single()
            || self.settings.scrub.is_some()
            || self.settings.peer_scrub.is_some()
            || self.settings.headroom.is_some()
            || self.settings.tailroom.is_some()
    }

    fn message(&self, peer_ns: Option<&std::os::fd::OwnedFd>) -> LinkMessage {
        use std::os::fd::AsRawFd as _;
        let mut data = vec![InfoNetkit::Mode(self.settings.mode.unwrap_or(Mode::L3).to_nl())];
        if self.is_single() {
            data.push(Pairing::Single.to_nl());
        } else {
            let mut peer = LinkMessageBuilder::<LinkUnspec>::new();
            if let Some(name) = &self.peer {
                peer = peer.name(name.clone());
            }
            if let Some(mtu) = self.mtu {
                peer = peer.mtu(mtu);
            }
            if let Some(fd) = peer_ns {
                peer = peer.setns_by_fd(fd.as_raw_fd());
            }
            data.push(InfoNetkit::Peer(peer.build()));
        }
        data.extend(self.settings.policy.map(|p| InfoNetkit::Policy(p.to_nl())));
        data.extend(self.settings.peer_policy.map(|p| InfoNetkit::PeerPolicy(p.to_nl())));
        data.extend(self.settings.scrub.map(|s| InfoNetkit::Scrub(s.to_nl())));
        data.extend(self.settings.peer_scrub.map(|s| InfoNetkit::PeerScrub(s.to_nl())));
        data.extend(self.settings.headroom.map(InfoNetkit::Headroom));
        data.extend(self.settings.tailroom.map(InfoNetkit::Tailroom));
        let mut primary =
            LinkMessageBuilder::<LinkNetkit>::new_with_info_kind(InfoKind::Netkit).name(self.name.clone());
        if let Some(mtu) = self.mtu {
            primary = primary.mtu(mtu);
        }
        primary.set_info_data(InfoData::Netkit(data)).build()
    }
}

/// What a dump of one end of a pair says about the whole pair.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRef {
    pub name: Option<String>,
    pub ifindex: u32,
    /// The namespace of the other end when it is not this one.
    pub netns: Option<String>,
}

/// Programs on the pair's two netkit hooks (None: could not be queried).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HookCounts {
    pub primary: Option<u32>,
    pub peer: Option<u32>,
}

/// A device as `device list`/`show` present it. Policies and scrub are in pair
/// terms (`policy` is the primary's, `peer_policy` the peer's), whichever end
/// is shown.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    pub name: String,
    pub ifindex: u32,
    pub kind: Option<String>,
    pub role: Option<Role>,
    pub peer: Option<PeerRef>,
    #[serde(flatten)]
    pub settings: PairSettings,
    pub mtu: Option<u32>,
    pub operstate: String,
    pub address: Option<String>,
    /// Filled by the hooks layer (`count_programs`), which can query hooks;
    /// None for devices without netkit hooks.
    pub programs: Option<HookCounts>,
    pub counters: Counters,
    /// Where the pair's primary is, for counting the programs on its hooks.
    #[serde(skip)]
    pub primary_at: Option<PrimaryAt>,
}

/// Where the primary of a pair is, as the hooks layer needs it to query the
/// pair's netkit hooks (they are reached only through the primary).
#[derive(Debug, Clone)]
pub enum PrimaryAt {
    /// In the caller's namespace, with this ifindex.
    Here(u32),
    /// In another namespace this tool can enter.
    There { ifindex: u32, netns: netns::NsRef },
    /// In a namespace this tool cannot enter (no name for it).
    Unreachable,
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

/// The other end of a pair, resolved across the namespaces this tool can name.
struct OtherEnd {
    link: Option<Link>,
    index: u32,
    /// Where it lives when that is not here (`None`: unnamed, or here).
    netns: Option<netns::NsRef>,
    /// How to show its namespace: a name, `nsid N`, or nothing when here.
    netns_label: Option<String>,
}

/// The primary of a pair, and how a command reaches it from the caller's
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryRef {
    pub name: String,
    pub place: Place,
}

/// Where a device is, seen from the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In the caller's namespace; `Some(name)` when that has a /run/netns
    /// name (the caller came in with `-n name`).
    Here(Option<String>),
    /// In the named namespace.
    Named(String),
    /// In the initial namespace, while the caller is not: reached without -n.
    Init,
}

impl PrimaryRef {
    /// The primary in words: "h0", "h0 in network namespace pod", "h0 in the
    /// initial network namespace".
    pub fn describe(&self) -> String {
        match &self.place {
            Place::Here(_) => self.name.clone(),
            Place::Named(ns) => format!("{} in network namespace {ns}", self.name),
            Place::Init => format!("{} in the initial network namespace", self.name),
        }
    }

    /// A complete command line that acts on the primary: `netkit [-n NS]
    /// SUBCOMMAND PRIMARY REST`.
    pub fn command(&self, subcommand: &str, rest: &str) -> String {
        let ns = match &self.place {
            Place::Here(Some(ns)) | Place::Named(ns) => format!("-n {ns} "),
            Place::Here(None) | Place::Init => String::new(),
        };
        format!("netkit {ns}{subcommand} {} {rest}", self.name)
    }
}

impl Netlink {
    async fn other_end(&self, link: &Link) -> Result<Option<OtherEnd>, DeviceError> {
        let Some(index) = link.link.filter(|i| *i != 0) else { return Ok(None) };
        let Some(nsid) = link.link_netnsid else {
            let link = self.link_by_index(index).await?;
            return Ok(Some(OtherEnd { link, index, netns: None, netns_label: None }));
        };
        for ns in netns::others() {
            let Ok(fd) = ns.open() else { continue };
            if self.nsid_of(&fd).await == Some(nsid) {
                let there = Netlink::connect_in(&fd)?;
                let link = there.link_by_index(index).await?;
                return Ok(Some(OtherEnd { link, index, netns_label: Some(ns.name.clone()), netns: Some(ns) }));
            }
        }
        Ok(Some(OtherEnd { link: None, index, netns: None, netns_label: Some(format!("nsid {nsid}")) }))
    }

    /// The primary of the pair whose peer is `peer`, as a command here
    /// reaches it; None when it cannot be found from here (its namespace has
    /// no name this tool can open).
    pub async fn primary_of(&self, peer: &Link) -> Option<PrimaryRef> {
        let o = self.other_end(peer).await.ok().flatten()?;
        let name = o.link?.name;
        let place = match o.netns {
            Some(ns) if ns.is_init() => Place::Init,
            Some(ns) => Place::Named(ns.name),
            None => Place::Here(netns::current_named()),
        };
        Some(PrimaryRef { name, place })
    }

    /// A netkit device by name, or the reason it cannot be managed.
    async fn netkit_by_name(&self, name: &str) -> Result<Link, DeviceError> {
        ifname::check(name).map_err(DeviceError::Invalid)?;
        let link = self
            .link_by_name(name)
            .await?
            .ok_or_else(|| DeviceError::NotFound { name: name.into(), netns: netns::current_name() })?;
        if !link.is_netkit() {
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

    /// Creates a netkit pair; returns the primary's view.
    pub async fn add_pair(&self, spec: &PairSpec) -> Result<DeviceView, DeviceError> {
        let support = if spec.wants_optional_attributes() { probe_attributes().await } else { AttrSupport::assumed() };
        spec.validate(&support)?;
        let here = netns::current_name();
        let peer_fd = spec.peer_netns.as_deref().map(netns::open).transpose()?;
        if self.link_by_name(&spec.name).await?.is_some() {
            return Err(DeviceError::Exists { name: spec.name.clone(), netns: here });
        }
        if let Some(peer) = &spec.peer {
            let (conn, ns) = match &spec.peer_netns {
                Some(ns) => (Netlink::connect_named(ns)?, ns.clone()),
                None => (self.clone(), here.clone()),
            };
            if conn.link_by_name(peer).await?.is_some() {
                return Err(DeviceError::Exists { name: peer.clone(), netns: ns });
            }
        }

        let msg = spec.message(peer_fd.as_ref());
        if let Err(e) = self.handle.link().add(msg).execute().await {
            let e = NetlinkError::from_rtnetlink(format!("creating netkit pair {}", spec.name), e);
            return Err(match e.errno() {
                Some(libc::EOPNOTSUPP) if probe::probe(Feature::Netkit) == Support::Unsupported => {
                    DeviceError::NoNetkit
                }
                Some(libc::EEXIST) => DeviceError::Exists { name: spec.name.clone(), netns: here },
                Some(libc::EPERM) => cap_error("creating a netkit pair"),
                _ => e.into(),
            });
        }

        // From here on the pair exists: any failure removes it again.
        let name = spec.name.clone();
        match self.finish_pair(spec).await {
            Ok(view) => Ok(view),
            Err((step, cause)) => {
                let cleanup = match self.link_by_name(&name).await {
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
            .await
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
        let up = |index| LinkUnspec::new_with_index(index).up().build();
        if spec.up {
            self.handle
                .link()
                .change(up(primary.index))
                .execute()
                .await
                .map_err(|e| fail(&format!("bringing {} up", spec.name), &NetlinkError::from_rtnetlink("", e)))?;
        }
        if spec.up && !spec.is_single() {
            let peer_conn = match &spec.peer_netns {
                Some(ns) => Netlink::connect_named(ns).map_err(|e| fail("reaching the peer's namespace", &e))?,
                None => self.clone(),
            };
            let peer_index = primary.link.ok_or_else(|| fail("finding the peer", &"the primary names no peer"))?;
            if injected_fault("peer-up") {
                return Err(fail("bringing the peer up", &"failure injected by NETKIT_FAULT=peer-up"));
            }
            peer_conn
                .handle
                .link()
                .change(up(peer_index))
                .execute()
                .await
                .map_err(|e| fail("bringing the peer up", &NetlinkError::from_rtnetlink("", e)))?;
        }
        // Bringing the ends up changed their state: read it again.
        let primary =
            if spec.up { self.link_by_name(&spec.name).await.ok().flatten().unwrap_or(primary) } else { primary };
        self.view(&primary).await.map_err(|e| fail("describing the new pair", &e))
    }

    /// Changes the default policies of a live pair, through its primary.
    pub async fn set_policies(
        &self,
        name: &str,
        policy: Option<Policy>,
        peer_policy: Option<Policy>,
    ) -> Result<DeviceView, DeviceError> {
        if policy.is_none() && peer_policy.is_none() {
            return Err(DeviceError::Invalid(
                "nothing to change: give --policy and/or --peer-policy (the only settings a live pair can change)"
                    .into(),
            ));
        }
        let link = self.netkit_by_name(name).await?;
        if link.role() == Some(Role::Single) {
            return Err(DeviceError::Immutable(format!(
                "`{name}` is a single netkit device: the kernel keeps its policy at pass and it has no peer, so there is nothing to set"
            )));
        }
        if link.role() == Some(Role::Peer) {
            let primary = self.primary_of(&link).await;
            return Err(DeviceError::PeerNotPrimary { name: name.into(), primary });
        }
        let mut data = Vec::new();
        data.extend(policy.map(|p| InfoNetkit::Policy(p.to_nl())));
        data.extend(peer_policy.map(|p| InfoNetkit::PeerPolicy(p.to_nl())));
        let msg = LinkMessageBuilder::<LinkNetkit>::new_with_info_kind(InfoKind::Netkit)
            .index(link.index)
            .set_info_data(InfoData::Netkit(data))
            .build();
        if let Err(e) = self.handle.link().change(msg).execute().await {
            let e = NetlinkError::from_rtnetlink(format!("changing the policies of {name}"), e);
            return Err(match e.errno() {
                Some(libc::EPERM) => cap_error("changing a netkit pair"),
                Some(libc::EACCES) => DeviceError::PeerNotPrimary { name: name.into(), primary: None },
                _ => e.into(),
            });
        }
        let link = self.link_by_index(link.index).await?.unwrap_or(link);
        self.view(&link).await
    }

    /// Deletes a pair, named by either end; returns the names removed.
    pub async fn delete_pair(&self, name: &str) -> Result<(String, Option<String>), DeviceError> {
        let link = self.netkit_by_name(name).await?;
        let other = self.other_end(&link).await.ok().flatten().and_then(|o| o.link.map(|l| l.name));
        if let Err(e) = self.handle.link().del(link.index).execute().await {
            let e = NetlinkError::from_rtnetlink(format!("deleting {name}"), e);
            return Err(match e.errno() {
                Some(libc::EPERM) => cap_error("deleting a netkit pair"),
                _ => e.into(),
            });
        }
        Ok((name.to_string(), other))
    }

    /// The view of one device, by name.
    pub async fn show(&self, name: &str) -> Result<DeviceView, DeviceError> {
        ifname::check(name).map_err(DeviceError::Invalid)?;
        let link = self
            .link_by_name(name)
            .await?
            .ok_or_else(|| DeviceError::NotFound { name: name.into(), netns: netns::current_name() })?;
        self.view(&link).await
    }

    /// Views of the netkit devices here (every device with `all`).
    pub async fn list(&self, all: bool) -> Result<Vec<DeviceView>, DeviceError> {
        let mut out = Vec::new();
        for link in self.links().await? {
            if all || link.is_netkit() {
                out.push(self.view(&link).await?);
            }
        }
        Ok(out)
    }

    /// Describes `link`, resolving its peer and where the pair's primary is
    /// ([`DeviceView::primary_at`]); the programs on the pair's hooks are
    /// counted by the hooks layer.
    pub async fn view(&self, link: &Link) -> Result<DeviceView, DeviceError> {
        let nk = link.netkit.clone();
        let other = if nk.is_some() { self.other_end(link).await? } else { None };
        let role = link.role();
        let peer = other.as_ref().map(|o| PeerRef {
            name: o.link.as_ref().map(|l| l.name.clone()),
            ifindex: o.index,
            netns: o.netns_label.clone(),
        });
        let primary_at = match role {
            Some(Role::Primary) => Some(PrimaryAt::Here(link.index)),
            Some(Role::Peer) => other.as_ref().map(|o| match (&o.netns, &o.netns_label) {
                (None, None) => PrimaryAt::Here(o.index),
                (Some(ns), _) => PrimaryAt::There { ifindex: o.index, netns: ns.clone() },
                (None, Some(_)) => PrimaryAt::Unreachable,
            }),
            // No primary/peer hooks on a single device.
            Some(Role::Single) | None => None,
        };
        let settings = match (&nk, role) {
            (Some(n), Some(Role::Peer)) => n.settings.swapped(),
            (Some(n), _) => n.settings,
            (None, _) => PairSettings::default(),
        };
        Ok(DeviceView {
            name: link.name.clone(),
            ifindex: link.index,
            kind: link.kind.clone(),
            role,
            peer: if nk.is_some() { peer } else { None },
            settings,
            mtu: link.mtu,
            operstate: link.operstate.clone(),
            address: link.mac(),
            programs: None,
            primary_at,
            counters: link.counters,
        })
    }
}

/// A test seam: debug builds fail the named step when NETKIT_FAULT names it,
/// so that the removal of a half-made pair is tested against a real kernel
/// (no kernel refuses to bring a fresh netkit end up on demand). Release
/// builds never look.
fn injected_fault(step: &str) -> bool {
    cfg!(debug_assertions) && std::env::var("NETKIT_FAULT").is_ok_and(|v| v == step)
}

/// Explains why settings other than the policies cannot change on a live pair.
pub fn immutable(option: &str) -> DeviceError {
    DeviceError::Immutable(format!(
        "{option} cannot be changed on a live netkit pair (the kernel fixes it at creation; only --policy and --peer-policy can change): delete the pair and create it again"
    ))
}

/// Which optional netkit attributes the running kernel knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrSupport {
    pub release: String,
    pub scrub: bool,
    pub headroom: bool,
    pub tailroom: bool,
    pub pairing: bool,
}

impl AttrSupport {
    /// Used when no optional attribute is requested: nothing to check.
    fn assumed() -> Self {
        Self { release: probe::kernel_release(), scrub: true, headroom: true, tailroom: true, pairing: true }
    }

    /// From a dump of a netkit device: the kernel reports every attribute it knows.
    pub fn from_dump(release: String, nk: &NetkitAttrs) -> Self {
        Self {
            release,
            scrub: nk.settings.scrub.is_some(),
            headroom: nk.settings.headroom.is_some(),
            tailroom: nk.settings.tailroom.is_some(),
            pairing: nk.settings.pairing.is_some(),
        }
    }
}

/// Probes which optional attributes the kernel knows: a plain pair is created
/// inside a private network namespace that exists only for this probe, and
/// its dump shows the attributes the kernel fills in. The namespace (and the
/// pair) vanish when the probe's thread ends, so nothing is left anywhere.
/// Kernels silently ignore attributes they do not know, so asking is the
/// only way to find out before creating the real pair.
pub async fn probe_attributes() -> AttrSupport {
    let release = probe::kernel_release();
    let probed = std::thread::spawn(|| -> Option<NetkitAttrs> {
        // SAFETY: unshare affects only this short-lived thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        rt.block_on(async {
            let nl = Netlink::connect().ok()?;
            let spec = PairSpec { name: "nkprobe0".into(), peer: Some("nkprobe1".into()), ..Default::default() };
            nl.handle.link().add(spec.message(None)).execute().await.ok()?;
            nl.link_by_name("nkprobe0").await.ok().flatten()?.netkit
        })
    })
    .join()
    .ok()
    .flatten();
    match probed {
        Some(nk) => AttrSupport::from_dump(release, &nk),
        // Without the rights to probe, fall back to the upstream versions.
        None => {
            let have = probe::parse_release(&release).unwrap_or((0, 0));
            AttrSupport {
                scrub: have >= SCRUB_SINCE,
                headroom: have >= ROOM_SINCE,
                tailroom: have >= ROOM_SINCE,
                pairing: have >= PAIRING_SINCE,
                release,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::links::Scrub;

    fn spec(name: &str) -> PairSpec {
        PairSpec { name: name.into(), ..Default::default() }
    }

    fn all() -> AttrSupport {
        AttrSupport { release: "7.3.4".into(), scrub: true, headroom: true, tailroom: true, pairing: true }
    }

    #[test]
    fn names_are_checked_before_anything_else() {
        assert!(matches!(spec("").validate(&all()), Err(DeviceError::Invalid(_))));
        assert!(matches!(spec("waytoolongname16").validate(&all()), Err(DeviceError::Invalid(_))));
        let s = PairSpec { peer: Some("a/b".into()), ..spec("nk0") };
        assert!(s.validate(&all()).unwrap_err().to_string().contains("--peer"));
        let s = PairSpec { peer: Some("nk0".into()), ..spec("nk0") };
        assert!(s.validate(&all()).unwrap_err().to_string().contains("same network namespace"));
    }

    #[test]
    fn options_the_kernel_lacks_are_refused_naming_the_version() {
        let old =
            AttrSupport { release: "6.12.1".into(), scrub: true, headroom: false, tailroom: false, pairing: false };
        let s = PairSpec { settings: PairSettings { headroom: Some(64), ..Default::default() }, ..spec("nk0") };
        let e = s.validate(&old).unwrap_err().to_string();
        assert!(e.contains("does not support --headroom (it came with Linux 6.14)"), "{e}");
        assert!(e.contains("nothing was created"), "{e}");
        let s = PairSpec { settings: PairSettings { tailroom: Some(1), ..Default::default() }, ..spec("nk0") };
        assert!(s.validate(&old).is_err());
        let s = PairSpec { settings: PairSettings { scrub: Some(Scrub::None), ..Default::default() }, ..spec("nk0") };
        assert!(s.validate(&old).is_ok(), "scrub is supported by this (backported) kernel");
        let older = AttrSupport { scrub: false, ..old };
        assert!(s.validate(&older).unwrap_err().to_string().contains("--scrub"));
        let s = PairSpec {
            settings: PairSettings { headroom: Some(64), tailroom: Some(64), ..Default::default() },
            ..spec("nk0")
        };
        assert!(s.validate(&all()).is_ok());
    }

    #[test]
    fn mtu_range_and_missing_netns() {
        let s = PairSpec { mtu: Some(67), ..spec("nk0") };
        assert!(s.validate(&all()).unwrap_err().to_string().contains("between 68 and 65535"));
        let s = PairSpec { mtu: Some(65536), ..spec("nk0") };
        assert!(s.validate(&all()).is_err());
        let s = PairSpec { peer_netns: Some("netkit-no-such-ns".into()), ..spec("nk0") };
        assert!(s.validate(&all()).unwrap_err().to_string().contains("does not exist"));
    }

    #[test]
    fn support_is_read_from_what_the_dump_reports() {
        let nk = NetkitAttrs {
            settings: PairSettings { scrub: Some(Scrub::Default), ..Default::default() },
            ..Default::default()
        };
        let s = AttrSupport::from_dump("6.12.95".into(), &nk);
        assert!(s.scrub && !s.headroom && !s.tailroom);
    }
}
