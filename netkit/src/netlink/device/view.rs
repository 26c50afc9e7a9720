//! Devices as `device list`/`show` present them: role, the other end (in
//! whichever namespace it lives) and where the pair's primary is, for
//! counting the programs on its hooks and for naming it in messages.

use super::*;

/// The other end of a pair, as a dump of one end names it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRef {
    /// Its name, when its namespace can be reached.
    pub name: Option<String>,
    /// Its ifindex, in its own namespace.
    pub ifindex: u32,
    /// The namespace of the other end when it is not this one.
    pub netns: Option<String>,
}

/// Programs on the pair's two netkit hooks (None: could not be queried).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HookCounts {
    /// Programs on the primary hook.
    pub primary: Option<u32>,
    /// Programs on the peer hook.
    pub peer: Option<u32>,
}

/// A device as `device list`/`show` present it. Policies and scrub are in pair
/// terms (`policy` is the primary's, `peer_policy` the peer's), whichever end
/// is shown.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    /// The device's name.
    pub name: String,
    /// The device's ifindex.
    pub ifindex: u32,
    /// The link kind (`netkit`, `veth`, ...), if it has one.
    pub kind: Option<String>,
    /// For netkit devices, which end this is.
    pub role: Option<Role>,
    /// For netkit and veth devices, the other end, when it can be found.
    pub peer: Option<PeerRef>,
    /// For netkit devices, the pair's settings.
    #[serde(flatten)]
    pub settings: PairSettings,
    /// The device's MTU.
    pub mtu: Option<u32>,
    /// The operational state (`up`, `down`, `unknown`, ...).
    pub operstate: String,
    /// The MAC address, if it has one.
    pub address: Option<String>,
    /// Its GSO/GRO limits, as the kernel reports them.
    #[serde(flatten)]
    pub offload: Offload,
    /// Its queue counts.
    #[serde(flatten)]
    pub queues: Queues,
    /// Filled by the hooks layer (`count_programs`), which can query hooks;
    /// None for devices without netkit hooks.
    pub programs: Option<HookCounts>,
    /// Packet counters.
    pub counters: Counters,
    /// Where the pair's primary is, for counting the programs on its hooks.
    #[serde(skip)]
    pub(crate) primary_at: Option<PrimaryAt>,
}

/// Where the primary of a pair is, as the hooks layer needs it to query the
/// pair's netkit hooks (they are reached only through the primary).
#[derive(Debug, Clone)]
pub(crate) enum PrimaryAt {
    /// In the caller's namespace, with this ifindex.
    Here(u32),
    /// In another namespace this tool can enter.
    There { ifindex: u32, netns: netns::NsRef },
    /// In a namespace this tool cannot enter (no name for it).
    Unreachable,
}

/// The other end of a pair, resolved across the namespaces this tool can name.
pub(super) struct OtherEnd {
    pub(super) link: Option<Link>,
    pub(super) index: u32,
    /// Where it lives when that is not here (`None`: unnamed, or here).
    pub(super) netns: Option<netns::NsRef>,
    /// How to show its namespace: a name, `nsid N`, or nothing when here.
    pub(super) netns_label: Option<String>,
}

/// The primary of a pair, and how a command reaches it from the caller's
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryRef {
    pub(crate) name: String,
    pub(crate) place: Place,
}

/// Where a device is, seen from the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
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
    pub(crate) fn describe(&self) -> String {
        match &self.place {
            Place::Here(_) => self.name.clone(),
            Place::Named(ns) => format!("{} in network namespace {ns}", self.name),
            Place::Init => format!("{} in the initial network namespace", self.name),
        }
    }

    /// A complete command line that acts on the primary: `netkit [-n NS]
    /// SUBCOMMAND PRIMARY REST`.
    pub(crate) fn command(&self, subcommand: &str, rest: &str) -> String {
        let ns = match &self.place {
            Place::Here(Some(ns)) | Place::Named(ns) => format!("-n {ns} "),
            Place::Here(None) | Place::Init => String::new(),
        };
        format!("netkit {ns}{subcommand} {} {rest}", self.name)
    }
}

/// The namespaces this tool can name, matched to the nsids this namespace
/// gives them: asking for a pair's other end in another namespace means
/// walking /run/netns and /proc and asking the kernel for each namespace's
/// nsid until one matches. Done once per device, that made `device list`,
/// `apply` and `export` quadratic in the number of pods; so one connection
/// (one command, or one pass of a long-running one) keeps what it learnt:
/// [`Netlink`] holds one of these, shared by its clones, as nsids are
/// relative to the connection's namespace.
///
/// An nsid is freed when its namespace goes and may be given to a new one,
/// so a remembered match is checked again before it is used (an RTM_GETNSID,
/// which the kernel answers by a search of every nsid this namespace gave:
/// the main cost of naming a pair's other end at 1000 pods), unless it was
/// learnt by a walk since the start of the listing asking: those are as
/// fresh as the dump being described. A miss walks the namespaces not asked
/// about yet, then once a new walk, and an nsid that no walk could name is
/// not looked for again on this connection.
#[derive(Default)]
pub(crate) struct Nsids {
    /// Namespaces found by the last walk and not asked about yet.
    pending: Vec<netns::NsRef>,
    /// The ones asked about, by the nsid this namespace gives them, with the
    /// number of the walk that asked.
    known: std::collections::HashMap<i32, (netns::NsRef, u64)>,
    /// Nsids a whole new walk did not find.
    unnamed: std::collections::HashSet<i32>,
    /// Walks started on this connection.
    walks: u64,
}

impl Netlink {
    /// Remembers the nsid of a namespace the caller already knows (a pair's
    /// peer namespace as it was asked for), so that describing the pair does
    /// not walk every namespace to find it.
    pub(crate) fn remember_namespace(&self, ns: &netns::NetnsRef) {
        let Some(r) = ns.as_ns_ref() else { return };
        let Ok(fd) = r.open() else { return };
        if let Some(id) = self.nsid_of(&fd) {
            let mut n = self.nsids.lock().unwrap_or_else(|e| e.into_inner());
            let walk = n.walks;
            n.known.insert(id, (r, walk));
        }
    }

    /// The namespace this namespace calls `nsid`, if this tool can name it.
    /// A remembered answer from a walk numbered above `fresh_after` is used
    /// as it is; older ones are asked again.
    fn namespace_of(&self, nsid: i32, fresh_after: u64) -> Option<netns::NsRef> {
        let lock = || self.nsids.lock().unwrap_or_else(|e| e.into_inner());
        let remembered = lock().known.get(&nsid).cloned();
        if let Some((ns, walk)) = remembered {
            if walk > fresh_after {
                return Some(ns);
            }
            if let Ok(fd) = ns.open()
                && self.nsid_of(&fd) == Some(nsid)
            {
                return Some(ns);
            }
            lock().known.remove(&nsid);
        }
        if lock().unnamed.contains(&nsid) {
            return None;
        }
        // The rest of the last walk, then (once) a new walk.
        for fresh in [false, true] {
            let candidates = if fresh { netns::others() } else { std::mem::take(&mut lock().pending) };
            let walk = {
                let mut n = lock();
                n.walks += u64::from(fresh);
                n.walks
            };
            let mut rest = candidates.into_iter();
            while let Some(ns) = rest.next() {
                let Ok(fd) = ns.open() else { continue };
                let Some(id) = self.nsid_of(&fd) else { continue };
                let mut n = lock();
                n.known.insert(id, (ns.clone(), walk));
                if id == nsid {
                    n.pending.extend(rest);
                    return Some(ns);
                }
            }
        }
        lock().unnamed.insert(nsid);
        None
    }

    /// The number of the last walk: answers learnt after it are fresh.
    pub(crate) fn walks(&self) -> u64 {
        self.nsids.lock().unwrap_or_else(|e| e.into_inner()).walks
    }

    pub(super) async fn other_end(&self, link: &Link) -> Result<Option<OtherEnd>, DeviceError> {
        self.other_end_among(link, &[], self.walks()).await
    }
    /// As [`Self::other_end`], taking the other end from `here` (links of
    /// this namespace already read) when it is among them, and namespaces
    /// learnt by walks numbered above `fresh_after` as they are.
    pub(super) async fn other_end_among(
        &self,
        link: &Link,
        here: &[Link],
        fresh_after: u64,
    ) -> Result<Option<OtherEnd>, DeviceError> {
        let Some(index) = link.link.filter(|i| *i != 0) else { return Ok(None) };
        let Some(nsid) = link.link_netnsid else {
            let link = match here.iter().find(|l| l.index == index) {
                Some(l) => Some(l.clone()),
                None => self.link_by_index(index)?,
            };
            return Ok(Some(OtherEnd { link, index, netns: None, netns_label: None }));
        };
        if let Some(ns) = self.namespace_of(nsid, fresh_after) {
            let link = self.link_in(nsid, index)?;
            return Ok(Some(OtherEnd { link, index, netns_label: Some(ns.name.clone()), netns: Some(ns) }));
        }
        Ok(Some(OtherEnd { link: None, index, netns: None, netns_label: Some(format!("nsid {nsid}")) }))
    }
    /// The primary of the pair whose peer is `peer`, as a command here
    /// reaches it; None when it cannot be found from here (its namespace has
    /// no name this tool can open).
    pub(crate) async fn primary_of(&self, peer: &Link) -> Option<PrimaryRef> {
        let o = self.other_end(peer).await.ok().flatten()?;
        let name = o.link?.name;
        let place = match o.netns {
            Some(ns) if ns.is_init() => Place::Init,
            Some(ns) => Place::Named(ns.name),
            None => Place::Here(netns::current_named()),
        };
        Some(PrimaryRef { name, place })
    }
    /// The view of one device, by name.
    pub async fn show(&self, name: &str) -> Result<DeviceView, DeviceError> {
        ifname::check(name).map_err(DeviceError::Invalid)?;
        let link = self
            .link_named(name, crate::netlink::read::Stats::With)?
            .ok_or_else(|| DeviceError::NotFound { name: name.into(), netns: netns::current_name() })?;
        self.view(&link).await
    }
    /// Views of the ends of netkit and veth pairs here (every device with `all`).
    pub async fn list(&self, all: bool) -> Result<Vec<DeviceView>, DeviceError> {
        // Namespaces a walk names from here on are as fresh as this dump.
        let fresh_after = self.walks();
        let links = self.links()?;
        let mut out = Vec::new();
        for link in &links {
            if all || link.is_pair() {
                out.push(self.view_among(link, &links, fresh_after).await?);
            }
        }
        Ok(out)
    }
    /// Describes `link`, resolving its peer and where the pair's primary is
    /// ([`DeviceView::primary_at`]); the programs on the pair's hooks are
    /// counted by the hooks layer.
    pub(crate) async fn view(&self, link: &Link) -> Result<DeviceView, DeviceError> {
        self.view_among(link, &[], self.walks()).await
    }
    /// As [`Self::view`], with the links of this namespace already read.
    async fn view_among(&self, link: &Link, here: &[Link], fresh_after: u64) -> Result<DeviceView, DeviceError> {
        let nk = link.netkit.clone();
        let other = if link.is_pair() { self.other_end_among(link, here, fresh_after).await? } else { None };
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
            peer: if link.is_pair() { peer } else { None },
            settings,
            mtu: link.mtu,
            operstate: link.operstate.clone(),
            address: link.mac(),
            offload: link.offload,
            queues: link.queues,
            programs: None,
            primary_at,
            counters: link.counters,
        })
    }
}
